import http from 'node:http';
import https from 'node:https';
import { CaptureError } from './errors.js';

export interface FetchOptions {
  method?: 'GET' | 'POST';
  body?: string;
  headers?: Record<string, string>;
  /** Whole request, connect to last byte. */
  timeoutMs: number;
  maxBytes: number;
  /** TLS and client credentials, e.g. from KubeConfig.applyToHTTPSOptions. */
  agent?: http.Agent;
}

/**
 * GETs or POSTs a URL and returns the body as bytes, bounded in time and
 * size. Plain node:http rather than fetch: fetch would ignore the https.Agent
 * that carries a kubeconfig's client certificate.
 */
export function fetchBytes(url: string, options: FetchOptions): Promise<Buffer> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return Promise.reject(new CaptureError('BadUrl', `invalid URL: ${url}`));
  }
  const client = parsed.protocol === 'https:' ? https : parsed.protocol === 'http:' ? http : undefined;
  if (!client) return Promise.reject(new CaptureError('BadUrl', `unsupported URL scheme ${parsed.protocol} (want http or https)`));
  const where = redact(parsed);

  return new Promise<Buffer>((resolve, reject) => {
    const request = client.request(
      parsed,
      {
        method: options.method ?? 'GET',
        headers: { 'accept-encoding': 'identity', ...options.headers },
        agent: options.agent,
      },
      (response) => {
        const status = response.statusCode ?? 0;
        const chunks: Buffer[] = [];
        let received = 0;
        response.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received > options.maxBytes) {
            fail(new CaptureError('TooLarge', `${where} sent more than ${options.maxBytes} bytes (limit)`));
            return;
          }
          chunks.push(chunk);
        });
        response.on('end', () => {
          clearTimeout(timer);
          const body = Buffer.concat(chunks);
          if (status < 200 || status > 299) {
            reject(new CaptureError('HttpStatus', `${where} answered HTTP ${status}${describeBody(body)}`, status));
          } else {
            resolve(body);
          }
        });
        response.on('error', (err) => fail(connectionError(where, err)));
      },
    );
    const timer = setTimeout(
      () => fail(new CaptureError('Timeout', `${where} did not answer within ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
    function fail(error: CaptureError): void {
      clearTimeout(timer);
      request.destroy();
      reject(error);
    }
    request.on('error', (err) => fail(connectionError(where, err)));
    if (options.body !== undefined) request.write(options.body);
    request.end();
  });
}

function connectionError(where: string, err: Error): CaptureError {
  const code = (err as NodeJS.ErrnoException).code;
  return new CaptureError('ConnectionFailed', `${where}: ${code ?? err.message}`);
}

/**
 * A short, single-line hint of what came back instead of a profile: an HTML
 * page's title, a Kubernetes Status's message (e.g. the pod proxy's dial
 * error), or the start of the text.
 */
function describeBody(body: Buffer): string {
  const text = body.subarray(0, 4096).toString('utf8');
  const title = /<title>([^<]*)<\/title>/i.exec(text)?.[1];
  let status: string | undefined;
  if (!title && text.trimStart().startsWith('{')) {
    try {
      const parsed = JSON.parse(text) as { message?: unknown };
      if (typeof parsed.message === 'string') status = parsed.message;
    } catch {
      // not JSON after all
    }
  }
  const snippet = (title ?? status ?? text).replace(/\s+/g, ' ').trim().slice(0, status ? 300 : 120);
  return snippet ? `: ${snippet}` : '';
}

/** Never print credentials that may sit in a URL. */
function redact(url: URL): string {
  const copy = new URL(url.toString());
  copy.username = '';
  copy.password = '';
  copy.search = copy.search ? '?…' : '';
  return copy.toString();
}

import http from 'node:http';
import https from 'node:https';
import { CaptureError } from './errors.js';
import { errorCode } from '../observability/error-code.js';

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
        const ok = status >= 200 && status <= 299;
        const chunks: Buffer[] = [];
        let received = 0;
        response.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received > options.maxBytes) {
            fail(new CaptureError('TooLarge', `${where} sent more than ${options.maxBytes} bytes (limit)`));
            return;
          }
          // An error answer is described, never kept: only its size counts.
          if (ok) chunks.push(chunk);
        });
        response.on('end', () => {
          clearTimeout(timer);
          if (!ok) {
            const answer: AnswerDescription = { status, contentType: contentTypeOf(response.headers['content-type']), bytes: received };
            reject(new HttpAnswerError(`${where} answered ${describeAnswer(answer)}`, answer));
          } else {
            resolve(Buffer.concat(chunks));
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

/** What came back instead of a profile, in words the operator chose: no byte of the answer is quoted. */
export interface AnswerDescription {
  status: number;
  /** A well-formed media type (lower case, no parameters), or "unknown". */
  contentType: string;
  bytes: number;
}

/** A non-2xx answer; `answer` describes it. */
export class HttpAnswerError extends CaptureError {
  constructor(
    message: string,
    readonly answer: AnswerDescription,
  ) {
    super('HttpStatus', message, answer.status);
  }
}

export function describeAnswer(answer: AnswerDescription): string {
  return `HTTP ${answer.status} (${answer.contentType}, ${answer.bytes} bytes)`;
}

/** The media type if it is one (type/subtype tokens), else "unknown": a header is the target's text too. */
export function contentTypeOf(header: string | undefined): string {
  const type = (header ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  return /^[a-z0-9][a-z0-9.+-]{0,40}\/[a-z0-9][a-z0-9.+-]{0,80}$/.test(type) ? type : 'unknown';
}

function connectionError(where: string, err: Error): CaptureError {
  // System error codes only: TLS and parser messages can quote the peer's certificate or bytes.
  return new CaptureError('ConnectionFailed', `${where}: ${errorCode(err) ?? 'connection error'}`);
}

/** Never print credentials that may sit in a URL. */
function redact(url: URL): string {
  const copy = new URL(url.toString());
  copy.username = '';
  copy.password = '';
  copy.search = copy.search ? '?…' : '';
  return copy.toString();
}

import http from 'node:http';
import https from 'node:https';
import type { BudgetHold } from './budget.js';
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
  /**
   * The capture's share of the worker's in-flight answer bytes: the body's
   * buffer is taken from it before it is allocated (reading pauses while
   * the bytes are not free) and stays taken after the answer is returned,
   * until the caller gives it back (answerBytesHeld).
   */
  budget?: BudgetHold;
  /**
   * Bytes taken from the budget before the request is sent (default: the
   * first buffer's size, or maxBytes if smaller); a body past them takes
   * more as it grows. An answer known to be large takes its cap at once,
   * so it never holds part of the budget while waiting for the rest.
   */
  reserveBytes?: number;
}

/** First buffer of an answer that announces no length; it doubles as the body arrives. */
const FIRST_CAPACITY = 16 * 1024;

/** Budget bytes each returned answer holds, for the caller to give back. */
const heldByAnswer = new WeakMap<Buffer, number>();

/** What `answer` holds of its budget (0 without one). */
export function answerBytesHeld(answer: Buffer): number {
  return heldByAnswer.get(answer) ?? 0;
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
  const transport = client;

  const budget = options.budget;
  const reserve = Math.min(options.maxBytes, Math.max(1, options.reserveBytes ?? FIRST_CAPACITY));
  const calledAt = Date.now();
  // Taken before connecting: a request waiting for bytes holds no connection to the target.
  if (budget && !budget.tryTake(reserve)) {
    return budget.take(reserve, where).then(() => request(reserve));
  }
  return request(budget ? reserve : 0);

  function request(reserved: number): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      let settled = false;
      // One buffer per answer, of the announced size or grown by doubling up
      // to the cap: the body is never held as chunks and a concatenation both.
      let body: Buffer | undefined;
      let received = 0;
      /** Budget bytes this answer holds (never less than its buffer's size). */
      let held = reserved;
      let waitingForBytes = false;
      let work = Promise.resolve();
      const req = transport.request(
        parsed,
        {
          method: options.method ?? 'GET',
          headers: { 'accept-encoding': 'identity', ...options.headers },
          agent: options.agent,
        },
        (response) => {
          const status = response.statusCode ?? 0;
          const ok = status >= 200 && status <= 299;
          const announced = announcedLength(response.headers['content-length']);
          if (ok && announced !== undefined && announced > options.maxBytes) {
            fail(new CaptureError('TooLarge', `${where} announced ${announced} bytes, more than ${options.maxBytes} (limit)`));
            return;
          }
          /** Room for `more` bytes: a buffer of the announced size, or twice the last one, taken from the budget first (waiting while it is not free). */
          const grow = async (more: number): Promise<void> => {
            const capacity = Math.min(options.maxBytes, Math.max(received + more, announced ?? 0, body ? body.length * 2 : Math.max(FIRST_CAPACITY, held)));
            if (budget && capacity > held) {
              const extra = capacity - held;
              if (!budget.tryTake(extra)) {
                waitingForBytes = true;
                response.pause();
                try {
                  await budget.take(extra, where);
                } finally {
                  waitingForBytes = false;
                }
                if (settled) {
                  budget.give(extra);
                  return;
                }
                response.resume();
              }
              held += extra;
            }
            const next = Buffer.allocUnsafeSlow(capacity);
            if (body) body.copy(next, 0, 0, received);
            body = next;
          };
          response.on('data', (chunk: Buffer) => {
            if (settled) return;
            if (received + chunk.length > options.maxBytes) {
              fail(new CaptureError('TooLarge', `${where} sent more than ${options.maxBytes} bytes (limit)`));
              return;
            }
            // An error answer is described, never kept: only its size counts.
            if (!ok) {
              received += chunk.length;
              return;
            }
            work = work.then(async () => {
              if (settled) return;
              if (!body || received + chunk.length > body.length) await grow(chunk.length);
              if (settled || !body) return;
              chunk.copy(body, received);
              received += chunk.length;
            });
            work.catch((err: unknown) => fail(err instanceof CaptureError ? err : new CaptureError('ConnectionFailed', `${where}: connection error`)));
          });
          response.on('end', () => {
            void work.then(() => {
              if (settled) return;
              settled = true;
              clearTimeout(timer);
              if (!ok) {
                giveBack();
                const answer: AnswerDescription = { status, contentType: contentTypeOf(response.headers['content-type']), bytes: received };
                reject(new HttpAnswerError(`${where} answered ${describeAnswer(answer)}`, answer));
                return;
              }
              const answer = body ? body.subarray(0, received) : Buffer.alloc(0);
              if (held > 0) heldByAnswer.set(answer, held);
              resolve(answer);
            }, () => undefined);
          });
          response.on('error', (err) => fail(connectionError(where, err)));
        },
      );
      // The whole request, waiting for budget bytes included, stays within its timeout.
      const waited = Date.now() - calledAt;
      const timer = setTimeout(
        () =>
          fail(
            waitingForBytes || waited >= options.timeoutMs
              ? new CaptureError('Busy', `${where}: the worker's budget of in-flight answer bytes stayed taken by other captures for ${options.timeoutMs} ms`)
              : new CaptureError('Timeout', `${where} did not answer within ${options.timeoutMs} ms`),
          ),
        Math.max(0, options.timeoutMs - waited),
      );
      function giveBack(): void {
        if (budget && held > 0) budget.give(held);
        held = 0;
      }
      function fail(error: CaptureError): void {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.destroy();
        giveBack();
        body = undefined;
        reject(error);
      }
      req.on('error', (err) => fail(connectionError(where, err)));
      if (options.body !== undefined) req.write(options.body);
      req.end();
    });
  }
}

/** A Content-Length header as a number, when it is one. */
function announcedLength(header: string | undefined): number | undefined {
  if (header === undefined || !/^\d{1,15}$/.test(header)) return undefined;
  return Number(header);
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
  const code = errorCode(err);
  return new CaptureError('ConnectionFailed', `${where}: ${code ?? 'connection error'}`, undefined, code);
}

/** Never print credentials that may sit in a URL. */
function redact(url: URL): string {
  const copy = new URL(url.toString());
  copy.username = '';
  copy.password = '';
  copy.search = copy.search ? '?…' : '';
  return copy.toString();
}

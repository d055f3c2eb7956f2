import { Worker } from 'node:worker_threads';
import type { PprofClient } from '../capture/capture.js';
import type { DecodeLimits } from '../pprof/decode.js';
import { ProfileError } from '../pprof/errors.js';
import type { DecodeReply, DecodeRequest } from './decode-thread.js';

export interface DecodeGateOptions {
  /** A trial decode that takes longer fails the target (ceiling --max-decode-time). */
  maxDecodeMs: number;
  /** JS heap the trial decoder may use. */
  maxHeapMiB: number;
}

interface Pending {
  request: DecodeRequest;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * Trial-decodes answers in one worker thread, one at a time, each bounded in
 * time and heap: a profile that is slow, heavy or invalid is refused there,
 * so the event loop (job lock renewals, leases) only ever decodes answers
 * that decoded within the budget. A thread past its budget is terminated and
 * replaced.
 */
export class DecodeGate {
  private thread?: Worker;
  private readonly queue: Pending[] = [];
  private current?: Pending & { timer: NodeJS.Timeout };
  private nextId = 1;
  private closed = false;

  constructor(private readonly options: DecodeGateOptions) {}

  check(kind: DecodeRequest['kind'], bytes: Uint8Array, limits: DecodeLimits): Promise<void> {
    if (this.closed) return Promise.reject(new Error('decode gate closed'));
    // A copy: the caller keeps its bytes, the thread owns this one.
    const copy = new Uint8Array(bytes);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ request: { id: this.nextId++, kind, bytes: copy, limits }, resolve, reject });
      this.pump();
    });
  }

  /** A client whose heap answers are trial-decoded before the caller sees them. */
  wrap(client: PprofClient, limits: DecodeLimits): PprofClient {
    return {
      description: client.description,
      get: async (path, maxBytes, timeoutMs) => {
        const body = await client.get(path, maxBytes, timeoutMs);
        if (path === '/heap') await this.check('proto', body, limits);
        else if (path.startsWith('/heap?debug=1')) await this.check('debug1', body, limits);
        return body;
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const pending of this.queue.splice(0)) pending.reject(new Error('decode gate closed'));
    const thread = this.thread;
    this.thread = undefined;
    await thread?.terminate();
  }

  private pump(): void {
    if (this.current || this.queue.length === 0) return;
    const next = this.queue.shift() as Pending;
    const thread = this.spawn();
    const timer = setTimeout(() => this.abandon(new ProfileError('TooLarge', `the profile takes longer than ${this.options.maxDecodeMs} ms to decode (limit)`)), this.options.maxDecodeMs);
    this.current = { ...next, timer };
    thread.postMessage(next.request, [next.request.bytes.buffer as ArrayBuffer]);
  }

  private spawn(): Worker {
    if (this.thread) return this.thread;
    const thread = new Worker(new URL('./decode-thread.js', import.meta.url), { resourceLimits: { maxOldGenerationSizeMb: this.options.maxHeapMiB } });
    thread.unref();
    thread.on('message', (reply: DecodeReply) => {
      const current = this.current;
      if (!current || current.request.id !== reply.id) return;
      this.finish();
      if (reply.ok) current.resolve();
      else current.reject(reply.code === 'Internal' ? new Error(reply.message) : new ProfileError(reply.code, reply.message));
    });
    thread.on('error', (err) => {
      // ERR_WORKER_OUT_OF_MEMORY and the like: the answer is what broke it.
      if (this.thread === thread) this.thread = undefined;
      const oom = (err as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY';
      this.abandon(oom ? new ProfileError('TooLarge', `the profile needs more than ${this.options.maxHeapMiB} MiB to decode (limit)`) : err, false);
    });
    thread.on('exit', () => {
      if (this.thread === thread) this.thread = undefined;
    });
    this.thread = thread;
    return thread;
  }

  /** Fails the current request and starts the next one on a fresh thread. */
  private abandon(err: Error, terminate = true): void {
    const current = this.current;
    if (!current) return;
    this.finish();
    if (terminate && this.thread) {
      void this.thread.terminate();
      this.thread = undefined;
    }
    current.reject(err);
    this.pump();
  }

  private finish(): void {
    if (this.current) clearTimeout(this.current.timer);
    this.current = undefined;
    queueMicrotask(() => this.pump());
  }
}

import { AsyncLocalStorage } from 'node:async_hooks';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { DEFAULT_MAX_SYMBOL_REQUESTS, type CaptureDecoders, type Debug1Lesson, type HiddenFrameLookup, type PprofClient } from '../capture/capture.js';
import type { DecodeLimits } from '../pprof/decode.js';
import { ProfileError } from '../pprof/errors.js';
import { profileFromColumns, type ProfileColumns } from '../pprof/columns.js';
import { restorationBetween, restoreHiddenFrames, unknownRecordKey, unpackHiddenFrames, type HiddenFrameTable, type PackedHiddenFrames } from '../pprof/hidden-frames.js';
import type { Frame, HeapProfile, HeapRecord } from '../pprof/types.js';
import type { SeriesAnalysis, Thresholds } from '../analysis/series.js';
import type { DecodeReply, DecodeRequest } from './decode-thread.js';
import { expandStacks } from './compact-stacks.js';
import type { SummaryCaps } from '../store/summary-caps.js';

type DecodeSuccess = Extract<DecodeReply, { ok: true }>;

/** The decoded proto the thread kept: its request id, and the visible stacks of its records as decoded. */
interface KeptProfile {
  ticket: number;
  stacks: Frame[][];
  stackOf: Int32Array;
}

/** Decoders of one capture; `kept` names the proto the thread holds for attributeForStore. */
export interface GateDecoders extends CaptureDecoders {
  kept?: KeptProfile;
}

export interface DecodeGateOptions {
  /** A trial decode that takes longer fails the target (ceiling --max-decode-time). */
  maxDecodeMs: number;
  /** JS heap the trial decoder may use. */
  maxHeapMiB: number;
  /** A series analysis or attribution that takes longer is refused (TooLarge: the target sized it, so it never moves to the event loop); default 10 × maxDecodeMs. */
  maxAnalysisMs?: number;
  /** Records (and stacks) handled on the event loop between two yields; default RECORDS_PER_SLICE. */
  recordsPerSlice?: number;
  /** Bytes of debug=1 parses the thread keeps for their learning (PARSED_COST); default MAX_KEPT_DEBUG1_BYTES (decode-thread.ts). */
  maxKeptDebug1Bytes?: number;
}

/**
 * Whose work runs now: the worker runs each round inside asTenant(its
 * namespace), and every gate request made from that round, however deep
 * (captureHeap's decoders, the attribution, the series analysis), is queued
 * under it. Work outside any round is tenant "".
 */
const tenantScope = new AsyncLocalStorage<string>();

/** Runs `work` as `tenant`'s: the decode gate serves tenants in turn. */
export function asTenant<T>(tenant: string, work: () => Promise<T>): Promise<T> {
  return tenantScope.run(tenant, work);
}

interface Pending {
  tenant: string;
  request: DecodeRequest;
  /**
   * proto and debug1 requests: the caller's answer itself, not a copy (a
   * copy made when asked would sit in memory for as long as the request
   * waits in the queue). `hand` moves it to the thread as it is sent
   * (the caller has handed it over); otherwise an exact copy is made then.
   */
  hand?: boolean;
  resolve: (reply: DecodeSuccess) => void;
  reject: (err: Error) => void;
}

/**
 * Trial-decodes answers in one worker thread, one at a time, each bounded in
 * time and heap: a profile that is slow, heavy or invalid is refused there,
 * so the event loop (job lock renewals, leases) only ever decodes answers
 * that decoded within the budget. A thread past its budget is terminated and
 * replaced. Requests wait in one queue per tenant (namespace), served in
 * turn, first come first served within one: a namespace with a backlog of
 * large decodes delays another's next decode by at most the one in the
 * thread and one of its own per other waiting namespace, not by its backlog.
 */
export class DecodeGate {
  private thread?: Worker;
  /** Waiting requests per tenant; a tenant is in `turns` while it has any. */
  private readonly queues = new Map<string, Pending[]>();
  /** Tenants with waiting requests, in the order they are served next. */
  private readonly turns: string[] = [];
  private current?: Pending & { timer: NodeJS.Timeout };
  private nextId = 1;
  private closed = false;

  constructor(private readonly options: DecodeGateOptions) {}

  private get slice(): number {
    return Math.max(1, this.options.recordsPerSlice ?? RECORDS_PER_SLICE);
  }

  private get maxAnalysisMs(): number {
    return this.options.maxAnalysisMs ?? 10 * this.options.maxDecodeMs;
  }

  async check(kind: 'proto' | 'debug1', bytes: Uint8Array, limits: DecodeLimits): Promise<void> {
    await this.request(kind, bytes, limits, false);
  }

  /** Decodes a proto answer in the thread, within the budget, and hands the profile back (the thread keeps it for attributeForStore). */
  async decodeProto(bytes: Uint8Array, limits: DecodeLimits): Promise<HeapProfile> {
    return (await this.decodeKept(bytes, limits)).profile;
  }

  private async decodeKept(bytes: Uint8Array, limits: DecodeLimits): Promise<{ profile: HeapProfile; kept: KeptProfile }> {
    const reply = await this.request('proto', bytes, limits, true);
    if (!reply.profile || !reply.stacks) throw new Error('decode thread sent no profile');
    const expanded = await expandStacks(reply.stacks, this.slice);
    const columns: ProfileColumns = { ...reply.profile, ...expanded };
    return { profile: await profileFromColumnsInSlices(columns, this.slice), kept: { ticket: reply.id, stacks: expanded.stacks, stackOf: columns.stackOf } };
  }

  /**
   * Parses a debug=1 answer in the thread, within the budget (a 150 MB one
   * takes seconds), and keeps the parse there: only its symbol questions
   * come back (symbolQuestions: the PCs `known` has no name for, at most
   * `maxQueries` queries of them), and its hidden frames are learned there
   * too (Debug1Lesson.learn), so nothing the size of the text ever reaches
   * this heap. The answer is handed over: its memory moves to the thread
   * when the request is sent, and `bytes` reads as empty from then on.
   */
  async parseDebug1(bytes: Uint8Array, limits: DecodeLimits, known: ReadonlyMap<number, string> = new Map(), maxQueries = DEFAULT_MAX_SYMBOL_REQUESTS): Promise<Debug1Lesson> {
    const knownPcs = Float64Array.from(known.keys());
    const reply = await this.enqueue({ id: this.nextId++, kind: 'debug1', bytes, limits, keep: true, knownPcs, maxQueries }, true);
    if (!reply.questions || reply.parsedBytes === undefined) throw new Error('decode thread sent no symbol questions');
    const ticket = reply.id;
    let done = false;
    return {
      questions: reply.questions,
      parsedBytes: reply.parsedBytes,
      learn: async (symbols, into, maxBytes) => {
        if (done) throw new Error('debug=1 parse already learned from or released');
        done = true;
        const learned = await this.enqueue({ id: this.nextId++, kind: 'learn', ticket, symbols: new Map(symbols), maxBytes });
        if (learned.overShare) return false;
        if (!learned.learned) throw new Error('decode thread sent no hidden frames');
        await unpackInSlices(learned.learned, into, this.slice);
        return true;
      },
      release: () => {
        if (done) return;
        done = true;
        // No reply and no turn in the queue: the thread lets the parse go when it reads this (a thread replaced since has none).
        this.thread?.postMessage({ id: this.nextId++, kind: 'forget', ticket } satisfies DecodeRequest);
      },
    };
  }

  /**
   * captureHeap's decoders for one capture, run here: every heap answer is
   * decoded once, off the event loop, and the thread keeps the last proto
   * for attributeForStore.
   */
  decoders(limits: DecodeLimits): GateDecoders {
    const decoders: GateDecoders = {
      proto: async (bytes) => {
        const { profile, kept } = await this.decodeKept(bytes, limits);
        decoders.kept = kept;
        return profile;
      },
      debug1: (bytes, known, maxQueries) => this.parseDebug1(bytes, limits, known, maxQueries),
      unknownRecords: (profile, lookup) => unknownRecordsInSlices(profile, lookup, this.slice),
      restoreHiddenFrames: (profile, lookup) => restoreHiddenFramesInSlices(profile, lookup, this.slice),
    };
    return decoders;
  }

  /**
   * The capture's profile (captureHeap's, hidden frames restored), attributed
   * in the thread from the copy it kept, in the form the series store keeps
   * (storedSnapshotJson): only the restoration crosses to the thread.
   */
  async attributeForStore(decoders: GateDecoders, profile: HeapProfile, time: Date, caps?: SummaryCaps): Promise<Buffer> {
    const kept = decoders.kept;
    if (!kept || kept.stackOf.length !== profile.records.length) throw new Error('no kept profile for this capture');
    decoders.kept = undefined;
    await yieldToLoop(); // after the capture's restoration, before comparing with it
    const restoration = restorationBetween(kept, profile);
    const reply = await this.enqueue({ id: this.nextId++, kind: 'attribute', ticket: kept.ticket, restoration, time: time.getTime(), ...(caps ? { caps } : {}) });
    if (!reply.stored) throw new Error('decode thread sent no snapshot');
    return Buffer.from(reply.stored.buffer, reply.stored.byteOffset, reply.stored.byteLength);
  }

  /** The engine on a target's stored series (SeriesStore.loadSeriesJson), in the thread: parsing and analysing 12 large captures takes seconds. */
  async analyzeSeries(snapshots: readonly Uint8Array[], thresholds: Thresholds): Promise<SeriesAnalysis> {
    // Copies the thread owns (moved, not cloned: tens of MB of JSON would hold the loop while being serialized), a few MB at a time.
    const owned: Uint8Array[] = [];
    let copied = 0;
    for (const json of snapshots) {
      owned.push(new Uint8Array(json));
      copied += json.byteLength;
      if (copied >= COPY_SLICE_BYTES) {
        copied = 0;
        await yieldToLoop();
      }
    }
    const reply = await this.enqueue({ id: this.nextId++, kind: 'series', snapshots: owned, thresholds });
    if (!reply.analysis) throw new Error('decode thread sent no analysis');
    return reply.analysis;
  }

  /** A client whose heap answers are trial-decoded before the caller sees them (and decodes them again). */
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

  /** Requests waiting (not the one in the thread), per tenant: for tests and diagnostics. */
  waiting(): Map<string, number> {
    return new Map([...this.queues].map(([tenant, queue]) => [tenant, queue.length]));
  }

  private request(kind: 'proto' | 'debug1', bytes: Uint8Array, limits: DecodeLimits, keep: boolean, hand = false): Promise<DecodeSuccess> {
    return this.enqueue({ id: this.nextId++, kind, bytes, limits, keep }, hand);
  }

  private enqueue(request: DecodeRequest, hand = false): Promise<DecodeSuccess> {
    if (this.closed) return Promise.reject(new Error('decode gate closed'));
    const tenant = tenantScope.getStore() ?? '';
    return new Promise<DecodeSuccess>((resolve, reject) => {
      let queue = this.queues.get(tenant);
      if (!queue) {
        this.queues.set(tenant, (queue = []));
        this.turns.push(tenant);
      }
      queue.push({ tenant, request, hand, resolve, reject });
      this.pump();
    });
  }

  /** The next request: the first of the tenant whose turn it is; that tenant goes to the back of the turns. */
  private next(): Pending | undefined {
    const tenant = this.turns.shift();
    if (tenant === undefined) return undefined;
    const queue = this.queues.get(tenant) ?? [];
    const pending = queue.shift();
    if (queue.length > 0) this.turns.push(tenant);
    else this.queues.delete(tenant);
    return pending;
  }

  async close(): Promise<void> {
    this.closed = true;
    const waiting = [...this.queues.values()].flat();
    this.queues.clear();
    this.turns.length = 0;
    for (const pending of waiting) pending.reject(new Error('decode gate closed'));
    const thread = this.thread;
    this.thread = undefined;
    await thread?.terminate();
  }

  private pump(): void {
    if (this.current) return;
    const next = this.next();
    if (!next) return;
    const thread = this.spawn();
    const request = outgoing(next);
    const timer =
      request.kind === 'series' || request.kind === 'attribute' || request.kind === 'learn'
        ? setTimeout(() => this.abandon(new ProfileError('TooLarge', `the ${ANALYSIS_NAMES[request.kind]} takes longer than ${this.maxAnalysisMs} ms (limit)`)), this.maxAnalysisMs)
        : setTimeout(() => this.abandon(new ProfileError('TooLarge', `the profile takes longer than ${this.options.maxDecodeMs} ms to decode (limit)`)), this.options.maxDecodeMs);
    this.current = { ...next, timer };
    thread.postMessage(request, transferList(request));
  }

  private spawn(): Worker {
    if (this.thread) return this.thread;
    const thread = new Worker(new URL('./decode-thread.js', import.meta.url), {
      resourceLimits: { maxOldGenerationSizeMb: this.options.maxHeapMiB },
      workerData: { maxKeptDebug1Bytes: this.options.maxKeptDebug1Bytes },
    });
    thread.unref();
    thread.on('message', (reply: DecodeReply) => {
      const current = this.current;
      if (!current || current.request.id !== reply.id) return;
      this.finish();
      if (reply.ok) current.resolve(reply);
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

const ANALYSIS_NAMES = { series: 'series analysis', attribute: 'attribution', learn: 'learning from debug=1' } as const;

/**
 * Records per slice of the work a capture still does on the event loop
 * (rebuilding the records, the hidden-frame lookups): a 122k-sample profile
 * is a dozen slices of a few ms each, not one block of 50–150 ms.
 */
const RECORDS_PER_SLICE = 10_000;
/** Bytes of stored snapshots copied for the thread between two yields. */
const COPY_SLICE_BYTES = 16 * 1024 * 1024;

/** profileFromColumns, a slice of records at a time. */
async function profileFromColumnsInSlices(columns: ProfileColumns, slice: number): Promise<HeapProfile> {
  const n = columns.stackOf.length;
  if (n <= slice) return profileFromColumns(columns);
  const records: HeapRecord[] = [];
  let profile: HeapProfile | undefined;
  for (let from = 0; from < n; from += slice) {
    if (from > 0) await yieldToLoop();
    const to = Math.min(n, from + slice);
    const part = profileFromColumns({
      ...columns,
      stackOf: columns.stackOf.subarray(from, to),
      objectSize: columns.objectSize.subarray(from, to),
      inuseObjects: columns.inuseObjects.subarray(from, to),
      inuseBytes: columns.inuseBytes.subarray(from, to),
      allocObjects: columns.allocObjects.subarray(from, to),
      allocBytes: columns.allocBytes.subarray(from, to),
    });
    for (const record of part.records) records.push(record);
    profile ??= part;
  }
  return { ...(profile as HeapProfile), records };
}

/**
 * restoreHiddenFrames, a slice of records at a time. Records of one key in
 * different slices get equal stacks rather than one shared array: the
 * analysis reads the same frames either way.
 */
async function restoreHiddenFramesInSlices(profile: HeapProfile, lookup: HiddenFrameLookup, slice: number): Promise<HeapProfile> {
  const n = profile.records.length;
  if (n <= slice) return restoreHiddenFrames(profile, lookup);
  const records: HeapRecord[] = [];
  for (let from = 0; from < n; from += slice) {
    await yieldToLoop();
    const restored = restoreHiddenFrames({ ...profile, records: profile.records.slice(from, from + slice) }, lookup);
    for (const record of restored.records) records.push(record);
  }
  return { ...profile, records };
}

/** unknownRecords (src/pprof/hidden-frames.ts), a slice of records at a time, with its distinct keys counted across slices. */
async function unknownRecordsInSlices(profile: HeapProfile, lookup: HiddenFrameLookup, slice: number): Promise<{ keys: number; inuseBytes: number }> {
  const seen = new Set<string>();
  let inuseBytes = 0;
  const records = profile.records;
  for (let i = 0; i < records.length; i++) {
    if (i > 0 && i % slice === 0) await yieldToLoop();
    const record = records[i] as HeapRecord;
    const key = unknownRecordKey(record, lookup);
    if (key === undefined) continue;
    seen.add(key);
    inuseBytes += record.inuseBytes;
  }
  return { keys: seen.size, inuseBytes };
}

/** unpackHiddenFrames, a slice of entries at a time. */
async function unpackInSlices(packed: PackedHiddenFrames, into: HiddenFrameTable, slice: number): Promise<void> {
  const unpacking = unpackHiddenFrames(packed, into, slice);
  while (!unpacking.next().done) await yieldToLoop();
}

/**
 * The request as it is sent: an answer handed over moves as it is (its
 * whole buffer: a read answer is a view of its own, possibly larger,
 * buffer; Node copies a pooled one instead), else the thread gets an exact
 * copy, made only now.
 */
function outgoing(pending: Pending): DecodeRequest {
  const request = pending.request;
  if (request.kind !== 'proto' && request.kind !== 'debug1') return request;
  // new Uint8Array(view) copies (a Buffer's slice() would be a view of the caller's memory).
  return pending.hand ? request : { ...request, bytes: new Uint8Array(request.bytes) };
}

/** Buffers the thread takes over (moved, not copied). */
function transferList(request: DecodeRequest): ArrayBuffer[] {
  switch (request.kind) {
    case 'series':
      return request.snapshots.map((json) => json.buffer as ArrayBuffer);
    case 'attribute':
      return [request.restoration.pathOf.buffer as ArrayBuffer];
    case 'learn':
    case 'forget':
      return [];
    default:
      // knownPcs is the gate's own copy, made for this request.
      return [request.bytes.buffer as ArrayBuffer, ...(request.knownPcs ? [request.knownPcs.buffer as ArrayBuffer] : [])];
  }
}

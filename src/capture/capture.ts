import { decodeHeapProfile, type DecodeLimits } from '../pprof/decode.js';
import { parseDebug1Heap, symbolQuestions, type Debug1Heap, type SymbolQuestions } from '../pprof/debug1.js';
import { ProfileError } from '../pprof/errors.js';
import { PROFILE_MESSAGES } from '../pprof/messages.js';
import { restoreHiddenFrames, unknownRecords, type HiddenFrameTable } from '../pprof/hidden-frames.js';
import { MAX_TRUTHFUL_SYMBOL_ANSWER, parseSymbolResponse, queriedPcs, type SymbolTable } from '../pprof/symbols.js';
import type { HeapProfile } from '../pprof/types.js';
import { BudgetHold, type ByteBudget } from './budget.js';
import { CaptureError } from './errors.js';
import { answerBytesHeld } from './http.js';
import { learnWithin, type BinaryKnowledgeCache } from './binary-knowledge.js';

/** Fetches a path under a target's pprof prefix (directly or via the API server proxy). */
export interface PprofClient {
  /** For messages. */
  readonly description: string;
  /** `timeoutMs` overrides the client's own timeout for this request; `budget`: the capture's share of in-flight answer bytes. */
  get(path: string, maxBytes: number, timeoutMs?: number, budget?: AnswerBudget): Promise<Buffer>;
}

/** The capture's share of the worker's in-flight answer bytes, and how much of it one answer takes before it is read. */
export interface AnswerBudget {
  hold: BudgetHold;
  reserveBytes: number;
}

/** What one capture cost the target: bytes it served and time spent serving them. */
export interface CaptureCost {
  requests: number;
  bytes: number;
  milliseconds: number;
  debug1: boolean;
}

export interface HeapCapture {
  time: Date;
  /** The gzipped proto exactly as served, for `go tool pprof`. */
  proto: Buffer;
  /** debug=1 text, when this capture asked for it. */
  debug1: string | undefined;
  /** Names of the hidden runtime PCs of this capture's debug=1 (empty without one). */
  symbols: SymbolTable;
  /** The proto, with the hidden runtime frames restored wherever this binary's records are known. */
  profile: HeapProfile;
  /** What could not be had, e.g. "symbol endpoint: HTTP 404"; the capture still counts. */
  warnings: string[];
  cost: CaptureCost;
}

/**
 * When to read debug=1. It is a text dump hundreds of times larger than the
 * proto (measured: 150 MB and 12 s of the target's time for a 100k-record
 * heap, against 285 KB and 0.4 s), so by default it is read only when the
 * proto shows records this binary's knowledge cannot restore.
 */
export interface Debug1Policy {
  mode: 'auto' | 'always' | 'never';
  /** auto: unseen records holding less than this in use wait for a later capture... */
  minUnknownBytes: number;
  /** ...and debug=1 is read at most this often per binary (the first time: at once). */
  minIntervalMs: number;
  /** debug=1's own budget: bytes and time. */
  maxBytes: number;
  timeoutMs: number;
}

/** The CLI's: one user watching one process, with no other tenant to protect (the operator sets its own from the admin's ceilings). */
export const DEFAULT_DEBUG1_POLICY: Debug1Policy = {
  mode: 'auto',
  minUnknownBytes: 1024 * 1024,
  minIntervalMs: 0,
  maxBytes: 256 * 1024 * 1024,
  timeoutMs: 60_000,
};

/**
 * How long /symbol is left alone after it failed, timed out or named none
 * of the PCs asked: a build's PCs never change, so a binary that did not
 * name them will not name them on the next capture either.
 */
export const SYMBOL_RETRY_MS = 30 * 60 * 1000;

/** One symbol request may take at most this share of the request timeout: pprof's handler answers a batch in milliseconds. */
export const SYMBOL_REQUEST_SHARE = 1 / 4;

/**
 * Budget bytes a proto answer takes before it is read (more as it grows):
 * a large service's proto is a few hundred KB (test/targets/bigheap, 85,000
 * records: 245 KB).
 */
export const PROTO_RESERVE = 1024 * 1024;

export interface CaptureOptions {
  limits: DecodeLimits;
  knowledge: BinaryKnowledgeCache;
  /**
   * Whose process this is, as the caller verified it (the operator: the
   * pod's namespace and uid). Knowledge is keyed by scope and build id, so a
   * target that claims another binary's build id cannot change what anyone
   * else's analysis reads.
   */
  scope: string;
  /**
   * Where a build id may be shared (the operator: the namespace, all of one
   * tenant's): a profile that names its build id is keyed by this and the
   * id, so the replicas of one Deployment learn their binary once. Without
   * a build id the knowledge stays per `scope`. Default: `scope`.
   */
  binaryScope?: string;
  /** Symbol requests one capture may make; PCs beyond them stay unnamed (a warning says so). */
  maxSymbolRequests?: number;
  /** Bytes of one /symbol answer (default: the most a truthful answer can be, MAX_TRUTHFUL_SYMBOL_ANSWER). */
  maxSymbolAnswerBytes?: number;
  /**
   * The whole capture, first byte of the proto to the last symbol (ms).
   * Past it the capture fails (`DeadlineExceeded`); what it learned is kept
   * and debug=1 and /symbol wait for their intervals, so the next capture
   * is the proto alone. The operator's is captureDeadline (src/api/ceilings.ts);
   * default (the CLI, one user watching one process): none.
   */
  maxCaptureMs?: number;
  /** The request timeout (the client's): symbol requests get a share of it. Default: 10 s. */
  requestTimeoutMs?: number;
  /** The worker's in-flight answer bytes, shared by every capture (none: unbounded, the CLI). */
  budget?: ByteBudget;
  /** Whose capture this is, for the knowledge cache's and the in-flight budget's per-tenant shares. Default: `binaryScope`, else `scope`. */
  tenant?: string;
  debug1?: Partial<Debug1Policy>;
  /** Default: decodeHeapProfile and parseDebug1Heap, on the calling thread. */
  decoders?: CaptureDecoders;
  now?: () => Date;
}

export const DEFAULT_MAX_SYMBOL_REQUESTS = 64;

/** How the answers are decoded: the operator's worker decodes them in a thread, each once (src/worker/decode-gate.ts). */
export interface CaptureDecoders {
  proto(bytes: Buffer): Promise<HeapProfile>;
  /**
   * Parses a debug=1 and keeps the parse where it was made (the worker's
   * decode gate: in its thread), handing back only its lesson: the symbol
   * questions (symbolQuestions of the PCs `known` has no name for, at most
   * `maxQueries` queries) and the learning once they are answered. Takes
   * the answer over: the caller does not read `bytes` afterwards (the gate
   * moves them to its thread).
   */
  debug1(bytes: Buffer, known: ReadonlyMap<number, string>, maxQueries: number): Promise<Debug1Lesson>;
  /** unknownRecords and restoreHiddenFrames as the decoders run them (the worker: in slices, yielding to its event loop); default: at once. */
  unknownRecords?(profile: HeapProfile, lookup: HiddenFrameLookup): Promise<{ keys: number; inuseBytes: number }>;
  restoreHiddenFrames?(profile: HeapProfile, lookup: HiddenFrameLookup): Promise<HeapProfile>;
}

export type HiddenFrameLookup = (key: string) => readonly string[] | undefined;

/** A parsed debug=1, wherever its parse is held: what to ask /symbol, then what it teaches. */
export interface Debug1Lesson {
  questions: SymbolQuestions;
  /** What the parse holds where it is kept (PARSED_COST). */
  parsedBytes: number;
  /**
   * Learns the parse's hidden frames (learnWithin) from the names of its
   * unnamed PCs and sets them into `into`; false, with nothing set, when
   * they alone pass `maxBytes`. The parse is let go either way.
   */
  learn(symbols: SymbolTable, into: HiddenFrameTable, maxBytes: number): Promise<boolean>;
  /** Lets the parse go unlearned (after learn: nothing to do). */
  release(): void;
}

/** The lesson of a debug=1 parsed on the calling thread (the CLI's capture, with no decoders). */
export function debug1Lesson(heap: Debug1Heap, known: ReadonlyMap<number, string>, maxQueries: number): Debug1Lesson {
  let parse: Debug1Heap | undefined = heap;
  return {
    questions: symbolQuestions(heap, (pc) => known.has(pc), maxQueries),
    parsedBytes: heap.parsedBytes,
    learn: async (symbols, into, maxBytes) => {
      const learning = parse;
      parse = undefined;
      if (!learning) throw new Error('debug=1 parse already learned from or released');
      const table = learnWithin(learning, symbols, maxBytes);
      if (!table) return false;
      for (const [key, hidden] of table) into.set(key, hidden);
      return true;
    },
    release: () => void (parse = undefined),
  };
}

/**
 * One capture of a live process: the proto heap profile (the measurement:
 * timestamp, build id, raw bytes to download), and when this binary has
 * records not seen before, debug=1 (raw PCs with the hidden runtime frames)
 * and the names of its new PCs from /symbol, to learn them. Never forces a
 * GC. Bounded in time (one deadline over every request) and in memory
 * (each answer by its own cap, all captures' answers by the shared budget).
 */
export async function captureHeap(client: PprofClient, options: CaptureOptions): Promise<HeapCapture> {
  const { limits } = options;
  const policy = { ...DEFAULT_DEBUG1_POLICY, ...options.debug1 };
  const now = options.now ?? (() => new Date());
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  const maxCaptureMs = options.maxCaptureMs ?? Number.POSITIVE_INFINITY;
  const deadline = Date.now() + maxCaptureMs;
  const tenant = options.tenant ?? options.binaryScope ?? options.scope;
  const hold = options.budget ? new BudgetHold(options.budget, deadline, tenant) : undefined;
  const cost: CaptureCost = { requests: 0, bytes: 0, milliseconds: 0, debug1: false };
  const deadlinePassed = (): CaptureError =>
    new CaptureError('DeadlineExceeded', `the capture took longer than the operator's limit of ${maxCaptureMs} ms (--max-capture-time); debug=1 and /symbol are not asked again for a while`);
  const get = async (path: string, maxBytes: number, timeoutMs?: number, reserveBytes = PROTO_RESERVE): Promise<Buffer> => {
    const left = deadline - Date.now();
    if (left <= 0) throw deadlinePassed();
    const started = performance.now();
    cost.requests++;
    const cut = left < (timeoutMs ?? requestTimeoutMs);
    try {
      const body = await client.get(path, maxBytes, cut ? left : timeoutMs, hold ? { hold, reserveBytes } : undefined);
      cost.bytes += body.length;
      return body;
    } catch (err) {
      // A request cut short by the deadline failed because of the deadline.
      if (cut && err instanceof CaptureError && err.code === 'Timeout') throw deadlinePassed();
      throw err;
    } finally {
      cost.milliseconds += performance.now() - started;
    }
  };

  try {
    const proto = await get('/heap', limits.maxBytes);
    const protoProfile = options.decoders ? await decodedWithCopy(hold, proto, '/heap', (bytes) => (options.decoders as CaptureDecoders).proto(bytes)) : decodeHeapProfile(proto, limits);
    const time = protoProfile.time ?? now();
    const warnings: string[] = [];
    const buildId = protoProfile.buildId ?? '';
    const binaryKey = buildId ? `${options.binaryScope ?? options.scope}\u0000${buildId}` : `${options.scope}\u0000`;
    const knowledge = options.knowledge.binary(binaryKey, tenant);
    const lookup = (key: string): readonly string[] | undefined => knowledge.hiddenFrames.get(key);

    let debug1: string | undefined;
    const symbols: SymbolTable = new Map();
    const nowMs = now().getTime();
    // Paced per binary (what the binary's other pods learned counts) and per target (whatever build id it claims).
    const pace = options.knowledge.target(options.scope);
    const refuseSymbols = (): void => void (knowledge.symbolsRefusedUntil = pace.symbolsRefusedUntil = nowMs + SYMBOL_RETRY_MS);
    const symbolsRefusedUntil = later(knowledge.symbolsRefusedUntil, pace.symbolsRefusedUntil);
    // Without names for its PCs debug=1 teaches nothing: it waits while /symbol is refused too.
    const symbolsRefused = symbolsRefusedUntil !== undefined && nowMs < symbolsRefusedUntil;
    const unknown = async (): Promise<{ keys: number; inuseBytes: number }> =>
      options.decoders?.unknownRecords ? options.decoders.unknownRecords(protoProfile, lookup) : unknownRecords(protoProfile, lookup);
    if (!symbolsRefused && (await wantsDebug1(policy, unknown, later(knowledge.lastDebug1At, pace.lastDebug1At), nowMs))) {
      knowledge.lastDebug1At = pace.lastDebug1At = nowMs;
      let stage: 'debug=1 heap profile' | 'symbol endpoint' = 'debug=1 heap profile';
      let parsedHeld = 0;
      let lesson: Debug1Lesson | undefined;
      try {
        // debug=1 takes its whole cap at once: it is hundreds of times the proto, and a reader that held part of the budget while waiting for more could wait on another one doing the same.
        let debug1Bytes: Buffer | undefined = await get('/heap?debug=1', policy.maxBytes, policy.timeoutMs, policy.maxBytes);
        cost.debug1 = true;
        // The CLI saves the text; the operator never reads it, so it is not made (it would be one more copy of the answer).
        if (!options.decoders) debug1 = debug1Bytes.toString('utf8');
        const decoders = options.decoders;
        const allowed = options.maxSymbolRequests ?? DEFAULT_MAX_SYMBOL_REQUESTS;
        // Handed to the decoders, not copied (CaptureDecoders.debug1). The parse is held (in the decode thread, or
        // here) until it is learned from: it keeps that much of the text's budget bytes (parseDebug1Heap holds it within its text).
        lesson = decoders ? await decoders.debug1(debug1Bytes, knowledge.symbols, allowed) : debug1Lesson(parseDebug1Heap(debug1 ?? ''), knowledge.symbols, allowed);
        const textHeld = answerBytesHeld(debug1Bytes);
        parsedHeld = Math.min(textHeld, lesson.parsedBytes);
        hold?.give(textHeld - parsedHeld);
        debug1Bytes = undefined;
        stage = 'symbol endpoint';
        const { pcs: unnamed, queries, totalQueries } = lesson.questions;
        const symbolTimeoutMs = Math.max(1, Math.floor(requestTimeoutMs * SYMBOL_REQUEST_SHARE));
        const symbolsBy = Date.now() + requestTimeoutMs;
        let asked = 0;
        for (const query of queries) {
          // All of them together within one request timeout (the rest wait for the next capture of a new record).
          const left = symbolsBy - Date.now();
          if (left < symbolTimeoutMs) {
            warnings.push(`symbol endpoint: stopped after ${asked} of ${totalQueries} requests (all of one capture's symbol requests get ${requestTimeoutMs} ms)`);
            break;
          }
          // GET: from a `go 1.22` line on, net/http/pprof's patterns are GET-only (POST answers 405).
          asked++;
          const maxAnswer = options.maxSymbolAnswerBytes ?? MAX_TRUTHFUL_SYMBOL_ANSWER;
          const answer = await get(`/symbol?${query}`, maxAnswer, symbolTimeoutMs, maxAnswer);
          let namedHere = 0;
          for (const [pc, name] of parseSymbolResponse(answer, queriedPcs(query))) {
            knowledge.symbols.set(pc, name);
            namedHere++;
          }
          hold?.give(answerBytesHeld(answer));
          if (namedHere === 0) {
            // A binary that names none of the PCs asked will not name the next batch either.
            refuseSymbols();
            warnings.push(`symbol endpoint: named none of the PCs asked; not asked again for ${SYMBOL_RETRY_MS / 60_000} min`);
            break;
          }
        }
        if (totalQueries > allowed) {
          warnings.push(`symbol endpoint: ${totalQueries - allowed} of ${totalQueries} symbol requests left out (limit ${allowed} per capture)`);
        }
        for (const pc of unnamed) {
          const name = knowledge.symbols.get(pc);
          if (name) symbols.set(pc, name);
        }
        // Learned where the parse is: only the table comes back. Past the tenant's whole share the binary is forgotten (as learned() would).
        stage = 'debug=1 heap profile';
        const learning = lesson;
        lesson = undefined;
        if (!(await learning.learn(symbols, knowledge.hiddenFrames, options.knowledge.limits.maxBytesPerTenant))) {
          knowledge.symbols.clear();
          knowledge.hiddenFrames.clear();
        }
      } catch (err) {
        if (!(err instanceof CaptureError || err instanceof ProfileError)) throw err;
        // The first failure ends the symbol requests: a slow or broken endpoint is asked again only after SYMBOL_RETRY_MS.
        // Busy is the worker's own contention, never the target's doing.
        const busy = err instanceof CaptureError && err.code === 'Busy';
        if (!busy && (stage === 'symbol endpoint' || (err instanceof CaptureError && err.code === 'DeadlineExceeded'))) refuseSymbols();
        if (err instanceof CaptureError && (err.code === 'DeadlineExceeded' || err.code === 'Busy')) throw err;
        warnings.push(`${stage}: ${err instanceof ProfileError ? PROFILE_MESSAGES[err.code] : err.message}`); // never a quoted target line
      } finally {
        lesson?.release();
        hold?.give(parsedHeld);
        options.knowledge.learned(binaryKey);
      }
    }
    const profile = options.decoders?.restoreHiddenFrames ? await options.decoders.restoreHiddenFrames(protoProfile, lookup) : restoreHiddenFrames(protoProfile, lookup);
    return { time, proto, debug1, symbols, profile: { ...profile, time }, warnings, cost };
  } finally {
    hold?.release();
  }
}

/** The admin's ceilings that bound one capture (src/api/ceilings.ts), as the operator's worker hands them over. */
export interface CaptureCeilings {
  maxSymbolRequests: number;
  maxSymbolAnswerBytes: number;
  maxDebug1Bytes: number;
  minDebug1IntervalMs: number;
  maxRequestTimeoutMs: number;
}

/**
 * captureHeap's options under the admin's ceilings, for a probe whose
 * effective request timeout is `timeoutMs` and whose capture must end by
 * `maxCaptureMs` (captureDeadline).
 */
export function operatorCaptureOptions(
  ceilings: CaptureCeilings,
  timing: { timeoutMs: number; maxCaptureMs: number },
  budget: ByteBudget | undefined,
): Pick<CaptureOptions, 'maxSymbolRequests' | 'maxSymbolAnswerBytes' | 'maxCaptureMs' | 'requestTimeoutMs' | 'budget' | 'debug1'> {
  return {
    maxSymbolRequests: ceilings.maxSymbolRequests,
    maxSymbolAnswerBytes: ceilings.maxSymbolAnswerBytes,
    maxCaptureMs: timing.maxCaptureMs,
    requestTimeoutMs: timing.timeoutMs,
    ...(budget ? { budget } : {}),
    // debug=1 has its own, smaller, byte ceiling and a rate per binary; its time is the admin's request ceiling, within the capture's deadline.
    debug1: { maxBytes: ceilings.maxDebug1Bytes, minIntervalMs: ceilings.minDebug1IntervalMs, timeoutMs: ceilings.maxRequestTimeoutMs },
  };
}

/**
 * A proto decoder in another thread gets a copy of the answer (the capture
 * keeps the proto; the operator's decode gate copies it when it sends the
 * request to its thread): the copy comes out of the capture's budget too,
 * from the moment it is asked for until it is decoded.
 */
async function decodedWithCopy<T>(hold: BudgetHold | undefined, bytes: Buffer, what: string, decode: (bytes: Buffer) => Promise<T>): Promise<T> {
  if (!hold) return decode(bytes);
  await hold.take(bytes.length, what);
  try {
    return await decode(bytes);
  } finally {
    hold.give(bytes.length);
  }
}

/** The later of two times, either of which may be unknown. */
function later(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.max(a, b);
}

async function wantsDebug1(
  policy: Debug1Policy,
  unknownOf: () => Promise<{ keys: number; inuseBytes: number }>,
  lastAt: number | undefined,
  nowMs: number,
): Promise<boolean> {
  if (policy.mode !== 'auto') return policy.mode === 'always';
  const unknown = await unknownOf();
  if (unknown.keys === 0) return false;
  if (lastAt === undefined) return true;
  return unknown.inuseBytes >= policy.minUnknownBytes && nowMs - lastAt >= policy.minIntervalMs;
}

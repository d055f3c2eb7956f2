import { decodeHeapProfile, type DecodeLimits } from '../pprof/decode.js';
import { parseDebug1Heap, unnamedPcs, type Debug1Heap } from '../pprof/debug1.js';
import { ProfileError } from '../pprof/errors.js';
import { PROFILE_MESSAGES } from '../pprof/messages.js';
import { learnHiddenFrames, restoreHiddenFrames, unknownRecords } from '../pprof/hidden-frames.js';
import { parseSymbolResponse, symbolQueries, type SymbolTable } from '../pprof/symbols.js';
import type { HeapProfile } from '../pprof/types.js';
import { CaptureError } from './errors.js';
import type { BinaryKnowledgeCache } from './binary-knowledge.js';

/** Fetches a path under a target's pprof prefix (directly or via the API server proxy). */
export interface PprofClient {
  /** For messages. */
  readonly description: string;
  /** `timeoutMs` overrides the client's own timeout for this request. */
  get(path: string, maxBytes: number, timeoutMs?: number): Promise<Buffer>;
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

export const DEFAULT_DEBUG1_POLICY: Debug1Policy = {
  mode: 'auto',
  minUnknownBytes: 1024 * 1024,
  minIntervalMs: 0,
  maxBytes: 256 * 1024 * 1024,
  timeoutMs: 60_000,
};

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
  debug1?: Partial<Debug1Policy>;
  /** Default: decodeHeapProfile and parseDebug1Heap, on the calling thread. */
  decoders?: CaptureDecoders;
  now?: () => Date;
}

export const DEFAULT_MAX_SYMBOL_REQUESTS = 64;

/** How the answers are decoded: the operator's worker decodes them in a thread, each once (src/worker/decode-gate.ts). */
export interface CaptureDecoders {
  proto(bytes: Buffer): Promise<HeapProfile>;
  debug1(bytes: Buffer): Promise<Debug1Heap>;
}

/**
 * One capture of a live process: the proto heap profile (the measurement:
 * timestamp, build id, raw bytes to download), and when this binary has
 * records not seen before, debug=1 (raw PCs with the hidden runtime frames)
 * and the names of its new PCs from /symbol, to learn them. Never forces a GC.
 */
export async function captureHeap(client: PprofClient, options: CaptureOptions): Promise<HeapCapture> {
  const { limits } = options;
  const policy = { ...DEFAULT_DEBUG1_POLICY, ...options.debug1 };
  const now = options.now ?? (() => new Date());
  const cost: CaptureCost = { requests: 0, bytes: 0, milliseconds: 0, debug1: false };
  const get = async (path: string, maxBytes: number, timeoutMs?: number): Promise<Buffer> => {
    const started = performance.now();
    cost.requests++;
    try {
      const body = await client.get(path, maxBytes, timeoutMs);
      cost.bytes += body.length;
      return body;
    } finally {
      cost.milliseconds += performance.now() - started;
    }
  };

  const proto = await get('/heap', limits.maxBytes);
  const protoProfile = options.decoders ? await options.decoders.proto(proto) : decodeHeapProfile(proto, limits);
  const time = protoProfile.time ?? now();
  const warnings: string[] = [];
  const buildId = protoProfile.buildId ?? '';
  const knowledge = options.knowledge.binary(buildId ? `${options.binaryScope ?? options.scope}\u0000${buildId}` : `${options.scope}\u0000`);
  const lookup = (key: string): readonly string[] | undefined => knowledge.hiddenFrames.get(key);

  let debug1: string | undefined;
  const symbols: SymbolTable = new Map();
  if (wantsDebug1(policy, protoProfile, lookup, knowledge.lastDebug1At, now().getTime())) {
    knowledge.lastDebug1At = now().getTime();
    try {
      const debug1Bytes = await get('/heap?debug=1', policy.maxBytes, policy.timeoutMs);
      cost.debug1 = true;
      const text = debug1Bytes.toString('utf8');
      const parsed = options.decoders ? await options.decoders.debug1(debug1Bytes) : parseDebug1Heap(text);
      debug1 = text;
      const unnamed = unnamedPcs(parsed);
      const batches = symbolQueries(unnamed.filter((pc) => !knowledge.symbols.has(pc)));
      const allowed = options.maxSymbolRequests ?? DEFAULT_MAX_SYMBOL_REQUESTS;
      for (const query of batches.slice(0, allowed)) {
        // GET: from a `go 1.22` line on, net/http/pprof's patterns are GET-only (POST answers 405).
        const answer = await get(`/symbol?${query}`, limits.maxBytes);
        for (const [pc, name] of parseSymbolResponse(answer.toString('utf8'))) knowledge.symbols.set(pc, name);
      }
      if (batches.length > allowed) {
        warnings.push(`symbol endpoint: ${batches.length - allowed} of ${batches.length} symbol requests left out (limit ${allowed} per capture)`);
      }
      for (const pc of unnamed) {
        const name = knowledge.symbols.get(pc);
        if (name) symbols.set(pc, name);
      }
      learnHiddenFrames(parsed, knowledge.symbols, knowledge.hiddenFrames);
      options.knowledge.trim();
    } catch (err) {
      if (!(err instanceof CaptureError || err instanceof ProfileError)) throw err;
      const what = debug1 === undefined ? 'debug=1 heap profile' : 'symbol endpoint';
      warnings.push(`${what}: ${err instanceof ProfileError ? PROFILE_MESSAGES[err.code] : err.message}`); // never a quoted target line
    }
  }
  const profile = restoreHiddenFrames(protoProfile, lookup);
  return { time, proto, debug1, symbols, profile: { ...profile, time }, warnings, cost };
}

function wantsDebug1(
  policy: Debug1Policy,
  profile: HeapProfile,
  lookup: (key: string) => readonly string[] | undefined,
  lastAt: number | undefined,
  nowMs: number,
): boolean {
  if (policy.mode !== 'auto') return policy.mode === 'always';
  const unknown = unknownRecords(profile, lookup);
  if (unknown.keys === 0) return false;
  if (lastAt === undefined) return true;
  return unknown.inuseBytes >= policy.minUnknownBytes && nowMs - lastAt >= policy.minIntervalMs;
}

import { decodeHeapProfile, type DecodeLimits } from '../pprof/decode.js';
import { debug1ToHeapProfile, parseDebug1Heap, unnamedPcs } from '../pprof/debug1.js';
import { ProfileError } from '../pprof/errors.js';
import { parseSymbolResponse, symbolQueries, type SymbolTable } from '../pprof/symbols.js';
import type { HeapProfile } from '../pprof/types.js';
import { CaptureError } from './errors.js';
import type { SymbolCache } from './symbol-cache.js';

/** Fetches a path under a target's pprof prefix (directly or via the API server proxy). */
export interface PprofClient {
  /** For messages and the symbol cache when the profile carries no build id. */
  readonly description: string;
  get(path: string, maxBytes: number): Promise<Buffer>;
}

export interface HeapCapture {
  time: Date;
  /** The gzipped proto exactly as served, for `go tool pprof`. */
  proto: Buffer;
  /** debug=1 text, when served. */
  debug1: string | undefined;
  /** Names of the hidden runtime PCs this capture used. */
  symbols: SymbolTable;
  /** The best decoded view: debug=1 with symbols when possible, otherwise the proto. */
  profile: HeapProfile;
  /** What could not be had, e.g. "symbol endpoint: HTTP 404"; the capture still counts. */
  warnings: string[];
}

export interface CaptureOptions {
  limits: DecodeLimits;
  symbols: SymbolCache;
  /**
   * Whose process this is, as the caller verified it (the operator: the
   * pod's namespace and uid). Symbol tables are keyed by scope and build id,
   * so a target that claims another binary's build id cannot change what
   * anyone else's analysis reads.
   */
  scope: string;
  /** Symbol requests one capture may make; PCs beyond them stay unnamed (a warning says so). */
  maxSymbolRequests?: number;
  now?: () => Date;
}

export const DEFAULT_MAX_SYMBOL_REQUESTS = 64;

/**
 * One capture of a live process: proto heap profile (timestamp, build id,
 * raw bytes to download), debug=1 text (raw PCs with the hidden runtime
 * frames) and the names of new PCs from /symbol. Never forces a GC.
 */
export async function captureHeap(client: PprofClient, options: CaptureOptions): Promise<HeapCapture> {
  const { limits, symbols: symbolCache } = options;
  const proto = await client.get('/heap', limits.maxBytes);
  const protoProfile = decodeHeapProfile(proto, limits);
  const time = protoProfile.time ?? (options.now ?? (() => new Date()))();
  const warnings: string[] = [];

  let debug1: string | undefined;
  try {
    debug1 = (await client.get('/heap?debug=1', limits.maxBytes)).toString('utf8');
  } catch (err) {
    warnings.push(`debug=1 heap profile: ${(err as Error).message}`);
  }
  if (debug1 === undefined) return { time, proto, debug1, symbols: new Map(), profile: protoProfile, warnings };

  let parsed;
  try {
    parsed = parseDebug1Heap(debug1);
  } catch (err) {
    warnings.push(`debug=1 heap profile: ${(err as Error).message}`);
    return { time, proto, debug1, symbols: new Map(), profile: protoProfile, warnings };
  }
  const binaryKey = `${options.scope}\u0000${protoProfile.buildId ?? ''}`;
  const table = symbolCache.table(binaryKey);
  const missing = symbolCache.missing(binaryKey, unnamedPcs(parsed));
  const batches = symbolQueries(missing);
  const allowed = options.maxSymbolRequests ?? DEFAULT_MAX_SYMBOL_REQUESTS;
  try {
    for (const query of batches.slice(0, allowed)) {
      // GET: from a `go 1.22` line on, net/http/pprof's patterns are GET-only (POST answers 405).
      const answer = await client.get(`/symbol?${query}`, limits.maxBytes);
      for (const [pc, name] of parseSymbolResponse(answer.toString('utf8'))) table.set(pc, name);
    }
  } catch (err) {
    if (!(err instanceof CaptureError || err instanceof ProfileError)) throw err;
    warnings.push(`symbol endpoint: ${err.message}`);
    return { time, proto, debug1, symbols: new Map(), profile: { ...protoProfile }, warnings };
  }
  if (batches.length > allowed) {
    warnings.push(`symbol endpoint: ${batches.length - allowed} of ${batches.length} symbol requests left out (limit ${allowed} per capture)`);
  }
  const symbols: SymbolTable = new Map();
  for (const pc of unnamedPcs(parsed)) {
    const name = table.get(pc);
    if (name) symbols.set(pc, name);
  }
  const profile = debug1ToHeapProfile(parsed, symbols);
  return { time, proto, debug1, symbols, profile: { ...profile, time, buildId: protoProfile.buildId }, warnings };
}

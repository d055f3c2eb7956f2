import { decodeHeapProfile, type DecodeLimits } from '../pprof/decode.js';
import { debug1ToHeapProfile, parseDebug1Heap, unnamedPcs } from '../pprof/debug1.js';
import { ProfileError } from '../pprof/errors.js';
import { formatSymbolRequest, parseSymbolResponse, type SymbolTable } from '../pprof/symbols.js';
import type { HeapProfile } from '../pprof/types.js';
import { CaptureError } from './errors.js';
import type { SymbolCache } from './symbol-cache.js';

/** Fetches a path under a target's pprof prefix (directly or via the API server proxy). */
export interface PprofClient {
  /** For messages and the symbol cache when the profile carries no build id. */
  readonly description: string;
  get(path: string, maxBytes: number): Promise<Buffer>;
  post(path: string, body: string, maxBytes: number): Promise<Buffer>;
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

const MAX_SYMBOL_BATCH = 4096;

/**
 * One capture of a live process: proto heap profile (timestamp, build id,
 * raw bytes to download), debug=1 text (raw PCs with the hidden runtime
 * frames) and the names of new PCs from /symbol. Never forces a GC.
 */
export async function captureHeap(
  client: PprofClient,
  limits: DecodeLimits,
  symbolCache: SymbolCache,
  now: () => Date = () => new Date(),
): Promise<HeapCapture> {
  const proto = await client.get('/heap', limits.maxBytes);
  const protoProfile = decodeHeapProfile(proto, limits);
  const time = protoProfile.time ?? now();
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
  const binaryKey = protoProfile.buildId ?? client.description;
  const table = symbolCache.table(binaryKey);
  const missing = symbolCache.missing(binaryKey, unnamedPcs(parsed));
  try {
    for (let i = 0; i < missing.length; i += MAX_SYMBOL_BATCH) {
      const batch = missing.slice(i, i + MAX_SYMBOL_BATCH);
      const answer = await client.post('/symbol', formatSymbolRequest(batch), limits.maxBytes);
      for (const [pc, name] of parseSymbolResponse(answer.toString('utf8'))) table.set(pc, name);
    }
  } catch (err) {
    if (!(err instanceof CaptureError || err instanceof ProfileError)) throw err;
    warnings.push(`symbol endpoint: ${err.message}`);
    return { time, proto, debug1, symbols: new Map(), profile: { ...protoProfile }, warnings };
  }
  const symbols: SymbolTable = new Map();
  for (const pc of unnamedPcs(parsed)) {
    const name = table.get(pc);
    if (name) symbols.set(pc, name);
  }
  const profile = debug1ToHeapProfile(parsed, symbols);
  return { time, proto, debug1, symbols, profile: { ...profile, time, buildId: protoProfile.buildId }, warnings };
}

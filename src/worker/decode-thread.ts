/**
 * Worker-thread entry: runs the pure decoders on a target's answer, and the
 * engine on a target's stored series, so that work which is slow or heavy
 * costs this thread, not the event loop that keeps job locks and leases
 * alive. Decoded results go back to the caller (`keep`), so nothing is
 * decoded twice.
 */
import { parentPort } from 'node:worker_threads';
import { attributeProfile } from '../analysis/attribute.js';
import { analyzeSeries, type SeriesAnalysis, type Thresholds } from '../analysis/series.js';
import { parseDebug1Heap, type Debug1Heap } from '../pprof/debug1.js';
import { decodeHeapColumns, type DecodeLimits } from '../pprof/decode.js';
import { ProfileError } from '../pprof/errors.js';
import { columnBuffers, copyColumns, type ProfileColumns } from '../pprof/columns.js';
import { applyRestoration, type Restoration } from '../pprof/hidden-frames.js';
import { parseStoredSnapshot, storedSnapshotJson } from '../store/series-store.js';
import { compactStackBuffers, compactStacks, type CompactStacks } from './compact-stacks.js';
import type { SummaryCaps } from '../store/summary-caps.js';

export type DecodeRequest =
  | {
      id: number;
      kind: 'proto' | 'debug1';
      bytes: Uint8Array;
      limits: DecodeLimits;
      /** Send the decoded result back (otherwise only whether it decoded). */
      keep?: boolean;
    }
  | {
      id: number;
      kind: 'attribute';
      /** The id of the proto request whose profile this thread kept. */
      ticket: number;
      /** The hidden frames the caller's knowledge put back onto that profile (restoreHiddenFrames, as a plan). */
      restoration: Restoration;
      /** The capture's time (ms since the epoch). */
      time: number;
      /** The admin's bounds on the stored summary (default DEFAULT_SUMMARY_CAPS). */
      caps?: SummaryCaps;
    }
  | {
      id: number;
      kind: 'series';
      /** A target's captures as the series store keeps them (UTF-8 JSON, oldest first). */
      snapshots: Uint8Array[];
      thresholds: Thresholds;
    };

export type DecodeReply =
  | {
      id: number;
      ok: true;
      records: number;
      /** The decoded profile, its stacks, addresses and hidden-frames states left empty: they come in `stacks`. */
      profile?: ProfileColumns;
      stacks?: CompactStacks;
      debug1?: Debug1Heap;
      analysis?: SeriesAnalysis;
      stored?: Uint8Array;
    }
  | { id: number; ok: false; code: ProfileError['code'] | 'Internal'; message: string };

/**
 * Profiles decoded with `keep`, by request id, until attributed. Bounded by
 * their records (a 122k-sample profile holds ~17 MB of this thread's heap as columns, 27 MB as records):
 * past the bound the largest kept profile is dropped (the new one too, if it
 * is the largest), so captures of small profiles never make room for big
 * ones; attributing a dropped one is refused (TooLarge), never moved to the
 * event loop. A profile with more records than the bound is refused as it
 * is decoded.
 */
const kept = new Map<number, ProfileColumns>();
export const MAX_KEPT_RECORDS = 400_000;
let keptRecords = 0;
const recordsOf = (profile: ProfileColumns | undefined): number => profile?.stackOf.length ?? 0;

function keep(id: number, profile: ProfileColumns): void {
  kept.set(id, profile);
  keptRecords += recordsOf(profile);
  while (keptRecords > MAX_KEPT_RECORDS) {
    let largest = id;
    for (const [other, p] of kept) if (recordsOf(p) > recordsOf(kept.get(largest))) largest = other;
    keptRecords -= recordsOf(kept.get(largest));
    kept.delete(largest);
  }
}

function take(id: number): ProfileColumns | undefined {
  const profile = kept.get(id);
  if (profile) {
    kept.delete(id);
    keptRecords -= recordsOf(profile);
  }
  return profile;
}

function answer(request: DecodeRequest): { reply: DecodeReply; transfer: ArrayBuffer[] } {
  if (request.kind === 'attribute') {
    const profile = take(request.ticket);
    if (!profile) throw new ProfileError('TooLarge', `dropped to keep the decode thread within ${MAX_KEPT_RECORDS} records of captures in flight (limit)`);
    const snapshot = attributeProfile(applyRestoration(profile, request.restoration));
    const stored = Buffer.from(storedSnapshotJson({ ...snapshot, time: new Date(request.time) }, request.caps), 'utf8');
    const owned = new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength);
    return { reply: { id: request.id, ok: true, records: recordsOf(profile), stored: owned }, transfer: stored.byteOffset === 0 && stored.byteLength === stored.buffer.byteLength ? [stored.buffer as ArrayBuffer] : [] };
  }
  if (request.kind === 'series') {
    const analysis = analyzeSeries(request.snapshots.map(parseStoredSnapshot), request.thresholds);
    return { reply: { id: request.id, ok: true, records: request.snapshots.length, analysis }, transfer: [] };
  }
  if (request.kind === 'proto') {
    const profile = decodeHeapColumns(request.bytes, { ...request.limits, maxRecords: MAX_KEPT_RECORDS });
    if (!request.keep) return { reply: { id: request.id, ok: true, records: recordsOf(profile) }, transfer: [] };
    keep(request.id, profile);
    // The thread keeps its columns for the attribution to come; the caller gets copies (a few MB, copied at memory speed).
    const copy = copyColumns(profile);
    const stacks = compactStacks(profile.stacks, profile.addresses, profile.hiddenFrames);
    return {
      reply: { id: request.id, ok: true, records: recordsOf(profile), profile: { ...copy, stacks: [], addresses: [], hiddenFrames: [] }, stacks },
      transfer: [...columnBuffers(copy), ...compactStackBuffers(stacks)],
    };
  }
  // Parsed from the bytes, a line at a time: a string of the whole answer would be one more copy of it on this heap.
  const heap = parseDebug1Heap(request.bytes);
  return { reply: { id: request.id, ok: true, records: heap.records.length, ...(request.keep ? { debug1: heap } : {}) }, transfer: [] };
}

parentPort?.on('message', (request: DecodeRequest) => {
  let reply: DecodeReply;
  let transfer: ArrayBuffer[] = [];
  try {
    ({ reply, transfer } = answer(request));
  } catch (err) {
    reply = err instanceof ProfileError ? { id: request.id, ok: false, code: err.code, message: err.message } : { id: request.id, ok: false, code: 'Internal', message: 'decoder failed' };
  }
  parentPort?.postMessage(reply, transfer);
});

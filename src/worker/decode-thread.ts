/**
 * Worker-thread entry: runs the pure decoders on a target's answer, and the
 * engine on a target's stored series, so that work which is slow or heavy
 * costs this thread, not the event loop that keeps job locks and leases
 * alive. Decoded results go back to the caller (`keep`), so nothing is
 * decoded twice.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { attributeProfile } from '../analysis/attribute.js';
import { analyzeSeries, type SeriesAnalysis, type Thresholds } from '../analysis/series.js';
import { learnWithin } from '../capture/binary-knowledge.js';
import { parseDebug1Heap, symbolQuestions, type Debug1Heap, type SymbolQuestions } from '../pprof/debug1.js';
import { decodeHeapColumns, type DecodeLimits } from '../pprof/decode.js';
import { ProfileError } from '../pprof/errors.js';
import { columnBuffers, copyColumns, type ProfileColumns } from '../pprof/columns.js';
import { applyRestoration, packHiddenFrames, type PackedHiddenFrames, type Restoration } from '../pprof/hidden-frames.js';
import type { SymbolTable } from '../pprof/symbols.js';
import { parseStoredSnapshot, storedSnapshotJson } from '../store/series-store.js';
import { compactStackBuffers, compactStacks, type CompactStacks } from './compact-stacks.js';
import { KeptLargestFirst } from './kept-largest-first.js';
import type { SummaryCaps } from '../store/summary-caps.js';

export type DecodeRequest =
  | {
      id: number;
      kind: 'proto' | 'debug1';
      bytes: Uint8Array;
      limits: DecodeLimits;
      /**
       * proto: send the decoded profile back (otherwise only whether it
       * decoded). debug1: keep the parse here for a `learn` request and send
       * back only its symbol questions.
       */
      keep?: boolean;
      /** debug1 with keep: the PCs the binary has names for (symbolQuestions). */
      knownPcs?: Float64Array;
      /** debug1 with keep: symbol queries one capture may make. */
      maxQueries?: number;
    }
  | {
      id: number;
      kind: 'learn';
      /** The id of the debug1 request whose parse this thread kept. */
      ticket: number;
      /** Names of the parse's unnamed PCs (the ones its symbol questions listed). */
      symbols: SymbolTable;
      /** The learned table may take at most this many bytes as knowledgeBytes counts them (the tenant's knowledge share). */
      maxBytes: number;
    }
  | {
      id: number;
      kind: 'forget';
      /** A kept debug=1 parse no learn request will come for (no reply). */
      ticket: number;
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
      /** debug1 with keep: what to ask /symbol, and what the kept parse holds (PARSED_COST). */
      questions?: SymbolQuestions;
      parsedBytes?: number;
      /** learn: the hidden frames learned, unless they pass the request's maxBytes (`overShare`). */
      learned?: PackedHiddenFrames;
      overShare?: boolean;
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
export const MAX_KEPT_RECORDS = 400_000;
const recordsOf = (profile: ProfileColumns): number => profile.stackOf.length;
const kept = new KeptLargestFirst<ProfileColumns>(MAX_KEPT_RECORDS, recordsOf);

/**
 * A quarter of the thread's heap in the operator (512 MiB): with the kept
 * protos (MAX_KEPT_RECORDS, ~56 MB as columns) and the answer being decoded
 * (at most one more parse), the thread stays within it.
 */
export const MAX_KEPT_DEBUG1_BYTES = 128 * 1024 * 1024;
const maxKeptDebug1Bytes: number = (workerData as { maxKeptDebug1Bytes?: number } | null)?.maxKeptDebug1Bytes ?? MAX_KEPT_DEBUG1_BYTES;
/**
 * debug=1 parses kept for their `learn`, by request id: their symbol
 * questions go to the caller, the parse never does. Bounded by what they
 * hold (PARSED_COST; the option maxKeptDebug1Bytes, default
 * MAX_KEPT_DEBUG1_BYTES): past the bound the largest is dropped, the new
 * one too if it is the largest (then refused at once: no symbol phase for a
 * parse that is gone); learning from a dropped one is refused (TooLarge).
 */
const keptDebug1 = new KeptLargestFirst<Debug1Heap>(maxKeptDebug1Bytes, (heap) => heap.parsedBytes);

const droppedDebug1 = (): ProfileError =>
  new ProfileError('TooLarge', `debug=1 heap profile: dropped to keep the decode thread within ${maxKeptDebug1Bytes} bytes of parses in flight (limit)`);

function answer(request: Exclude<DecodeRequest, { kind: 'forget' }>): { reply: DecodeReply; transfer: ArrayBuffer[] } {
  if (request.kind === 'attribute') {
    const profile = kept.take(request.ticket);
    if (!profile) throw new ProfileError('TooLarge', `dropped to keep the decode thread within ${MAX_KEPT_RECORDS} records of captures in flight (limit)`);
    const snapshot = attributeProfile(applyRestoration(profile, request.restoration));
    const stored = Buffer.from(storedSnapshotJson({ ...snapshot, time: new Date(request.time) }, request.caps), 'utf8');
    const owned = new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength);
    return { reply: { id: request.id, ok: true, records: recordsOf(profile), stored: owned }, transfer: stored.byteOffset === 0 && stored.byteLength === stored.buffer.byteLength ? [stored.buffer as ArrayBuffer] : [] };
  }
  if (request.kind === 'learn') {
    const heap = keptDebug1.take(request.ticket);
    if (!heap) throw droppedDebug1();
    const table = learnWithin(heap, request.symbols, request.maxBytes);
    if (!table) return { reply: { id: request.id, ok: true, records: heap.records.length, overShare: true }, transfer: [] };
    const learned = packHiddenFrames(table);
    return { reply: { id: request.id, ok: true, records: heap.records.length, learned }, transfer: [learned.pathOf.buffer as ArrayBuffer] };
  }
  if (request.kind === 'series') {
    const analysis = analyzeSeries(request.snapshots.map(parseStoredSnapshot), request.thresholds);
    return { reply: { id: request.id, ok: true, records: request.snapshots.length, analysis }, transfer: [] };
  }
  if (request.kind === 'proto') {
    const profile = decodeHeapColumns(request.bytes, { ...request.limits, maxRecords: MAX_KEPT_RECORDS });
    if (!request.keep) return { reply: { id: request.id, ok: true, records: recordsOf(profile) }, transfer: [] };
    kept.keep(request.id, profile);
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
  if (!request.keep) return { reply: { id: request.id, ok: true, records: heap.records.length }, transfer: [] };
  if (!keptDebug1.keep(request.id, heap)) throw droppedDebug1();
  const known = new Set(request.knownPcs ?? []);
  const questions = symbolQuestions(heap, (pc) => known.has(pc), request.maxQueries ?? 0);
  return { reply: { id: request.id, ok: true, records: heap.records.length, questions, parsedBytes: heap.parsedBytes }, transfer: [] };
}

parentPort?.on('message', (request: DecodeRequest) => {
  if (request.kind === 'forget') {
    keptDebug1.take(request.ticket);
    return;
  }
  let reply: DecodeReply;
  let transfer: ArrayBuffer[] = [];
  try {
    ({ reply, transfer } = answer(request));
  } catch (err) {
    reply = err instanceof ProfileError ? { id: request.id, ok: false, code: err.code, message: err.message } : { id: request.id, ok: false, code: 'Internal', message: 'decoder failed' };
  }
  parentPort?.postMessage(reply, transfer);
});

import { protoView, type Debug1Heap } from './debug1.js';
import { isProfilerStack } from './runtime-frames.js';
import type { SymbolTable } from './symbols.js';
import type { ProfileColumns } from './columns.js';
import type { Frame, HeapProfile, HeapRecord } from './types.js';

/**
 * The proto heap profile is the measurement: small, scaled by the runtime,
 * timestamped. What it lacks are the runtime frames at the leaf end of each
 * stack (the ones that say "map bucket array"). A debug=1 profile plus the
 * symbol endpoint has them, but is hundreds of times larger. So debug=1 only
 * teaches: for each record of a binary, identified by its visible stack and
 * object size, which hidden frames it has. That holds for every later
 * capture of the same binary, which then needs the proto alone.
 */

/** A record's identity across captures of one binary. */
export function recordKey(addresses: readonly number[], objectSize: number): string {
  return `${objectSize}|${addresses.join(',')}`;
}

/**
 * Hidden frame names, leaf first, per record key. One line can allocate
 * objects of one size through several runtime paths (measured: a map with
 * 136-byte values allocated 59,992 of its 60,000 entry objects through
 * mapassign, the other 8 during a rehash). The proto merges them into
 * samples with the same key, so the table keeps the path that allocated
 * most of the key's objects in the latest debug=1 that showed it.
 */
export type HiddenFrameTable = Map<string, readonly string[]>;

/**
 * Learns from one debug=1 profile whose unnamed PCs `symbols` names. Records
 * whose hidden PCs are not all named teach nothing.
 */
export function learnHiddenFrames(heap: Debug1Heap, symbols: SymbolTable, into: HiddenFrameTable = new Map()): HiddenFrameTable {
  const dominant = new Map<string, { hidden: string[]; objects: number }>();
  for (const record of heap.records) {
    const objects = record.allocObjects || record.inuseObjects;
    if (objects === 0) continue;
    const objectSize = Math.round((record.allocObjects ? record.allocBytes : record.inuseBytes) / objects);
    const { hiddenPcs, addresses } = protoView(heap, record);
    const hidden: string[] = [];
    let named = true;
    for (const pc of hiddenPcs) {
      const frames = heap.framesByPc.get(pc - 1);
      const name = symbols.get(pc - 1);
      if (frames) hidden.push(...frames.map((f) => f.function));
      else if (name !== undefined) hidden.push(name);
      else named = false;
    }
    if (!named || addresses.length === 0) continue;
    const key = recordKey(addresses, objectSize);
    const known = dominant.get(key);
    if (!known || objects > known.objects) dominant.set(key, { hidden, objects });
  }
  for (const [key, { hidden }] of dominant) into.set(key, hidden);
  return into;
}

/**
 * A hidden-frame table as it crosses to another thread: the record keys as
 * one string (one copy, not one object per key; a key is digits, `|` and
 * `,`, never a newline), the distinct paths once, and per key its path.
 */
export interface PackedHiddenFrames {
  keys: string;
  paths: string[][];
  pathOf: Int32Array;
}

export function packHiddenFrames(table: HiddenFrameTable): PackedHiddenFrames {
  const paths: string[][] = [];
  const pathByNames = new Map<string, number>();
  const pathOf = new Int32Array(table.size);
  let i = 0;
  for (const hidden of table.values()) {
    const joined = hidden.join('\n');
    let path = pathByNames.get(joined);
    if (path === undefined) pathByNames.set(joined, (path = paths.push([...hidden]) - 1));
    pathOf[i++] = path;
  }
  return { keys: [...table.keys()].join('\n'), paths, pathOf };
}

/**
 * Sets a packed table's entries into `into`, in the order learnHiddenFrames
 * set them (keys with one path share its array), pausing after every
 * `slice` entries: the caller may yield between them.
 */
export function* unpackHiddenFrames(packed: PackedHiddenFrames, into: HiddenFrameTable, slice = Number.POSITIVE_INFINITY): Generator<void, void, void> {
  const { keys, paths, pathOf } = packed;
  let at = 0;
  for (let i = 0; i < pathOf.length; i++) {
    if (i > 0 && i % slice === 0) yield;
    const end = keys.indexOf('\n', at);
    const key = keys.slice(at, end < 0 ? keys.length : end);
    at = end < 0 ? keys.length : end + 1;
    into.set(key, paths[pathOf[i] as number] ?? []);
  }
}

/**
 * The proto's records with their hidden frames put back wherever the table
 * knows them; the others stay as they were (`absent`), for size signatures.
 */
export function restoreHiddenFrames(profile: HeapProfile, lookup: (key: string) => readonly string[] | undefined): HeapProfile {
  // Records that shared a stack keep sharing one (the analysis works per stack).
  const restored = new Map<string, Frame[]>();
  const records = profile.records.map((record): HeapRecord => {
    if (record.hiddenFrames === 'resolved' || record.addresses.length === 0) return record;
    const key = recordKey(record.addresses, record.objectSize);
    const hidden = lookup(key);
    if (!hidden) return record;
    let stack = restored.get(key);
    if (!stack) {
      stack = [...hiddenStack(hidden), ...record.stack];
      restored.set(key, stack);
    }
    return { ...record, stack, hiddenFrames: 'resolved' };
  });
  return { ...profile, records };
}

const hiddenStack = (names: readonly string[]): Frame[] => names.map((name): Frame => ({ function: name, file: '', line: 0 }));

/**
 * What restoreHiddenFrames put back, small enough to send to another
 * thread that holds the same decoded profile: the distinct hidden paths,
 * and per record the path it got (-1: none).
 */
export interface Restoration {
  paths: string[][];
  pathOf: Int32Array;
}

/** The restoration that turned `original` (as decoded) into `restored` (restoreHiddenFrames of it). */
export function restorationBetween(original: { stacks: readonly Frame[][]; stackOf: Int32Array }, restored: HeapProfile): Restoration {
  const pathOf = new Int32Array(restored.records.length).fill(-1);
  const paths: string[][] = [];
  const pathByStack = new Map<Frame[], number>();
  const pathByNames = new Map<string, number>();
  restored.records.forEach((record, i) => {
    const visible = original.stacks[original.stackOf[i] as number] as Frame[];
    if (record.stack === visible) return;
    let path = pathByStack.get(record.stack);
    if (path === undefined) {
      const names = record.stack.slice(0, record.stack.length - visible.length).map((f) => f.function);
      const joined = names.join('\n');
      path = pathByNames.get(joined);
      if (path === undefined) pathByNames.set(joined, (path = paths.push(names) - 1));
      pathByStack.set(record.stack, path);
    }
    pathOf[i] = path;
  });
  return { paths, pathOf };
}

/** The decoded profile, as columns, with a restoration applied: the records restoreHiddenFrames made from it. */
export function applyRestoration(profile: ProfileColumns, restoration: Restoration): ProfileColumns {
  const { stackOf } = profile;
  if (restoration.pathOf.length !== stackOf.length) throw new Error('restoration is for another profile');
  const stacks = [...profile.stacks];
  const addresses = [...profile.addresses];
  const hiddenFrames = [...profile.hiddenFrames];
  const restoredStackOf = new Int32Array(stackOf);
  // One restored stack per visible stack and path, shared by its records.
  const restored = new Map<number, number>();
  for (let i = 0; i < stackOf.length; i++) {
    const path = restoration.pathOf[i] as number;
    if (path < 0) continue;
    const visible = stackOf[i] as number;
    const key = visible * restoration.paths.length + path;
    let stack = restored.get(key);
    if (stack === undefined) {
      stack = stacks.push([...hiddenStack(restoration.paths[path] ?? []), ...(profile.stacks[visible] as Frame[])]) - 1;
      addresses.push(profile.addresses[visible] as number[]);
      hiddenFrames.push('resolved');
      restored.set(key, stack);
    }
    restoredStackOf[i] = stack;
  }
  return { ...profile, stacks, addresses, hiddenFrames, stackOf: restoredStackOf };
}

/**
 * Records the table cannot restore: how many keys, and the bytes they hold
 * in use. The profiler's own allocations (serving the last debug=1 made
 * plenty) are left out: nothing about them needs hidden frames.
 */
export function unknownRecords(profile: HeapProfile, lookup: (key: string) => readonly string[] | undefined): { keys: number; inuseBytes: number } {
  const seen = new Set<string>();
  let inuseBytes = 0;
  for (const record of profile.records) {
    const key = unknownRecordKey(record, lookup);
    if (key === undefined) continue;
    seen.add(key);
    inuseBytes += record.inuseBytes;
  }
  return { keys: seen.size, inuseBytes };
}

/** The key of a record whose hidden frames are still to learn (unknownRecords counts them); undefined when known or nothing to learn. */
export function unknownRecordKey(record: HeapRecord, lookup: (key: string) => readonly string[] | undefined): string | undefined {
  if (record.addresses.length === 0 || isProfilerStack(record.stack)) return undefined;
  const key = recordKey(record.addresses, record.objectSize);
  return lookup(key) === undefined ? key : undefined;
}



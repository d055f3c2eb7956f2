import type { Frame, HeapProfile, HeapRecord, HiddenFrames } from './types.js';

/**
 * A heap profile as the engine reads it: one entry per distinct stack
 * (records share them, as the decoders make them share one array) and the
 * per-record numbers in typed arrays. The proto decoder writes this layout
 * directly and attribution reads it, so a 122k-sample profile makes no
 * object per sample; postMessage moves the arrays between threads without
 * copying. `HeapProfile.records` is the same data as one object per record,
 * for the formats and steps that edit records (debug=1, restoring hidden
 * frames).
 */
export interface ProfileColumns {
  format: HeapProfile['format'];
  time: number | undefined;
  memProfileRate: number;
  buildId: string | undefined;
  goVersion: string | undefined;
  stacks: Frame[][];
  addresses: number[][];
  hiddenFrames: HiddenFrames[];
  /** Per record: index into stacks. */
  stackOf: Int32Array;
  objectSize: Float64Array;
  inuseObjects: Float64Array;
  inuseBytes: Float64Array;
  allocObjects: Float64Array;
  allocBytes: Float64Array;
}

export function profileToColumns(profile: HeapProfile): ProfileColumns {
  const n = profile.records.length;
  const columns: ProfileColumns = {
    format: profile.format,
    time: profile.time?.getTime(),
    memProfileRate: profile.memProfileRate,
    buildId: profile.buildId,
    goVersion: profile.goVersion,
    stacks: [],
    addresses: [],
    hiddenFrames: [],
    stackOf: new Int32Array(n),
    objectSize: new Float64Array(n),
    inuseObjects: new Float64Array(n),
    inuseBytes: new Float64Array(n),
    allocObjects: new Float64Array(n),
    allocBytes: new Float64Array(n),
  };
  // A stack is shared by records that share its array, its addresses and its hidden-frames state.
  const indexOf = new Map<Frame[], { addresses: number[]; hidden: HiddenFrames; index: number }[]>();
  profile.records.forEach((record, i) => {
    let candidates = indexOf.get(record.stack);
    if (!candidates) indexOf.set(record.stack, (candidates = []));
    let found = candidates.find((c) => c.addresses === record.addresses && c.hidden === record.hiddenFrames);
    if (!found) {
      found = { addresses: record.addresses, hidden: record.hiddenFrames, index: columns.stacks.length };
      candidates.push(found);
      columns.stacks.push(record.stack);
      columns.addresses.push(record.addresses);
      columns.hiddenFrames.push(record.hiddenFrames);
    }
    columns.stackOf[i] = found.index;
    columns.objectSize[i] = record.objectSize;
    columns.inuseObjects[i] = record.inuseObjects;
    columns.inuseBytes[i] = record.inuseBytes;
    columns.allocObjects[i] = record.allocObjects;
    columns.allocBytes[i] = record.allocBytes;
  });
  return columns;
}

/** The same profile with its own per-record arrays (stacks shared), so one copy can be transferred while the other is kept. */
export function copyColumns(columns: ProfileColumns): ProfileColumns {
  return {
    ...columns,
    stackOf: columns.stackOf.slice(),
    objectSize: columns.objectSize.slice(),
    inuseObjects: columns.inuseObjects.slice(),
    inuseBytes: columns.inuseBytes.slice(),
    allocObjects: columns.allocObjects.slice(),
    allocBytes: columns.allocBytes.slice(),
  };
}

/** The typed arrays of `columns`, for postMessage's transfer list. */
export function columnBuffers(columns: ProfileColumns): ArrayBuffer[] {
  return [columns.stackOf, columns.objectSize, columns.inuseObjects, columns.inuseBytes, columns.allocObjects, columns.allocBytes].map((a) => a.buffer as ArrayBuffer);
}

export function profileFromColumns(columns: ProfileColumns): HeapProfile {
  const records: HeapRecord[] = new Array(columns.stackOf.length);
  for (let i = 0; i < records.length; i++) {
    const s = columns.stackOf[i] as number;
    records[i] = {
      stack: columns.stacks[s] as Frame[],
      hiddenFrames: columns.hiddenFrames[s] as HiddenFrames,
      addresses: columns.addresses[s] as number[],
      objectSize: columns.objectSize[i] as number,
      inuseObjects: columns.inuseObjects[i] as number,
      inuseBytes: columns.inuseBytes[i] as number,
      allocObjects: columns.allocObjects[i] as number,
      allocBytes: columns.allocBytes[i] as number,
    };
  }
  return {
    format: columns.format,
    time: columns.time === undefined ? undefined : new Date(columns.time),
    memProfileRate: columns.memProfileRate,
    buildId: columns.buildId,
    ...(columns.goVersion !== undefined ? { goVersion: columns.goVersion } : {}),
    records,
  };
}

import { ProfileError } from './errors.js';
import type { Frame, HeapProfile, HeapRecord } from './types.js';

/**
 * A purpose-built reader of the fields of profile.proto
 * (github.com/google/pprof/proto/profile.proto) a heap profile needs: one
 * pass over the top-level message, then one over the samples, with no
 * per-field objects. Field numbers below are the .proto's.
 */

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_BYTES = 2;
const WIRE_FIXED32 = 5;

class Reader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start: number,
    public end: number,
  ) {
    this.pos = start;
  }

  /** Reads another part of the same buffer (one reader for every sample, no allocation each). */
  reset(start: number, end: number): this {
    this.pos = start;
    this.end = end;
    return this;
  }

  /** Varints as numbers: exact up to 2^53, which every count, size and address in a heap profile is. */
  varint(): number {
    const buf = this.buf;
    if (this.pos >= this.end) throw malformed('message ends inside a field');
    let byte = buf[this.pos++] as number;
    if (byte < 0x80) return byte;
    let value = byte & 0x7f;
    let multiplier = 0x80;
    for (let i = 1; i < 10; i++) {
      if (this.pos >= this.end) throw malformed('varint runs past the end');
      byte = buf[this.pos++] as number;
      value += (byte & 0x7f) * multiplier;
      if (byte < 0x80) return value;
      multiplier *= 0x80;
    }
    throw malformed('varint longer than 10 bytes');
  }

  /** End offset of a length-delimited field whose length comes next. */
  lengthEnd(): number {
    const length = this.varint();
    const end = this.pos + length;
    if (end > this.end) throw malformed('field runs past the end of its message');
    return end;
  }

  skip(wire: number): void {
    if (wire === WIRE_VARINT) this.varint();
    else if (wire === WIRE_BYTES) this.pos = this.lengthEnd();
    else if (wire === WIRE_FIXED64) this.pos += 8;
    else if (wire === WIRE_FIXED32) this.pos += 4;
    else throw malformed(`unsupported wire type ${wire}`);
    if (this.pos > this.end) throw malformed('field runs past the end of its message');
  }

  /** A repeated integer field, packed or not, appended to `into`. */
  repeated(wire: number, into: number[]): void {
    if (wire === WIRE_BYTES) {
      const end = this.lengthEnd();
      while (this.pos < end) into.push(this.varint());
      if (this.pos !== end) throw malformed('packed field overruns');
    } else if (wire === WIRE_VARINT) {
      into.push(this.varint());
    } else {
      throw malformed(`repeated integer with wire type ${wire}`);
    }
  }
}

function malformed(what: string): ProfileError {
  return new ProfileError('NotAProfile', `not a pprof protobuf: ${what}`);
}

interface RawFunction {
  name: number;
  filename: number;
}

interface RawLine {
  functionId: number;
  line: number;
}

interface RawLocation {
  address: number;
  lines: RawLine[];
}

/** A distinct stack (its location ids, leaf first) and the arrays every sample of it shares. */
interface SharedStack {
  ids: number[];
  stack: Frame[];
  addresses: number[];
}

/** A hash of a location id sequence, to find the stack a sample shares without building a string key. */
function hashIds(ids: readonly number[]): number {
  let hash = 0x811c9dc5;
  for (const id of ids) hash = Math.imul(hash ^ id, 0x01000193) ^ Math.floor(id / 0x100000000);
  return hash >>> 0;
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const textDecoder = new TextDecoder('utf-8');

/** Decodes an inflated proto heap profile (as served by /debug/pprof/heap). */
export function decodeProtoHeap(bytes: Uint8Array): HeapProfile {
  const top = new Reader(bytes, 0, bytes.length);
  const sampleTypes: number[] = []; // string index of each sample type's name
  const sampleStarts: number[] = [];
  const sampleEnds: number[] = [];
  const strings: string[] = [];
  const functions = new Map<number, RawFunction>();
  const locations = new Map<number, RawLocation>();
  let firstMappingBuildId = -1;
  let timeNanos = 0;
  let period = 0;

  while (top.pos < top.end) {
    const tag = top.varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire !== WIRE_BYTES || (field !== 1 && field !== 2 && field !== 3 && field !== 4 && field !== 5 && field !== 6)) {
      if (field === 9 && wire === WIRE_VARINT) timeNanos = top.varint();
      else if (field === 12 && wire === WIRE_VARINT) period = top.varint();
      else top.skip(wire);
      continue;
    }
    const end = top.lengthEnd();
    const start = top.pos;
    top.pos = end;
    switch (field) {
      case 1:
        sampleTypes.push(readValueType(new Reader(bytes, start, end)));
        break;
      case 2:
        sampleStarts.push(start);
        sampleEnds.push(end);
        break;
      case 3:
        if (firstMappingBuildId < 0) firstMappingBuildId = readMappingBuildId(new Reader(bytes, start, end));
        break;
      case 4:
        readLocation(new Reader(bytes, start, end), locations);
        break;
      case 5:
        readFunction(new Reader(bytes, start, end), functions);
        break;
      case 6:
        strings.push(textDecoder.decode(bytes.subarray(start, end)));
        break;
    }
  }

  const str = (index: number): string => strings[index] ?? '';
  if (sampleTypes.length === 0 || strings.length < 2) {
    throw new ProfileError('NotAProfile', 'not a pprof protobuf: no sample types');
  }
  const typeIndex = new Map<string, number>();
  sampleTypes.forEach((name, i) => typeIndex.set(str(name), i));
  const column = (name: string): number => typeIndex.get(name) ?? -1;
  const inuseObjects = column('inuse_objects');
  const inuseSpace = column('inuse_space');
  const allocObjects = column('alloc_objects');
  const allocSpace = column('alloc_space');
  // Services that serve only what is in use (or only allocations) are still heap profiles.
  const hasInuse = inuseObjects >= 0 && inuseSpace >= 0;
  const hasAlloc = allocObjects >= 0 && allocSpace >= 0;
  if (!hasInuse && !hasAlloc) {
    const found = [...typeIndex.keys()].join(', ');
    throw new ProfileError('NotAHeapProfile', `not a heap profile: no inuse_objects/inuse_space or alloc_objects/alloc_space sample types (has: ${found})`);
  }

  const frames = new Map<number, Frame[]>();
  const framesOf = (id: number): Frame[] => {
    let known = frames.get(id);
    if (known) return known;
    const location = locations.get(id);
    // pprof lists inlined frames innermost first, matching leaf-first stacks.
    known = (location?.lines ?? []).map((line): Frame => {
      const fn = functions.get(line.functionId);
      return { function: fn ? str(fn.name) : '?', file: fn ? str(fn.filename) : '', line: line.line };
    });
    frames.set(id, known);
    return known;
  };

  const bytesKey = strings.indexOf('bytes');
  const records: HeapRecord[] = new Array(sampleStarts.length);
  const stacks = new Map<number, SharedStack | SharedStack[]>();
  const shared = (ids: number[]): SharedStack => {
    const hash = hashIds(ids);
    const found = stacks.get(hash);
    if (found && !Array.isArray(found) && sameIds(found.ids, ids)) return found;
    if (Array.isArray(found)) for (const s of found) if (sameIds(s.ids, ids)) return s;
    const stack: Frame[] = [];
    const addresses: number[] = [];
    for (const id of ids) {
      for (const frame of framesOf(id)) stack.push(frame);
      addresses.push(locations.get(id)?.address ?? 0);
    }
    const created: SharedStack = { ids: [...ids], stack, addresses };
    if (!found) stacks.set(hash, created);
    else if (Array.isArray(found)) found.push(created);
    else stacks.set(hash, [found, created]);
    return created;
  };
  const reader = new Reader(bytes, 0, 0);
  const locationIds: number[] = [];
  const values: number[] = [];
  for (let s = 0; s < sampleStarts.length; s++) {
    reader.reset(sampleStarts[s] as number, sampleEnds[s] as number);
    locationIds.length = 0;
    values.length = 0;
    let sizeLabel = -1;
    while (reader.pos < reader.end) {
      const tag = reader.varint();
      const field = Math.floor(tag / 8);
      const wire = tag & 7;
      if (field === 1) reader.repeated(wire, locationIds);
      else if (field === 2) reader.repeated(wire, values);
      else if (field === 3 && wire === WIRE_BYTES) {
        const num = readLabelNum(reader, reader.lengthEnd(), bytesKey);
        if (num >= 0) sizeLabel = num;
      } else reader.skip(wire);
    }
    const { stack, addresses } = shared(locationIds);
    const inuseObjectCount = inuseObjects < 0 ? 0 : (values[inuseObjects] ?? 0);
    const inuseByteCount = inuseSpace < 0 ? 0 : (values[inuseSpace] ?? 0);
    const allocObjectCount = allocObjects < 0 ? 0 : (values[allocObjects] ?? 0);
    const allocByteCount = allocSpace < 0 ? 0 : (values[allocSpace] ?? 0);
    const objects = allocObjectCount || inuseObjectCount;
    const objectSize = sizeLabel >= 0 ? sizeLabel : objects > 0 ? Math.round((allocByteCount || inuseByteCount) / objects) : 0;
    records[s] = {
      stack,
      addresses,
      hiddenFrames: 'absent',
      objectSize,
      inuseObjects: inuseObjectCount,
      inuseBytes: inuseByteCount,
      allocObjects: allocObjectCount,
      allocBytes: allocByteCount,
    };
  }

  const buildId = firstMappingBuildId > 0 ? str(firstMappingBuildId) || undefined : undefined;
  return {
    format: 'proto',
    time: timeNanos > 0 ? new Date(Math.floor(timeNanos / 1e6)) : undefined,
    memProfileRate: period || 512 * 1024,
    buildId,
    records,
  };
}

/** ValueType: 1 type, 2 unit. */
function readValueType(r: Reader): number {
  let type = 0;
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag === (1 << 3) + WIRE_VARINT) type = r.varint();
    else r.skip(tag & 7);
  }
  return type;
}

/** Mapping: 6 build_id. */
function readMappingBuildId(r: Reader): number {
  let buildId = 0;
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag === (6 << 3) + WIRE_VARINT) buildId = r.varint();
    else r.skip(tag & 7);
  }
  return buildId;
}

/** Location: 1 id, 3 address, 4 line (Line: 1 function_id, 2 line). */
function readLocation(r: Reader, into: Map<number, RawLocation>): void {
  let id = 0;
  const location: RawLocation = { address: 0, lines: [] };
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag === (1 << 3) + WIRE_VARINT) id = r.varint();
    else if (tag === (3 << 3) + WIRE_VARINT) location.address = r.varint();
    else if (tag === (4 << 3) + WIRE_BYTES) {
      const end = r.lengthEnd();
      const line: RawLine = { functionId: 0, line: 0 };
      while (r.pos < end) {
        const lineTag = r.varint();
        if (lineTag === (1 << 3) + WIRE_VARINT) line.functionId = r.varint();
        else if (lineTag === (2 << 3) + WIRE_VARINT) line.line = r.varint();
        else r.skip(lineTag & 7);
      }
      location.lines.push(line);
    } else r.skip(tag & 7);
  }
  into.set(id, location);
}

/** Function: 1 id, 2 name, 4 filename. */
function readFunction(r: Reader, into: Map<number, RawFunction>): void {
  let id = 0;
  const fn: RawFunction = { name: 0, filename: 0 };
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag === (1 << 3) + WIRE_VARINT) id = r.varint();
    else if (tag === (2 << 3) + WIRE_VARINT) fn.name = r.varint();
    else if (tag === (4 << 3) + WIRE_VARINT) fn.filename = r.varint();
    else r.skip(tag & 7);
  }
  into.set(id, fn);
}

/** Label: 1 key, 3 num; the num of the label keyed `wantedKey`, or -1. */
function readLabelNum(r: Reader, end: number, wantedKey: number): number {
  let key = -1;
  let num = -1;
  while (r.pos < end) {
    const tag = r.varint();
    if (tag === (1 << 3) + WIRE_VARINT) key = r.varint();
    else if (tag === (3 << 3) + WIRE_VARINT) num = r.varint();
    else r.skip(tag & 7);
  }
  if (r.pos !== end) throw malformed('label overruns');
  return key === wantedKey && wantedKey >= 0 ? num : -1;
}

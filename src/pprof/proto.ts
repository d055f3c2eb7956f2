import { ProfileError } from './errors.js';
import { profileFromColumns, type ProfileColumns } from './columns.js';
import type { Frame, HeapProfile, HiddenFrames } from './types.js';
import { beginProfile, internFrame, MAX_FRAMES_PER_FUNCTION } from './frame-table.js';

/**
 * A purpose-built reader of the fields of profile.proto
 * (github.com/google/pprof/proto/profile.proto) a heap profile needs. Field
 * numbers below are the .proto's.
 *
 * One pass over the top-level message keeps the offsets of samples and
 * strings and reads locations and functions into flat arrays; a second pass
 * reads the samples (whose columns and `bytes` label are named by strings,
 * which Go writes last). Strings are decoded only when a frame needs one.
 * Nothing is allocated per sample but its record: location ids go into one
 * reused array, and records with the same location ids share one stack.
 * Every table grows with the input it was read from, so an allocation is
 * bounded by the profile's size.
 */

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_BYTES = 2;
const WIRE_FIXED32 = 5;

/** A tag as a field number: `>>> 3` is exact below 2^32; larger tags name no field we read. */
const fieldOf = (tag: number): number => (tag < 0x100000000 ? tag >>> 3 : -1);

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

  /**
   * Varints as numbers: exact up to 2^53, which every count, size and
   * address in a heap profile is. Most are one or two bytes (tags, ids,
   * small counts): those take the short paths.
   */
  varint(): number {
    const buf = this.buf;
    let pos = this.pos;
    if (pos >= this.end) throw malformed('message ends inside a field');
    const b0 = buf[pos++] as number;
    if (b0 < 0x80) {
      this.pos = pos;
      return b0;
    }
    if (pos < this.end) {
      const b1 = buf[pos] as number;
      if (b1 < 0x80) {
        this.pos = pos + 1;
        return (b0 & 0x7f) | (b1 << 7);
      }
    }
    this.pos = pos - 1;
    return this.longVarint();
  }

  /** Three or more bytes: 28 bits in integer arithmetic, the rest as doubles (no 64-bit integers in a number). */
  private longVarint(): number {
    const buf = this.buf;
    const end = this.end;
    let pos = this.pos;
    let value = 0;
    let shift = 0;
    for (; shift < 28; shift += 7) {
      if (pos >= end) throw malformed('varint runs past the end');
      const byte = buf[pos++] as number;
      value |= (byte & 0x7f) << shift;
      if (byte < 0x80) {
        this.pos = pos;
        return value;
      }
    }
    let multiplier = 0x10000000;
    for (let i = 4; i < 10; i++) {
      if (pos >= end) throw malformed('varint runs past the end');
      const byte = buf[pos++] as number;
      value += (byte & 0x7f) * multiplier;
      if (byte < 0x80) {
        this.pos = pos;
        return value;
      }
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
}

function malformed(what: string): ProfileError {
  return new ProfileError('NotAProfile', `not a pprof protobuf: ${what}`);
}

/** A growable array of unsigned 32-bit integers (offsets, indexes), doubling as it fills. */
class U32List {
  data: Uint32Array;
  length = 0;
  constructor(capacity: number) {
    this.data = new Uint32Array(Math.max(16, capacity));
  }
  push(value: number): void {
    if (this.length === this.data.length) {
      const grown = new Uint32Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = value;
  }
}

/**
 * Ids to table indexes. Go's writer numbers locations and functions 1..N,
 * so an array indexed by id serves; other writers' ids (any uint64) go to a
 * Map. A later entry with the same id replaces an earlier one.
 */
class IdIndex {
  private readonly dense: Int32Array | undefined;
  private readonly sparse: Map<number, number> | undefined;
  constructor(ids: readonly number[]) {
    let max = 0;
    for (let i = 0; i < ids.length; i++) if ((ids[i] as number) > max) max = ids[i] as number;
    if (max <= 2 * ids.length + 1024) {
      this.dense = new Int32Array(max + 1).fill(-1);
      for (let i = 0; i < ids.length; i++) this.dense[ids[i] as number] = i;
    } else {
      this.sparse = new Map();
      for (let i = 0; i < ids.length; i++) this.sparse.set(ids[i] as number, i);
    }
  }
  /** The index of the last entry with this id, or -1. */
  get(id: number): number {
    if (this.dense) return id < this.dense.length ? (this.dense[id] as number) : -1;
    return this.sparse?.get(id) ?? -1;
  }
}

const textDecoder = new TextDecoder('utf-8');

/** What the first pass keeps: the tables, and where the samples and strings are. */
class Tables {
  readonly sampleTypes: number[] = []; // string index of each sample type's name
  readonly samples: U32List; // start, end of each sample
  readonly strings = new U32List(1024); // start, end of each string
  readonly locationIds: number[] = [];
  readonly locationAddresses: number[] = [];
  /** Per location, where its lines start in lineFunctionIds/lineNumbers (one more entry at the end). */
  readonly locationLines = new U32List(1024);
  readonly lineFunctionIds: number[] = [];
  readonly lineNumbers: number[] = [];
  readonly functionIds: number[] = [];
  readonly functionNames: number[] = [];
  readonly functionFiles: number[] = [];
  firstMappingBuildId = -1;
  timeNanos = 0;
  period = 0;
  constructor(size: number) {
    // Two offsets a sample, and samples take ~22 bytes each in Go's profiles: room for one every 16 bytes seldom regrows.
    this.samples = new U32List(size >>> 3);
  }
}

/** Decodes an inflated proto heap profile (as served by /debug/pprof/heap), one object per record. */
export function decodeProtoHeap(bytes: Uint8Array, maxRecords = Number.POSITIVE_INFINITY): HeapProfile {
  return profileFromColumns(decodeProtoColumns(bytes, maxRecords));
}

/** Decodes an inflated proto heap profile into the engine's column layout: no object per sample. */
export function decodeProtoColumns(bytes: Uint8Array, maxRecords = Number.POSITIVE_INFINITY): ProfileColumns {
  const tables = readTables(bytes);
  // Counted in the first pass, before a record is made.
  const samples = tables.samples.length >>> 1;
  if (samples > maxRecords) throw new ProfileError('TooLarge', `profile holds ${samples} samples, more than the ${maxRecords} allowed (limit)`);
  const names = new Names(bytes, tables);
  if (tables.sampleTypes.length === 0 || names.count < 2) {
    throw new ProfileError('NotAProfile', 'not a pprof protobuf: no sample types');
  }
  const typeIndex = new Map<string, number>();
  tables.sampleTypes.forEach((name, i) => typeIndex.set(names.str(name), i));
  const column = (name: string): number => typeIndex.get(name) ?? -1;
  const columns: Columns = {
    inuseObjects: column('inuse_objects'),
    inuseSpace: column('inuse_space'),
    allocObjects: column('alloc_objects'),
    allocSpace: column('alloc_space'),
    bytesKey: names.indexOf(BYTES_KEY),
  };
  // Services that serve only what is in use (or only allocations) are still heap profiles.
  const hasInuse = columns.inuseObjects >= 0 && columns.inuseSpace >= 0;
  const hasAlloc = columns.allocObjects >= 0 && columns.allocSpace >= 0;
  if (!hasInuse && !hasAlloc) {
    const found = [...typeIndex.keys()].join(', ');
    throw new ProfileError('NotAHeapProfile', `not a heap profile: no inuse_objects/inuse_space or alloc_objects/alloc_space sample types (has: ${found})`);
  }
  beginProfile();
  const stacks = new Stacks(tables, names);
  const buildId = tables.firstMappingBuildId > 0 ? names.str(tables.firstMappingBuildId) || undefined : undefined;
  const profile: ProfileColumns = {
    format: 'proto',
    time: tables.timeNanos > 0 ? Math.floor(tables.timeNanos / 1e6) : undefined,
    memProfileRate: tables.period || 512 * 1024,
    buildId,
    goVersion: undefined,
    stacks: stacks.frames,
    addresses: stacks.addresses,
    hiddenFrames: [],
    stackOf: new Int32Array(samples),
    objectSize: new Float64Array(samples),
    inuseObjects: new Float64Array(samples),
    inuseBytes: new Float64Array(samples),
    allocObjects: new Float64Array(samples),
    allocBytes: new Float64Array(samples),
  };
  readSamples(bytes, tables, columns, stacks, profile);
  // The proto format drops the runtime frames that allocated.
  profile.hiddenFrames = new Array<HiddenFrames>(stacks.frames.length).fill('absent');
  return profile;
}

/** The top-level message: every field but samples and strings read here, those two only located. */
function readTables(bytes: Uint8Array): Tables {
  const t = new Tables(bytes.length);
  const top = new Reader(bytes, 0, bytes.length);
  const sub = new Reader(bytes, 0, 0);
  while (top.pos < top.end) {
    const tag = top.varint();
    const field = fieldOf(tag);
    const wire = tag & 7;
    if (wire !== WIRE_BYTES || field < 1 || field > 6) {
      if (field === 9 && wire === WIRE_VARINT) t.timeNanos = top.varint();
      else if (field === 12 && wire === WIRE_VARINT) t.period = top.varint();
      else top.skip(wire);
      continue;
    }
    const end = top.lengthEnd();
    const start = top.pos;
    top.pos = end;
    if (field === 2) {
      t.samples.push(start);
      t.samples.push(end);
    } else if (field === 4) readLocation(sub.reset(start, end), t);
    else if (field === 5) readFunction(sub.reset(start, end), t);
    else if (field === 6) {
      t.strings.push(start);
      t.strings.push(end);
    } else if (field === 1) t.sampleTypes.push(readValueType(sub.reset(start, end)));
    else if (field === 3 && t.firstMappingBuildId < 0) t.firstMappingBuildId = readMappingBuildId(sub.reset(start, end));
  }
  t.locationLines.push(t.lineNumbers.length);
  return t;
}

/** Location: 1 id, 3 address, 4 line (Line: 1 function_id, 2 line). */
function readLocation(r: Reader, t: Tables): void {
  let id = 0;
  let address = 0;
  t.locationLines.push(t.lineNumbers.length);
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag === (1 << 3) + WIRE_VARINT) id = r.varint();
    else if (tag === (3 << 3) + WIRE_VARINT) address = r.varint();
    else if (tag === (4 << 3) + WIRE_BYTES) {
      const end = r.lengthEnd();
      let functionId = 0;
      let line = 0;
      while (r.pos < end) {
        const lineTag = r.varint();
        if (lineTag === (1 << 3) + WIRE_VARINT) functionId = r.varint();
        else if (lineTag === (2 << 3) + WIRE_VARINT) line = r.varint();
        else r.skip(lineTag & 7);
      }
      t.lineFunctionIds.push(functionId);
      t.lineNumbers.push(line);
    } else r.skip(tag & 7);
  }
  t.locationIds.push(id);
  t.locationAddresses.push(address);
}

/** Function: 1 id, 2 name, 4 filename. */
function readFunction(r: Reader, t: Tables): void {
  let id = 0;
  let name = 0;
  let filename = 0;
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag === (1 << 3) + WIRE_VARINT) id = r.varint();
    else if (tag === (2 << 3) + WIRE_VARINT) name = r.varint();
    else if (tag === (4 << 3) + WIRE_VARINT) filename = r.varint();
    else r.skip(tag & 7);
  }
  t.functionIds.push(id);
  t.functionNames.push(name);
  t.functionFiles.push(filename);
}

/** The string table, each string decoded the first time it is asked for. */
class Names {
  readonly count: number;
  private readonly decoded: (string | undefined)[];
  private readonly offsets: Uint32Array;
  constructor(
    private readonly bytes: Uint8Array,
    tables: Tables,
  ) {
    this.count = tables.strings.length >>> 1;
    this.offsets = tables.strings.data;
    this.decoded = new Array(this.count);
  }

  /** String `index`; '' past the end of the table. */
  str(index: number): string {
    if (!(index < this.count)) return '';
    let known = this.decoded[index];
    if (known === undefined) {
      known = decodeString(this.bytes, this.offsets[2 * index] as number, this.offsets[2 * index + 1] as number);
      this.decoded[index] = known;
    }
    return known;
  }

  /** The index of the first string equal to `wanted`, or -1. */
  indexOf(wanted: Uint8Array): number {
    const { bytes, offsets } = this;
    for (let i = 0; i < this.count; i++) {
      const start = offsets[2 * i] as number;
      if ((offsets[2 * i + 1] as number) - start !== wanted.length) continue;
      let same = true;
      for (let k = 0; k < wanted.length && same; k++) same = bytes[start + k] === wanted[k];
      if (same) return i;
    }
    return -1;
  }
}

/** Where the heap columns are among a sample's values, and the string index of the `bytes` label's key. */
interface Columns {
  inuseObjects: number;
  inuseSpace: number;
  allocObjects: number;
  allocSpace: number;
  bytesKey: number;
}

/** One sample's heap columns, kept as its values are read (no array per sample). */
class SampleValues {
  inuseObjects = 0;
  inuseBytes = 0;
  allocObjects = 0;
  allocBytes = 0;
  private count = 0;
  constructor(private readonly c: Columns) {}
  clear(): void {
    this.inuseObjects = this.inuseBytes = this.allocObjects = this.allocBytes = this.count = 0;
  }
  /** The next value in the sample's order of sample types. */
  add(value: number): void {
    const { c, count } = this;
    if (count === c.inuseObjects) this.inuseObjects = value;
    else if (count === c.inuseSpace) this.inuseBytes = value;
    else if (count === c.allocObjects) this.allocObjects = value;
    else if (count === c.allocSpace) this.allocBytes = value;
    this.count = count + 1;
  }
}

/** Sample: 1 location_id, 2 value (both packed or not), 3 label. */
function readSamples(bytes: Uint8Array, t: Tables, c: Columns, stacks: Stacks, into: ProfileColumns): void {
  const { stackOf, objectSize: objectSizes, inuseObjects: inuseObjectsOf, inuseBytes: inuseBytesOf, allocObjects: allocObjectsOf, allocBytes: allocBytesOf } = into;
  const offsets = t.samples.data;
  const sampleCount = t.samples.length >>> 1;
  const reader = new Reader(bytes, 0, 0);
  const v = new SampleValues(c);
  for (let s = 0; s < sampleCount; s++) {
    reader.reset(offsets[2 * s] as number, offsets[2 * s + 1] as number);
    v.clear();
    let sizeLabel = -1;
    stacks.begin();
    while (reader.pos < reader.end) {
      const tag = reader.varint();
      if (tag === (1 << 3) + WIRE_BYTES) {
        // Packed, as every writer sends them.
        const end = reader.lengthEnd();
        while (reader.pos < end) stacks.push(reader.varint());
        if (reader.pos !== end) throw malformed('packed field overruns');
      } else if (tag === (2 << 3) + WIRE_BYTES) {
        const end = reader.lengthEnd();
        while (reader.pos < end) v.add(reader.varint());
        if (reader.pos !== end) throw malformed('packed field overruns');
      } else if (tag === (3 << 3) + WIRE_BYTES) {
        const num = readLabelNum(reader, reader.lengthEnd(), c.bytesKey);
        if (num >= 0) sizeLabel = num;
      } else if (tag === (1 << 3) + WIRE_VARINT) stacks.push(reader.varint());
      else if (tag === (2 << 3) + WIRE_VARINT) v.add(reader.varint());
      else {
        const field = fieldOf(tag);
        const wire = tag & 7;
        if (field === 1 || field === 2) throw malformed(`repeated integer with wire type ${wire}`);
        reader.skip(wire);
      }
    }
    const stack = stacks.end();
    const { inuseObjects, inuseBytes, allocObjects, allocBytes } = v;
    const objects = allocObjects || inuseObjects;
    const objectSize = sizeLabel >= 0 ? sizeLabel : objects > 0 ? Math.round((allocBytes || inuseBytes) / objects) : 0;
    stackOf[s] = stack;
    objectSizes[s] = objectSize;
    inuseObjectsOf[s] = inuseObjects;
    inuseBytesOf[s] = inuseBytes;
    allocObjectsOf[s] = allocObjects;
    allocBytesOf[s] = allocBytes;
  }
}

/**
 * The distinct location sequences of a profile's samples, each with the
 * frames and addresses every record of it shares: an open-addressing hash
 * table over the sequences, kept end to end in one array. A sample's
 * locations are pushed as table indexes (-1: no such location) between
 * begin() and end().
 */
class Stacks {
  readonly frames: Frame[][] = [];
  readonly addresses: number[][] = [];
  private path: Int32Array = new Int32Array(64);
  private depth = 0;
  private paths: Int32Array = new Int32Array(4096);
  private pathsLength = 0;
  private starts: number[] = [];
  private lengths: number[] = [];
  private hashes: number[] = [];
  /** Slot: stack index + 1, 0 when free; the size is a power of two, at most half full. */
  private slots: Int32Array = new Int32Array(4096);
  private readonly locations: IdIndex;
  private readonly functions: IdIndex;
  /** One frame list per location, made when a stack first uses it. */
  private readonly framesOfLocation: (Frame[] | undefined)[];
  /**
   * Per function index, its frames: one per line, whichever locations (PCs)
   * name it (up to MAX_FRAMES_PER_FUNCTION lines), and from the second
   * capture on the objects of the captures before (internFrame). The engine
   * keys what it learns of a frame, and its sites, by the object, and tells
   * equal frames that are distinct objects apart by value.
   */
  private readonly framesOfFunction: (Frame[] | undefined)[];

  constructor(
    private readonly t: Tables,
    private readonly names: Names,
  ) {
    this.locations = new IdIndex(t.locationIds);
    this.functions = new IdIndex(t.functionIds);
    this.framesOfLocation = new Array(t.locationIds.length);
    this.framesOfFunction = new Array(t.functionIds.length + 1); // [0]: lines of no known function
  }

  begin(): void {
    this.depth = 0;
  }

  push(locationId: number): void {
    if (this.depth === this.path.length) {
      const grown = new Int32Array(this.path.length * 2);
      grown.set(this.path);
      this.path = grown;
    }
    this.path[this.depth++] = this.locations.get(locationId);
  }

  /** The stack of the locations pushed since begin(), found or made. */
  end(): number {
    const { path, depth } = this;
    const hash = hashPath(path, depth);
    const mask = this.slots.length - 1;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const entry = this.slots[slot] as number;
      if (entry === 0) return this.add(hash);
      const stack = entry - 1;
      if (this.hashes[stack] === hash && this.lengths[stack] === depth && this.samePath(stack)) return stack;
    }
  }

  private add(hash: number): number {
    const { path, depth } = this;
    const stack = this.frames.length;
    let frameCount = 0;
    for (let i = 0; i < depth; i++) if ((path[i] as number) >= 0) frameCount += this.framesOf(path[i] as number).length;
    const frames: Frame[] = new Array(frameCount);
    const addresses: number[] = new Array(depth);
    let f = 0;
    for (let i = 0; i < depth; i++) {
      const location = path[i] as number;
      if (location >= 0) {
        const ofLocation = this.framesOf(location);
        for (let k = 0; k < ofLocation.length; k++) frames[f++] = ofLocation[k] as Frame;
        addresses[i] = this.t.locationAddresses[location] as number;
      } else addresses[i] = 0;
    }
    this.frames.push(frames);
    this.addresses.push(addresses);
    if (this.pathsLength + depth > this.paths.length) {
      const grown = new Int32Array(Math.max(this.paths.length * 2, this.pathsLength + depth));
      grown.set(this.paths.subarray(0, this.pathsLength));
      this.paths = grown;
    }
    for (let i = 0; i < depth; i++) this.paths[this.pathsLength + i] = path[i] as number;
    this.starts.push(this.pathsLength);
    this.lengths.push(depth);
    this.pathsLength += depth;
    this.hashes.push(hash);
    if (2 * (stack + 1) > this.slots.length) this.rehash();
    else this.place(stack, hash);
    return stack;
  }

  /** pprof lists inlined frames innermost first, matching leaf-first stacks. */
  private framesOf(location: number): Frame[] {
    let known = this.framesOfLocation[location];
    if (known) return known;
    const { t, names, functions } = this;
    const first = t.locationLines.data[location] as number;
    const lineEnd = t.locationLines.data[location + 1] as number;
    known = new Array(lineEnd - first);
    for (let l = first; l < lineEnd; l++) {
      const fn = functions.get(t.lineFunctionIds[l] as number);
      const line = t.lineNumbers[l] as number;
      // Per function, its frames so far: a few lines each, scanned (a number key past 2^31 would be a heap number to hash).
      let ofFunction = this.framesOfFunction[fn + 1];
      if (!ofFunction) this.framesOfFunction[fn + 1] = ofFunction = [];
      let frame: Frame | undefined;
      for (let k = 0; k < ofFunction.length; k++) if ((ofFunction[k] as Frame).line === line) frame = ofFunction[k];
      if (!frame) {
        frame = fn >= 0 ? internFrame(names.str(t.functionNames[fn] as number), names.str(t.functionFiles[fn] as number), line) : internFrame('?', '', line);
        if (ofFunction.length < MAX_FRAMES_PER_FUNCTION) ofFunction.push(frame);
      }
      known[l - first] = frame;
    }
    this.framesOfLocation[location] = known;
    return known;
  }

  private samePath(stack: number): boolean {
    const start = this.starts[stack] as number;
    const { path, paths, depth } = this;
    for (let i = 0; i < depth; i++) if (paths[start + i] !== path[i]) return false;
    return true;
  }

  private place(stack: number, hash: number): void {
    const mask = this.slots.length - 1;
    let slot = hash & mask;
    while (this.slots[slot] !== 0) slot = (slot + 1) & mask;
    this.slots[slot] = stack + 1;
  }

  private rehash(): void {
    this.slots = new Int32Array(this.slots.length * 2);
    for (let stack = 0; stack < this.frames.length; stack++) this.place(stack, this.hashes[stack] as number);
  }
}

/** FNV-1a over the location indexes, finished so that nearby sequences spread over the table. */
function hashPath(path: Int32Array, depth: number): number {
  let hash = 0x811c9dc5 ^ depth;
  for (let i = 0; i < depth; i++) hash = Math.imul(hash ^ (path[i] as number), 0x01000193);
  hash ^= hash >>> 15;
  hash = Math.imul(hash, 0x2c1b3c6d);
  return (hash ^ (hash >>> 12)) & 0x7fffffff;
}

/** UTF-8 as the TextDecoder reads it (bad bytes become U+FFFD); ASCII, nearly every symbol, without it. */
function decodeString(bytes: Uint8Array, start: number, end: number): string {
  if (end - start <= 64) {
    let ascii = true;
    for (let i = start; i < end; i++) {
      if ((bytes[i] as number) >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii) return String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[]);
  }
  return textDecoder.decode(bytes.subarray(start, end));
}

const BYTES_KEY = new TextEncoder().encode('bytes');

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

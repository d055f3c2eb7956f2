import { allocatedSize, pointerSliceGrowth, ROUNDINGS, type Rounding } from './sizeclass.js';
import type { MapComponent } from './frames.js';

/**
 * Map memory inferred from object sizes alone, for profiles without the
 * hidden runtime frames. Every object a map allocates has a size that
 * follows from the runtime's rules and the map's slot size; the table of
 * all of them is built once, at load, and a site is explained by looking up
 * each of its distinct object sizes.
 *
 * The rules (Go source):
 * - classic maps (runtime/map.go, Go ≤ 1.23): a bucket is 8 tophash bytes,
 *   8 keys, 8 elems and an overflow pointer, so 16 + 8·slot bytes, where
 *   slot = key + elem bytes as stored (each over 128 bytes is stored out of
 *   line, as a pointer). makeBucketArray allocates 2^B buckets, plus 2^(B−4)
 *   spare overflow buckets from B = 4, widened to fill the size class.
 *   Overflow buckets beyond those are single buckets; for buckets without
 *   pointers every overflow bucket is also appended to a `[]*bmap` slice
 *   (createOverflow), whose growth leaves its own chain of sizes.
 * - swiss maps (internal/runtime/maps, Go ≥ 1.24): a group is 8 control
 *   bytes and 8 slots, so 8 + 8·slot bytes. A table holds 2^j groups,
 *   doubling from 2 to 128 (1024 slots), then splits into two full tables.
 *   A small map is one group and no table. Tables have a 32-byte header;
 *   a directory is a `[]*table`.
 * - sizes: small objects are rounded to their size class (with an 8-byte
 *   malloc header for objects with pointers above 512 bytes from Go 1.22),
 *   objects above 32 KiB to whole 8 KiB pages (runtime.roundupsize).
 */
export interface SizeSignature {
  impl: 'classic' | 'swiss';
  /** Key + elem bytes per slot as the map stores them. */
  slotBytes: number;
  /** Bytes of one classic bucket or one swiss group. */
  unitBytes: number;
  /** Object sizes that belong to the map, with the part of the map each is. */
  components: Map<number, MapComponent>;
  /** Bytes (allocated, or in use without allocation figures) the signature explains at the site. */
  explainedBytes: number;
  /** Of those, bytes of out-of-line keys and elems. */
  entryBytes: number;
  /** 0..1: a long doubling chain is strong, a single table size is weak. */
  strength: number;
  /** A bucket array larger than any swiss groups array: only a classic map does that. */
  provesClassic: boolean;
  /** Many more full tables than smaller tables: only a swiss map (tables split at 1024 slots) does that. */
  provesSwiss: boolean;
}

export interface SizeStats {
  objects: number;
  bytes: number;
}

type Impl = SizeSignature['impl'];

interface Shape {
  impl: Impl;
  slotBytes: number;
  unitBytes: number;
  rounding: Rounding;
  /** Allocated size of the structure at each level (classic: B; swiss: log2 of the group count). */
  levelSizes: number[];
  /** The first level of LARGE_OBJECT bytes or more: from there on, a site's sizes are in its levels bits (plausibleShapesOf). */
  firstLargeLevel: number;
}

interface Candidate {
  shape: number;
  level: number;
}

const MAX_SLOT_BYTES = 256; // two 128-byte fields; larger ones are stored as pointers
const MAX_INLINE_FIELD = 128;
const FIRST_SPARE_B = 4; // makeBucketArray adds 2^(B-4) overflow buckets from B = 4
const MAX_CLASSIC_B = 31; // levels are bits of a 32-bit mask; 2^31 buckets of 24 bytes are 48 GiB
const MAX_STRUCTURE_BYTES = 2 ** 38;
const SWISS_FULL_LEVEL = 7; // 128 groups = 1024 slots (maxTableCapacity)
const SWISS_TABLE_HEADER = 32; // internal/runtime/maps.table
const POINTER = 8;
/** Objects from 1 KiB up: where bucket arrays and swiss tables live, and where sizes start to mean something. */
const LARGE_OBJECT = 1024;

/**
 * What each of the caches below may hold, in numbers (8 bytes each, an
 * entry's own overhead counted as ENTRY_NUMBERS more). The caches outlive
 * one profile (the operator's decode thread reads every tenant's), so what
 * they hold is bounded whatever a profile holds: ~16 MB each at most.
 */
const MAX_CACHED_NUMBERS = 2_000_000;
const ENTRY_NUMBERS = 16;
/** Entries one hash may have: a profile made to collide gets no quadratic look-ups. */
const MAX_PER_HASH = 4;

/**
 * A cache keyed by a number hash, each entry told from the others of its
 * hash by an exact compare. It starts afresh when full.
 */
class HashedCache<Entry> {
  private readonly byHash = new Map<number, Entry[]>();
  private held = 0;

  constructor(private readonly maxNumbers: number) {}

  /** Numbers held, entries' overhead included (for tests and tools). */
  get numbers(): number {
    return this.held;
  }

  find(hash: number, matches: (entry: Entry) => boolean): Entry | undefined {
    const entries = this.byHash.get(hash);
    if (!entries) return undefined;
    for (let k = 0; k < entries.length; k++) if (matches(entries[k] as Entry)) return entries[k];
    return undefined;
  }

  /** Holds `entry` (of `numbers` numbers): one larger than a thousandth of the cache (a site of hundreds of sizes, rare) is not worth holding. */
  add(hash: number, entry: Entry, numbers: number): void {
    const weight = numbers + ENTRY_NUMBERS;
    if (weight > this.maxNumbers / 1024) return;
    if (this.held + weight > this.maxNumbers) {
      this.byHash.clear();
      this.held = 0;
    }
    const entries = this.byHash.get(hash);
    if (!entries) this.byHash.set(hash, [entry]);
    else if (entries.length < MAX_PER_HASH) entries.push(entry);
    else return;
    this.held += weight;
  }
}

function classicLevels(bucket: number, rounding: Rounding): number[] {
  const sizes: number[] = [];
  for (let b = 0; b <= MAX_CLASSIC_B; b++) {
    const buckets = 2 ** b + (b >= FIRST_SPARE_B ? 2 ** (b - FIRST_SPARE_B) : 0);
    const bytes = bucket * buckets;
    if (bytes > MAX_STRUCTURE_BYTES) break;
    sizes.push(allocatedSize(bytes, rounding));
  }
  return sizes;
}

function swissLevels(group: number, rounding: Rounding): number[] {
  const sizes: number[] = [];
  for (let j = 0; j <= SWISS_FULL_LEVEL; j++) sizes.push(allocatedSize(group * 2 ** j, rounding));
  return sizes;
}

function shape(impl: Impl, slotBytes: number, unitBytes: number, rounding: Rounding, levelSizes: number[]): Shape {
  const firstLarge = levelSizes.findIndex((size) => size >= LARGE_OBJECT);
  return { impl, slotBytes, unitBytes, rounding, levelSizes, firstLargeLevel: firstLarge < 0 ? levelSizes.length : firstLarge };
}

const SHAPES: Shape[] = [];
for (const rounding of ROUNDINGS) {
  for (let slot = 1; slot <= MAX_SLOT_BYTES; slot++) {
    const bucket = 16 + 8 * slot;
    SHAPES.push(shape('classic', slot, bucket, rounding, classicLevels(bucket, rounding)));
    const group = 8 + 8 * slot;
    SHAPES.push(shape('swiss', slot, group, rounding, swissLevels(group, rounding)));
  }
}

/** Allocated object size → every (shape, level) whose structure has that size. */
const STRUCTURES = new Map<number, Candidate[]>();
SHAPES.forEach((shape, id) => {
  shape.levelSizes.forEach((size, level) => {
    const list = STRUCTURES.get(size);
    if (!list) STRUCTURES.set(size, [{ shape: id, level }]);
    // A shape's levels come one after another: a size two of its levels share is already its last entry.
    else if ((list[list.length - 1] as Candidate).shape !== id) list.push({ shape: id, level });
  });
});

/** Whether a map structure (bucket array, table) of some shape has this allocated size from 1 KiB up: only such a size can start a signature. */
export function isStructureSize(size: number): boolean {
  return size >= LARGE_OBJECT && STRUCTURES.has(size);
}

/** Sizes of the `[]*bmap` overflow slices of classic maps (both roundings). */
const OVERFLOW_SLICES = new Set(ROUNDINGS.flatMap((r) => pointerSliceGrowth(r, MAX_STRUCTURE_BYTES)));
/** Sizes of swiss directories (`[]*table` of 2^d entries). */
const DIRECTORIES = new Set(
  ROUNDINGS.flatMap((r) => Array.from({ length: 31 }, (_, d) => allocatedSize(POINTER * 2 ** d, r))),
);
/** Largest groups array any swiss map allocates. */
const LARGEST_SWISS_GROUPS = Math.max(...SHAPES.filter((s) => s.impl === 'swiss').map((s) => s.levelSizes[SWISS_FULL_LEVEL] as number));
/** Out-of-line keys and elems are objects of more than 128 bytes. */
const SMALLEST_ENTRY = allocatedSize(MAX_INLINE_FIELD + 1);

/** A map site allocates few large sizes besides its own structure. */
const MAX_UNEXPLAINED_LARGE_SIZES = 4;
/** Three sizes of one classic chain: two page-rounded sizes one doubling apart are too easily a coincidence. */
const MIN_CLASSIC_STEPS = 3;
/** A lone full-table size counts only as a size class of 8–32 KiB held by many objects. */
const LONE_TABLE_MIN = 8192;
const LONE_TABLE_MAX = 32768;
const LONE_TABLE_OBJECTS = 8;
/** Full tables outnumbering every smaller table this many times over: the swiss split, not a classic chain. */
const SWISS_SPLIT_RATIO = 4;
/** runtime/map.go loadFactorNum/loadFactorDen: a classic map grows at 6.5 entries per bucket. */
const CLASSIC_LOAD = 6.5;
/** 1024 slots × 7/8 load (maxAvgGroupLoad) / 2 tables after a split / 2 (the parent is freed). */
const SWISS_INSERTS_PER_FULL_TABLE = (1024 * 7) / 8 / 4;

/** Levels of each shape seen at the site being explained, as bits (shape id → mask); reset after each site. */
const SEEN_LEVELS = new Uint32Array(SHAPES.length);
const CLASSIC_CHAIN_LEVELS = ~((1 << FIRST_SPARE_B) - 1);

/**
 * Could the levels seen make a signature at all? Cheap bit tests, so that
 * only a few shapes per site get the full look.
 */
function worthAFullLook(shape: Shape, levels: number): boolean {
  if (shape.impl === 'classic') {
    const chain = levels & CLASSIC_CHAIN_LEVELS;
    return (chain & (chain >>> 1) & (chain >>> 2)) !== 0;
  }
  if ((levels & (1 << SWISS_FULL_LEVEL)) === 0) return false;
  const fullSize = shape.levelSizes[SWISS_FULL_LEVEL] as number;
  return (levels & (1 << (SWISS_FULL_LEVEL - 1))) !== 0 || (fullSize >= LONE_TABLE_MIN && fullSize <= LONE_TABLE_MAX);
}

/**
 * Shapes worth a full look for a set of large sizes. Sites share size sets
 * (size classes, page multiples), so the candidate walk runs once per set.
 * Keyed by a hash of the set; each entry keeps its sizes to be told from
 * others of its hash.
 */
interface SizeSet {
  sizes: Float64Array;
  plausible: PlausibleShapes;
}
const PLAUSIBLE_BY_SIZE_SET = new HashedCache<SizeSet>(MAX_CACHED_NUMBERS);

/** Shapes (and their levels seen) worth a full look at a site; empty when no signature can explain it. */
export type PlausibleShapes = Int32Array;

/**
 * The shapes worth a full look for a site whose distinct structure sizes
 * (isStructureSize) are `sizes`, from the sizes alone: a site with none is
 * left before any shape is looked at. Sorts `sizes`.
 */
export function plausibleShapesOf(sizes: number[]): PlausibleShapes {
  if (sizes.length === 0) return NONE;
  sortAscending(sizes);
  const hash = sizeSetHash(sizes);
  const known = PLAUSIBLE_BY_SIZE_SET.find(hash, (entry) => sameSizes(entry.sizes, sizes));
  if (known) return known.plausible;
  const touched: number[] = [];
  for (const size of sizes) {
    const candidates = STRUCTURES.get(size) as Candidate[];
    for (let c = 0; c < candidates.length; c++) {
      const { shape, level } = candidates[c] as Candidate;
      if (SEEN_LEVELS[shape] === 0) touched.push(shape);
      SEEN_LEVELS[shape] = (SEEN_LEVELS[shape] as number) | (1 << level);
    }
  }
  const plausible: number[] = [];
  for (const id of touched) {
    if (worthAFullLook(SHAPES[id] as Shape, SEEN_LEVELS[id] as number)) plausible.push(id, SEEN_LEVELS[id] as number);
    SEEN_LEVELS[id] = 0;
  }
  const result = Int32Array.from(plausible);
  PLAUSIBLE_BY_SIZE_SET.add(hash, { sizes: Float64Array.from(sizes), plausible: result }, sizes.length + result.length);
  return result;
}

/** The size-set cache's key (exported for the tests of what it does when two sets hash alike). */
export function sizeSetHash(sortedSizes: readonly number[]): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < sortedSizes.length; i++) hash = mixNumber(hash, sortedSizes[i] as number);
  return hash;
}

function sameSizes(held: Float64Array, sizes: readonly number[]): boolean {
  if (held.length !== sizes.length) return false;
  for (let i = 0; i < sizes.length; i++) if (held[i] !== sizes[i]) return false;
  return true;
}

/** An insertion sort: a site has a few structure sizes, and Array.prototype.sort allocates on every call. */
function sortAscending(values: number[]): void {
  if (values.length > 16) {
    values.sort((a, b) => a - b);
    return;
  }
  for (let i = 1; i < values.length; i++) {
    const value = values[i] as number;
    let j = i - 1;
    while (j >= 0 && (values[j] as number) > value) {
      values[j + 1] = values[j] as number;
      j--;
    }
    values[j + 1] = value;
  }
}
const NONE = new Int32Array(0);

/**
 * One site's figures per distinct object size, as columns in the order the
 * sizes first came (which orders ties and sums as the records did).
 */
export class SizeFigures {
  readonly sizes: number[] = [];
  readonly objects: number[] = [];
  readonly bytes: number[] = [];
  private readonly at = new Map<number, number>();

  static of(bySize: ReadonlyMap<number, SizeStats>): SizeFigures {
    const figures = new SizeFigures();
    for (const [size, stats] of bySize) figures.add(size, stats.objects, stats.bytes);
    return figures;
  }

  /** Empty again, for the next site (one SizeFigures serves a profile's sites in turn). */
  clear(): void {
    this.sizes.length = 0;
    this.objects.length = 0;
    this.bytes.length = 0;
    this.at.clear();
  }

  add(size: number, objects: number, bytes: number): void {
    let i = this.at.get(size);
    if (i === undefined) {
      this.at.set(size, (i = this.sizes.push(size) - 1));
      this.objects.push(0);
      this.bytes.push(0);
    }
    this.objects[i] = (this.objects[i] as number) + objects;
    this.bytes[i] = (this.bytes[i] as number) + bytes;
  }

  /** The size's column, or -1. */
  indexOf(size: number): number {
    return this.at.get(size) ?? -1;
  }

  get count(): number {
    return this.sizes.length;
  }

  /** Its sizes from which a map structure could start a signature (isStructureSize), ascending. */
  structureSizes(): number[] {
    const sizes: number[] = [];
    for (let i = 0; i < this.sizes.length; i++) if (isStructureSize(this.sizes[i] as number)) sizes.push(this.sizes[i] as number);
    return sizes;
  }
}

/**
 * The best classic and the best swiss explanation of one site's object
 * sizes, if any explains it. `plausible`: plausibleShapesOf the site's
 * sizes, when the caller has it already.
 */
export function inferSizeSignatures(site: ReadonlyMap<number, SizeStats> | SizeFigures, plausible?: PlausibleShapes): SizeSignature[] {
  const figures = site instanceof SizeFigures ? site : SizeFigures.of(site);
  const shapes = plausible ?? plausibleShapesOf(figures.structureSizes());
  if (shapes.length === 0) return [];
  // Most sites are the same from one capture to the next: explain each distinct site once.
  const hash = figuresHash(figures);
  const known = SIGNATURES_BY_SITE.find(hash, (entry) => sameFigures(entry.figures, figures));
  if (known) return known.signatures;
  const found = explainSite(figures, shapes);
  let components = 0;
  for (const signature of found) components += signature.components.size;
  SIGNATURES_BY_SITE.add(hash, { figures: figuresOf(figures), signatures: found }, 3 * figures.count + NUMBERS_PER_COMPONENT * components);
  return found;
}

/** Sites explained before, by a hash of their sizes and figures; each keeps its figures (size, objects, bytes, ...) to be told from others of its hash. */
const SIGNATURES_BY_SITE = new HashedCache<{ figures: Float64Array; signatures: SizeSignature[] }>(MAX_CACHED_NUMBERS);
/** A component held in a signature's Map costs about what five numbers do. */
const NUMBERS_PER_COMPONENT = 5;

/**
 * The site cache's key: a number, not a joined string (hashing a fresh
 * string of every site's figures cost more than explaining some sites).
 * Exported for the tests of what the cache does when two sites hash alike.
 */
export function figuresHash(site: SizeFigures): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < site.count; i++) {
    hash = mixNumber(hash, site.sizes[i] as number);
    hash = mixNumber(hash, site.objects[i] as number);
    hash = mixNumber(hash, site.bytes[i] as number);
  }
  return hash;
}

/** FNV-1a over a number's low and high 32 bits. */
function mixNumber(hash: number, x: number): number {
  return Math.imul(Math.imul(hash ^ (x >>> 0), 0x01000193) ^ Math.floor(x / 4294967296), 0x01000193);
}

function figuresOf(site: SizeFigures): Float64Array {
  const figures = new Float64Array(3 * site.count);
  for (let i = 0, at = 0; i < site.count; i++) {
    figures[at++] = site.sizes[i] as number;
    figures[at++] = site.objects[i] as number;
    figures[at++] = site.bytes[i] as number;
  }
  return figures;
}

function sameFigures(figures: Float64Array, site: SizeFigures): boolean {
  if (figures.length !== 3 * site.count) return false;
  for (let i = 0, at = 0; i < site.count; i++, at += 3) {
    if (figures[at] !== site.sizes[i] || figures[at + 1] !== site.objects[i] || figures[at + 2] !== site.bytes[i]) return false;
  }
  return true;
}

/**
 * The reading of the shape being looked at: which part of the map each of
 * the site's sizes would be (by column; 0 for none), in the order found.
 * One scratch for every shape of every site: a shape that does not explain
 * the site allocates nothing, and most do not.
 */
const reading = {
  componentAt: new Uint8Array(64),
  order: [] as number[],
  strength: 0,
  provesClassic: false,
  provesSwiss: false,
};

/** Components as numbers in the scratch (0 is none). */
const COMPONENTS: readonly MapComponent[] = ['unknown', 'buckets', 'overflow', 'groups', 'table', 'directory', 'entry'];
const [BUCKETS, OVERFLOW, GROUPS, TABLE, DIRECTORY, ENTRY] = [1, 2, 3, 4, 5, 6];

function startReading(site: SizeFigures): void {
  if (reading.componentAt.length < site.count) reading.componentAt = new Uint8Array(2 * site.count);
  else reading.componentAt.fill(0, 0, site.count);
  reading.order.length = 0;
}

function read(i: number, component: number): void {
  reading.componentAt[i] = component;
  reading.order.push(i);
}

const has = (i: number): boolean => reading.componentAt[i] !== 0;

/** A shape's reading that explains the site, kept while it is the best of its implementation. */
interface Explanation {
  shape: Shape;
  order: number[];
  components: number[];
  explainedBytes: number;
  entryBytes: number;
  strength: number;
  provesClassic: boolean;
  provesSwiss: boolean;
}

function explainSite(site: SizeFigures, plausible: Int32Array): SizeSignature[] {
  let classic: Explanation | undefined;
  let swiss: Explanation | undefined;
  for (let i = 0; i < plausible.length; i += 2) {
    const id = plausible[i] as number;
    const levels = plausible[i + 1] as number;
    const shape = SHAPES[id] as Shape;
    startReading(site);
    const qualified = shape.impl === 'classic' ? qualifyClassic(shape, levels, site) : qualifySwiss(shape, levels, site);
    if (!qualified || !explainsSite(site)) continue;
    // Summed in the order the parts were found, as a signature's components are.
    let explainedBytes = 0;
    let entryBytes = 0;
    for (let k = 0; k < reading.order.length; k++) {
      const at = reading.order[k] as number;
      const bytes = site.bytes[at] as number;
      explainedBytes += bytes;
      if (reading.componentAt[at] === ENTRY) entryBytes += bytes;
    }
    const best = shape.impl === 'classic' ? classic : swiss;
    if (best && !better(shape, explainedBytes, entryBytes, best)) continue;
    const explanation: Explanation = {
      shape,
      order: reading.order.slice(),
      components: reading.order.map((at) => reading.componentAt[at] as number),
      explainedBytes,
      entryBytes,
      strength: reading.strength,
      provesClassic: reading.provesClassic,
      provesSwiss: reading.provesSwiss,
    };
    if (shape.impl === 'classic') classic = explanation;
    else swiss = explanation;
  }
  const found: SizeSignature[] = [];
  if (classic) found.push(signatureOf(classic, site));
  if (swiss) found.push(signatureOf(swiss, site));
  return found;
}

function signatureOf(explanation: Explanation, site: SizeFigures): SizeSignature {
  const { shape } = explanation;
  const components = new Map<number, MapComponent>();
  explanation.order.forEach((at, k) => components.set(site.sizes[at] as number, COMPONENTS[explanation.components[k] as number] as MapComponent));
  return {
    impl: shape.impl,
    slotBytes: shape.slotBytes,
    unitBytes: shape.unitBytes,
    components,
    explainedBytes: explanation.explainedBytes,
    entryBytes: explanation.entryBytes,
    strength: explanation.strength,
    provesClassic: explanation.provesClassic,
    provesSwiss: explanation.provesSwiss,
  };
}

/**
 * Whether the reading (of `shape`, with these bytes) beats the best so far.
 * Ties are real: bucket size b at B+1 and 2b at B give the same arrays;
 * the shape whose overflow buckets (or smaller tables) are seen is the map.
 */
function better(shape: Shape, explainedBytes: number, entryBytes: number, best: Explanation): boolean {
  if (explainedBytes !== best.explainedBytes) return explainedBytes > best.explainedBytes;
  // The same bytes as buckets or groups rather than as out-of-line entries: the structure is the firmer reading.
  const structural = explainedBytes - entryBytes;
  const bestStructural = best.explainedBytes - best.entryBytes;
  if (structural !== bestStructural) return structural > bestStructural;
  if (reading.order.length !== best.order.length) return reading.order.length > best.order.length;
  if (reading.strength !== best.strength) return reading.strength > best.strength;
  // b at level B+1 or 2b at level B: the single objects of size b are then overflow buckets.
  return shape.unitBytes > best.shape.unitBytes;
}

/** `levels`: the levels of the shape seen at the site, as bits (plausibleShapesOf). Reads the site into `reading`; false when the shape cannot explain it. */
function qualifyClassic(shape: Shape, levels: number, site: SizeFigures): boolean {
  // A map that grew by inserts allocated every level from its first array to
  // its last: three consecutive levels at least (sampling loses small ones).
  let run = 0;
  let longestRun = 0;
  for (let level = FIRST_SPARE_B; level < shape.levelSizes.length; level++) {
    run = levels & (1 << level) ? run + 1 : 0;
    longestRun = Math.max(longestRun, run);
  }
  if (longestRun < MIN_CLASSIC_STEPS) return false;
  const { objects } = site;
  let arrays = 0;
  let top = -1;
  let overflowBuckets = 0;
  let slots = 0;
  for (let level = 0; level < shape.levelSizes.length; level++) {
    // Large sizes the site has are the levels bits (a size two levels share has the first one's bit): no look-up for the others.
    if (level >= shape.firstLargeLevel && (levels & (1 << level)) === 0) continue;
    const size = shape.levelSizes[level] as number;
    const at = site.indexOf(size);
    if (at < 0 || has(at)) continue;
    // A single bucket: the first bucket of a map made without a hint, or an overflow bucket.
    read(at, level === 0 ? OVERFLOW : BUCKETS);
    const count = objects[at] as number;
    if (level > 0) {
      arrays += count;
      top = level;
    }
    overflowBuckets += count * (level === 0 ? 1 : level >= FIRST_SPARE_B ? 2 ** (level - FIRST_SPARE_B) : 0);
    slots += count * 8 * Math.floor(size / shape.unitBytes);
  }
  const topSize = top < 0 ? -1 : (shape.levelSizes[top] as number);
  const topAt = top < 0 ? -1 : site.indexOf(topSize);
  const maps = Math.max(1, topAt < 0 ? 1 : (objects[topAt] as number));
  // Overflow slices hold one pointer per overflow bucket of one map and
  // restart at every growth: a few per bucket array, none longer than twice
  // the overflow buckets a map has.
  const longestSlice = (2 * POINTER * overflowBuckets) / maps;
  for (let at = 0; at < site.count; at++) {
    const size = site.sizes[at] as number;
    if (!OVERFLOW_SLICES.has(size) || has(at)) continue;
    if ((objects[at] as number) <= 2 * arrays + 2 && size <= longestSlice) read(at, OVERFLOW);
  }
  // Growing to 2^B buckets took more than 6.5 · 2^(B−1) inserts (the load factor).
  addEntries(site, { atLeast: 0.5 * CLASSIC_LOAD * 2 ** (top - 1) * maps, atMost: slots });
  reading.strength = longestRun >= 4 ? 0.75 : 0.6;
  reading.provesClassic = top >= 0 && topSize > LARGEST_SWISS_GROUPS;
  reading.provesSwiss = false;
  return true;
}

function qualifySwiss(shape: Shape, levels: number, site: SizeFigures): boolean {
  const { objects } = site;
  const seen = (level: number): number => (levels & (1 << level) ? site.indexOf(shape.levelSizes[level] as number) : -1);
  const full = seen(SWISS_FULL_LEVEL);
  if (full < 0) return false;
  const fullObjects = objects[full] as number;
  const fullSize = shape.levelSizes[SWISS_FULL_LEVEL] as number;
  let smaller = 0;
  let mostSmallerObjects = 0;
  for (let level = 0; level < SWISS_FULL_LEVEL; level++) {
    const at = seen(level);
    if (at < 0 || (shape.levelSizes[level] as number) === fullSize) continue;
    smaller++;
    mostSmallerObjects = Math.max(mostSmallerObjects, objects[at] as number);
  }
  // A table grows through every smaller size once, then splits into full
  // tables: a map's full tables are at least as many as any smaller table.
  // Sampling keeps the largest sizes best, so the chain ends in the 64- and
  // 128-group tables, with the 32-group one or splits (more full tables) beside.
  const below = seen(SWISS_FULL_LEVEL - 1);
  const chain =
    below >= 0 &&
    fullObjects >= mostSmallerObjects &&
    (seen(SWISS_FULL_LEVEL - 2) >= 0 || fullObjects >= 2 * (objects[below] as number));
  const lone = fullSize >= LONE_TABLE_MIN && fullSize <= LONE_TABLE_MAX && fullObjects >= LONE_TABLE_OBJECTS;
  if (!chain && !lone) return false;
  let tables = 0;
  let slots = 0;
  for (let level = 0; level < shape.levelSizes.length; level++) {
    const size = shape.levelSizes[level] as number;
    const at = site.indexOf(size);
    if (at < 0 || has(at)) continue;
    read(at, GROUPS);
    if (level > 0) tables += objects[at] as number;
    slots += (objects[at] as number) * 8 * Math.floor(size / shape.unitBytes);
  }
  // Each map passes through the smaller tables once.
  const maps = Math.max(1, mostSmallerObjects);
  const header = site.indexOf(SWISS_TABLE_HEADER);
  if (header >= 0 && !has(header) && (objects[header] as number) <= tables + 1) read(header, TABLE);
  // A directory holds a pointer per table of one map (doubling: twice at most).
  const largestDirectory = (2 * POINTER * fullObjects) / maps;
  for (let at = 0; at < site.count; at++) {
    const size = site.sizes[at] as number;
    if (DIRECTORIES.has(size) && !has(at) && (objects[at] as number) <= tables + 1 && size <= Math.max(POINTER, largestDirectory)) {
      read(at, DIRECTORY);
    }
  }
  // Full tables split at 7/8 of 1024 slots into two holding half each, and
  // the parent is freed: more than 224 inserts per full table allocated.
  addEntries(site, { atLeast: 0.5 * SWISS_INSERTS_PER_FULL_TABLE * fullObjects, atMost: slots });
  reading.strength = chain ? (smaller >= 2 ? 0.7 : 0.55) : 0.45;
  reading.provesClassic = false;
  reading.provesSwiss = fullObjects >= SWISS_SPLIT_RATIO * Math.max(1, mostSmallerObjects);
  return true;
}

/**
 * Keys or elems over 128 bytes live out of line, one object each: at most
 * two sizes (key and elem), as many objects as the map took inserts.
 */
function addEntries(site: SizeFigures, inserts: { atLeast: number; atMost: number }): void {
  // The two sizes holding the most bytes (key and elem), without sorting every size.
  let first = -1;
  let second = -1;
  for (let at = 0; at < site.count; at++) {
    const objects = site.objects[at] as number;
    if ((site.sizes[at] as number) < SMALLEST_ENTRY || objects < inserts.atLeast || objects > inserts.atMost || has(at)) continue;
    const bytes = site.bytes[at] as number;
    if (first < 0 || bytes > (site.bytes[first] as number)) [first, second] = [at, first];
    else if (second < 0 || bytes > (site.bytes[second] as number)) second = at;
  }
  if (first >= 0) read(first, ENTRY);
  if (second >= 0) read(second, ENTRY);
}

/**
 * A signature must explain the site, not just touch it: most of its large
 * object bytes, with few other large sizes beside (a general-purpose
 * allocator hits some map sizes by chance).
 */
function explainsSite(site: SizeFigures): boolean {
  let largeBytes = 0;
  let explainedBytes = 0;
  let unexplained = 0;
  for (let at = 0; at < site.count; at++) {
    if ((site.sizes[at] as number) < LARGE_OBJECT) continue;
    const bytes = site.bytes[at] as number;
    largeBytes += bytes;
    if (has(at)) explainedBytes += bytes;
    else unexplained++;
  }
  return unexplained <= MAX_UNEXPLAINED_LARGE_SIZES && explainedBytes >= 0.5 * largeBytes;
}

/** For tests and tools: how much the caches that outlive a profile hold, in numbers, and the most each may. */
export function cachedNumbers(): { sizeSets: number; sites: number; max: number } {
  return { sizeSets: PLAUSIBLE_BY_SIZE_SET.numbers, sites: SIGNATURES_BY_SITE.numbers, max: MAX_CACHED_NUMBERS };
}

/** For tests and tools: every structure size the model knows for one map shape. */
export function structureSizes(impl: Impl, slotBytes: number, rounding: Rounding): readonly number[] {
  const shape = SHAPES.find((s) => s.impl === impl && s.slotBytes === slotBytes && s.rounding === rounding);
  if (!shape) throw new Error(`no ${impl} shape with ${slotBytes}-byte slots`);
  return shape.levelSizes;
}

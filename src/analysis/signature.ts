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
    else if (!list.some((c) => c.shape === id)) list.push({ shape: id, level });
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
 */
const PLAUSIBLE_BY_SIZE_SET = new Map<number | string, Int32Array>();
const MAX_CACHED_SIZE_SETS = 50_000;

function plausibleShapes(bySize: ReadonlyMap<number, SizeStats>): Int32Array {
  const sizes: number[] = [];
  for (const size of bySize.keys()) if (isStructureSize(size)) sizes.push(size);
  return plausibleShapesOf(sizes);
}

/** Shapes (and their levels seen) worth a full look at a site; empty when no signature can explain it. */
export type PlausibleShapes = Int32Array;

/**
 * The shapes worth a full look for a site whose distinct structure sizes
 * (isStructureSize) are `sizes`, from the sizes alone: a site without any is
 * left before its figures are counted. Sorts `sizes`.
 */
export function plausibleShapesOf(sizes: number[]): PlausibleShapes {
  if (sizes.length === 0) return NONE;
  sizes.sort((a, b) => a - b);
  // Most sites have one such size: a number is a cheaper key than a string.
  const key: number | string = sizes.length === 1 ? (sizes[0] as number) : sizes.join(',');
  const cached = PLAUSIBLE_BY_SIZE_SET.get(key);
  if (cached) return cached;
  const touched: number[] = [];
  for (const size of sizes) {
    for (const { shape, level } of STRUCTURES.get(size) as Candidate[]) {
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
  if (typeof key === 'string' && key.length > MAX_CACHED_KEY) return result;
  if (PLAUSIBLE_BY_SIZE_SET.size >= MAX_CACHED_SIZE_SETS) PLAUSIBLE_BY_SIZE_SET.clear();
  PLAUSIBLE_BY_SIZE_SET.set(key, result);
  return result;
}
const NONE = new Int32Array(0);

/**
 * The best classic and the best swiss explanation of one site's object
 * sizes, if any explains it. `plausible`: plausibleShapesOf the site's
 * sizes, when the caller has it already.
 */
export function inferSizeSignatures(bySize: ReadonlyMap<number, SizeStats>, plausible: PlausibleShapes = plausibleShapes(bySize)): SizeSignature[] {
  if (plausible.length === 0) return [];
  // Most sites are the same from one capture to the next: explain each distinct site once.
  const hash = hashFigures(bySize);
  const bucket = SIGNATURES_BY_SITE.get(hash);
  const known = bucket?.find((entry) => sameFigures(entry.figures, bySize));
  if (known) return known.signatures;
  const found = explainSite(bySize, plausible);
  if (bySize.size > MAX_CACHED_SIZES) return found; // a site with hundreds of sizes is rare; not worth holding
  if (cachedSites >= MAX_CACHED_SITES) {
    SIGNATURES_BY_SITE.clear();
    cachedSites = 0;
  }
  const entry = { figures: figuresOf(bySize), signatures: found };
  const held = SIGNATURES_BY_SITE.get(hash);
  if (!held) SIGNATURES_BY_SITE.set(hash, [entry]);
  else if (held.length < MAX_PER_HASH) held.push(entry);
  else return found; // a profile made to collide gets no quadratic look-ups
  cachedSites++;
  return found;
}

/** Sites explained before, by a hash of their sizes and figures; each keeps its figures (size, objects, bytes, ...) to be told from others of its hash. */
const SIGNATURES_BY_SITE = new Map<number, { figures: Float64Array; signatures: SizeSignature[] }[]>();
let cachedSites = 0;
const MAX_CACHED_SITES = 20_000;
/** The caches outlive one profile (the operator's worker): what they hold is bounded, whatever a profile holds. */
const MAX_CACHED_SIZES = 256;
const MAX_CACHED_KEY = 2048;
const MAX_PER_HASH = 4;

/** A number, not a joined string: hashing a fresh string of every site's figures cost more than explaining some sites. */
function hashFigures(bySize: ReadonlyMap<number, SizeStats>): number {
  let hash = 0x811c9dc5;
  for (const [size, stats] of bySize) {
    hash = mixNumber(hash, size);
    hash = mixNumber(hash, stats.objects);
    hash = mixNumber(hash, stats.bytes);
  }
  return hash;
}

/** FNV-1a over a number's low and high 32 bits. */
function mixNumber(hash: number, x: number): number {
  return Math.imul(Math.imul(hash ^ (x >>> 0), 0x01000193) ^ Math.floor(x / 4294967296), 0x01000193);
}

function figuresOf(bySize: ReadonlyMap<number, SizeStats>): Float64Array {
  const figures = new Float64Array(3 * bySize.size);
  let at = 0;
  for (const [size, stats] of bySize) {
    figures[at++] = size;
    figures[at++] = stats.objects;
    figures[at++] = stats.bytes;
  }
  return figures;
}

function sameFigures(figures: Float64Array, bySize: ReadonlyMap<number, SizeStats>): boolean {
  if (figures.length !== 3 * bySize.size) return false;
  let at = 0;
  for (const [size, stats] of bySize) {
    if (figures[at] !== size || figures[at + 1] !== stats.objects || figures[at + 2] !== stats.bytes) return false;
    at += 3;
  }
  return true;
}

function explainSite(bySize: ReadonlyMap<number, SizeStats>, plausible: Int32Array): SizeSignature[] {
  let classic: SizeSignature | undefined;
  let swiss: SizeSignature | undefined;
  for (let i = 0; i < plausible.length; i += 2) {
    const id = plausible[i] as number;
    const levels = plausible[i + 1] as number;
    const shape = SHAPES[id] as Shape;
    const signature = shape.impl === 'classic' ? qualifyClassic(shape, levels, bySize) : qualifySwiss(shape, levels, bySize);
    if (!signature || !explainsSite(signature.components, bySize)) continue;
    if (signature.impl === 'classic') {
      if (!classic || better(signature, classic)) classic = signature;
    } else if (!swiss || better(signature, swiss)) swiss = signature;
  }
  return classic ? (swiss ? [classic, swiss] : [classic]) : swiss ? [swiss] : [];
}

/**
 * Ties are real: bucket size b at B+1 and 2b at B give the same arrays;
 * the shape whose overflow buckets (or smaller tables) are seen is the map.
 */
function better(a: SizeSignature, b: SizeSignature): boolean {
  if (a.explainedBytes !== b.explainedBytes) return a.explainedBytes > b.explainedBytes;
  // The same bytes as buckets or groups rather than as out-of-line entries: the structure is the firmer reading.
  const structural = (s: SizeSignature): number => s.explainedBytes - s.entryBytes;
  if (structural(a) !== structural(b)) return structural(a) > structural(b);
  if (a.components.size !== b.components.size) return a.components.size > b.components.size;
  if (a.strength !== b.strength) return a.strength > b.strength;
  // b at level B+1 or 2b at level B: the single objects of size b are then overflow buckets.
  return a.unitBytes > b.unitBytes;
}

/** `levels`: the levels of the shape seen at the site, as bits (plausibleShapesOf). */
function qualifyClassic(shape: Shape, levels: number, bySize: ReadonlyMap<number, SizeStats>): SizeSignature | undefined {
  // A map that grew by inserts allocated every level from its first array to
  // its last: three consecutive levels at least (sampling loses small ones).
  let run = 0;
  let longestRun = 0;
  for (let level = FIRST_SPARE_B; level < shape.levelSizes.length; level++) {
    run = levels & (1 << level) ? run + 1 : 0;
    longestRun = Math.max(longestRun, run);
  }
  if (longestRun < MIN_CLASSIC_STEPS) return undefined;
  const components = new Map<number, MapComponent>();
  let arrays = 0;
  let top = -1;
  let overflowBuckets = 0;
  let slots = 0;
  for (let level = 0; level < shape.levelSizes.length; level++) {
    // Large sizes the site has are the levels bits (a size two levels share has the first one's bit): no look-up for the others.
    if (level >= shape.firstLargeLevel && (levels & (1 << level)) === 0) continue;
    const size = shape.levelSizes[level] as number;
    const stats = bySize.get(size);
    if (!stats || components.has(size)) continue;
    // A single bucket: the first bucket of a map made without a hint, or an overflow bucket.
    components.set(size, level === 0 ? 'overflow' : 'buckets');
    if (level > 0) {
      arrays += stats.objects;
      top = level;
    }
    overflowBuckets += stats.objects * (level === 0 ? 1 : level >= FIRST_SPARE_B ? 2 ** (level - FIRST_SPARE_B) : 0);
    slots += stats.objects * 8 * Math.floor(size / shape.unitBytes);
  }
  const topSize = shape.levelSizes[top] as number;
  const maps = Math.max(1, bySize.get(topSize)?.objects ?? 1);
  // Overflow slices hold one pointer per overflow bucket of one map and
  // restart at every growth: a few per bucket array, none longer than twice
  // the overflow buckets a map has.
  const longestSlice = (2 * POINTER * overflowBuckets) / maps;
  for (const [size, stats] of bySize) {
    if (!OVERFLOW_SLICES.has(size) || components.has(size)) continue;
    if (stats.objects <= 2 * arrays + 2 && size <= longestSlice) components.set(size, 'overflow');
  }
  // Growing to 2^B buckets took more than 6.5 · 2^(B−1) inserts (the load factor).
  addEntries(components, bySize, { atLeast: 0.5 * CLASSIC_LOAD * 2 ** (top - 1) * maps, atMost: slots });
  return finish(shape, components, bySize, {
    strength: longestRun >= 4 ? 0.75 : 0.6,
    provesClassic: topSize > LARGEST_SWISS_GROUPS,
    provesSwiss: false,
  });
}

function qualifySwiss(shape: Shape, levels: number, bySize: ReadonlyMap<number, SizeStats>): SizeSignature | undefined {
  const seen = (level: number): SizeStats | undefined => (levels & (1 << level) ? bySize.get(shape.levelSizes[level] as number) : undefined);
  const full = seen(SWISS_FULL_LEVEL);
  if (!full) return undefined;
  const fullSize = shape.levelSizes[SWISS_FULL_LEVEL] as number;
  let smaller = 0;
  let mostSmallerObjects = 0;
  for (let level = 0; level < SWISS_FULL_LEVEL; level++) {
    const stats = seen(level);
    if (!stats || (shape.levelSizes[level] as number) === fullSize) continue;
    smaller++;
    mostSmallerObjects = Math.max(mostSmallerObjects, stats.objects);
  }
  // A table grows through every smaller size once, then splits into full
  // tables: a map's full tables are at least as many as any smaller table.
  // Sampling keeps the largest sizes best, so the chain ends in the 64- and
  // 128-group tables, with the 32-group one or splits (more full tables) beside.
  const below = seen(SWISS_FULL_LEVEL - 1);
  const chain =
    below !== undefined &&
    full.objects >= mostSmallerObjects &&
    (seen(SWISS_FULL_LEVEL - 2) !== undefined || full.objects >= 2 * below.objects);
  const lone = fullSize >= LONE_TABLE_MIN && fullSize <= LONE_TABLE_MAX && full.objects >= LONE_TABLE_OBJECTS;
  if (!chain && !lone) return undefined;
  const components = new Map<number, MapComponent>();
  let tables = 0;
  let slots = 0;
  for (let level = 0; level < shape.levelSizes.length; level++) {
    const size = shape.levelSizes[level] as number;
    const stats = bySize.get(size);
    if (!stats || components.has(size)) continue;
    components.set(size, 'groups');
    if (level > 0) tables += stats.objects;
    slots += stats.objects * 8 * Math.floor(size / shape.unitBytes);
  }
  // Each map passes through the smaller tables once.
  const maps = Math.max(1, mostSmallerObjects);
  const header = bySize.get(SWISS_TABLE_HEADER);
  if (header && !components.has(SWISS_TABLE_HEADER) && header.objects <= tables + 1) components.set(SWISS_TABLE_HEADER, 'table');
  // A directory holds a pointer per table of one map (doubling: twice at most).
  const largestDirectory = (2 * POINTER * full.objects) / maps;
  for (const [size, stats] of bySize) {
    if (DIRECTORIES.has(size) && !components.has(size) && stats.objects <= tables + 1 && size <= Math.max(POINTER, largestDirectory)) {
      components.set(size, 'directory');
    }
  }
  // Full tables split at 7/8 of 1024 slots into two holding half each, and
  // the parent is freed: more than 224 inserts per full table allocated.
  addEntries(components, bySize, { atLeast: 0.5 * SWISS_INSERTS_PER_FULL_TABLE * full.objects, atMost: slots });
  return finish(shape, components, bySize, {
    strength: chain ? (smaller >= 2 ? 0.7 : 0.55) : 0.45,
    provesClassic: false,
    provesSwiss: full.objects >= SWISS_SPLIT_RATIO * Math.max(1, mostSmallerObjects),
  });
}

/**
 * Keys or elems over 128 bytes live out of line, one object each: at most
 * two sizes (key and elem), as many objects as the map took inserts.
 */
function addEntries(
  components: Map<number, MapComponent>,
  bySize: ReadonlyMap<number, SizeStats>,
  inserts: { atLeast: number; atMost: number },
): void {
  // The two sizes holding the most bytes (key and elem), without sorting every size.
  let first: [number, number] | undefined;
  let second: [number, number] | undefined;
  for (const [size, stats] of bySize) {
    if (size < SMALLEST_ENTRY || stats.objects < inserts.atLeast || stats.objects > inserts.atMost || components.has(size)) continue;
    if (!first || stats.bytes > first[1]) [first, second] = [[size, stats.bytes], first];
    else if (!second || stats.bytes > second[1]) second = [size, stats.bytes];
  }
  if (first) components.set(first[0], 'entry');
  if (second) components.set(second[0], 'entry');
}

function finish(
  shape: Shape,
  components: Map<number, MapComponent>,
  bySize: ReadonlyMap<number, SizeStats>,
  verdict: Pick<SizeSignature, 'strength' | 'provesClassic' | 'provesSwiss'>,
): SizeSignature {
  let explainedBytes = 0;
  let entryBytes = 0;
  for (const [size, component] of components) {
    const bytes = bySize.get(size)?.bytes ?? 0;
    explainedBytes += bytes;
    if (component === 'entry') entryBytes += bytes;
  }
  return { impl: shape.impl, slotBytes: shape.slotBytes, unitBytes: shape.unitBytes, components, explainedBytes, entryBytes, ...verdict };
}

/**
 * A signature must explain the site, not just touch it: most of its large
 * object bytes, with few other large sizes beside (a general-purpose
 * allocator hits some map sizes by chance).
 */
function explainsSite(sizes: ReadonlyMap<number, MapComponent>, bySize: ReadonlyMap<number, SizeStats>): boolean {
  let largeBytes = 0;
  let explainedBytes = 0;
  let unexplained = 0;
  for (const [size, stats] of bySize) {
    if (size < LARGE_OBJECT) continue;
    largeBytes += stats.bytes;
    if (sizes.has(size)) explainedBytes += stats.bytes;
    else unexplained++;
  }
  return unexplained <= MAX_UNEXPLAINED_LARGE_SIZES && explainedBytes >= 0.5 * largeBytes;
}

/** For tests and tools: every structure size the model knows for one map shape. */
export function structureSizes(impl: Impl, slotBytes: number, rounding: Rounding): readonly number[] {
  const shape = SHAPES.find((s) => s.impl === impl && s.slotBytes === slotBytes && s.rounding === rounding);
  if (!shape) throw new Error(`no ${impl} shape with ${slotBytes}-byte slots`);
  return shape.levelSizes;
}

import { allocatedSize } from './sizeclass.js';
import type { MapComponent } from './frames.js';

/**
 * Map memory inferred from object sizes alone, for profiles without the
 * hidden runtime frames. A site whose objects form a map's growth chain
 * (bucket arrays or swiss tables doubling for one entry size) is a map.
 */
export interface SizeSignature {
  impl: 'classic' | 'swiss';
  /** Object sizes that belong to the map, with the part of the map each is. */
  components: Map<number, MapComponent>;
  /** 0..1: a long doubling chain is strong, a single table size is weak. */
  strength: number;
  /** A bucket array larger than any swiss table: only a classic map does that. */
  provesClassic: boolean;
  /** Many objects of one full swiss table: how big swiss maps look. */
  looksSwiss: boolean;
}

export interface SizeStats {
  objects: number;
  bytes: number;
}

/** Key + value bytes per slot (each over 128 bytes is stored as a pointer). */
const SLOT_SIZES = Array.from({ length: 256 }, (_, i) => i + 1);
const MIN_CLASSIC_B = 4; // from B=4 arrays carry 2^(B-4) spare overflow buckets: a distinctive 17/16 factor
const MAX_CLASSIC_B = 28;
const SWISS_TABLE_GROUPS_LOG2 = 7; // a table holds at most 1024 slots = 128 groups of 8
const LARGEST_SWISS_TABLE = allocatedSize(128 * (8 + 8 * 257));

const SWISS_FULL_TABLE_SIZES = new Set(SLOT_SIZES.map((slot) => allocatedSize(128 * (8 + 8 * slot))));

function classicArraySize(bucketSize: number, b: number): number {
  return allocatedSize(bucketSize * (2 ** b + 2 ** (b - 4)));
}

interface Chain {
  sizes: Map<number, MapComponent>;
  steps: number;
  bytes: number;
  overflowSeen: boolean;
}

/** Objects from 1 KiB up: where bucket arrays and swiss tables live. */
const LARGE_OBJECT = 1024;
/** A map site allocates few large sizes besides its own structure. */
const MAX_UNEXPLAINED_LARGE_SIZES = 4;

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

/** The best classic and swiss explanations of one site's object sizes. */
export function inferSizeSignatures(bySize: ReadonlyMap<number, SizeStats>): SizeSignature[] {
  const found: SizeSignature[] = [];
  const signatures = collectSignatures(bySize);
  for (const signature of signatures) if (explainsSite(signature.components, bySize)) found.push(signature);
  return found;
}

function collectSignatures(bySize: ReadonlyMap<number, SizeStats>): SizeSignature[] {
  const found: SizeSignature[] = [];
  // Two page-rounded sizes one doubling apart are too easily a coincidence.
  const classic = bestChain(SLOT_SIZES.map((slot) => classicChain(16 + 8 * slot, bySize)), 3);
  if (classic) {
    found.push({
      impl: 'classic',
      components: classic.sizes,
      strength: classic.steps >= 4 ? 0.75 : 0.6,
      provesClassic: [...classic.sizes.keys()].some((size) => size > LARGEST_SWISS_TABLE),
      looksSwiss: false,
    });
  }
  const swiss = bestChain(SLOT_SIZES.map((slot) => swissChain(8 + 8 * slot, bySize)));
  if (swiss) {
    found.push({ impl: 'swiss', components: swiss.sizes, strength: swiss.steps >= 3 ? 0.7 : 0.55, provesClassic: false, looksSwiss: true });
  } else {
    const table = fullSwissTable(bySize);
    if (table) found.push({ impl: 'swiss', components: new Map([[table, 'groups']]), strength: 0.45, provesClassic: false, looksSwiss: true });
  }
  return found;
}

/**
 * The chain explaining the most bytes. Ties are real: bucket size b at B+1
 * and 2b at B give the same arrays; the one whose overflow buckets are seen
 * is the map.
 */
function bestChain(chains: Chain[], minSteps = 2): Chain | undefined {
  let best: Chain | undefined;
  for (const chain of chains) {
    if (chain.steps < minSteps) continue;
    const better =
      !best ||
      chain.bytes > best.bytes ||
      (chain.bytes === best.bytes && (Number(chain.overflowSeen) - Number(best.overflowSeen) || chain.steps - best.steps) > 0);
    if (better) best = chain;
  }
  return best;
}

function classicChain(bucketSize: number, bySize: ReadonlyMap<number, SizeStats>): Chain {
  const chain: Chain = { sizes: new Map(), steps: 0, bytes: 0, overflowSeen: false };
  for (let b = MIN_CLASSIC_B; b <= MAX_CLASSIC_B; b++) {
    const size = classicArraySize(bucketSize, b);
    const stats = bySize.get(size);
    if (stats && !chain.sizes.has(size)) {
      chain.sizes.set(size, 'buckets');
      chain.steps++;
      chain.bytes += stats.bytes;
    }
  }
  if (chain.steps === 0) return chain;
  const overflow = allocatedSize(bucketSize);
  const overflowStats = bySize.get(overflow);
  if (overflowStats) {
    chain.sizes.set(overflow, 'overflow');
    chain.bytes += overflowStats.bytes;
    chain.overflowSeen = true;
  }
  // Small arrays (B < 4) are too common a size to prove anything, but once
  // a chain is found they are part of the same map.
  for (let b = 1; b < MIN_CLASSIC_B; b++) {
    const size = allocatedSize(bucketSize * 2 ** b);
    const stats = bySize.get(size);
    if (stats && !chain.sizes.has(size)) {
      chain.sizes.set(size, 'buckets');
      chain.bytes += stats.bytes;
    }
  }
  return chain;
}

function swissChain(groupSize: number, bySize: ReadonlyMap<number, SizeStats>): Chain {
  const chain: Chain = { sizes: new Map(), steps: 0, bytes: 0, overflowSeen: false };
  const fullTable = allocatedSize(groupSize * 2 ** SWISS_TABLE_GROUPS_LOG2);
  // A chain without the full table is more likely doubling buffers than a map.
  if (!bySize.has(fullTable)) return chain;
  for (let log2 = 1; log2 <= SWISS_TABLE_GROUPS_LOG2; log2++) {
    const size = allocatedSize(groupSize * 2 ** log2);
    const stats = bySize.get(size);
    if (size >= 1024 && stats && !chain.sizes.has(size)) {
      chain.sizes.set(size, 'groups');
      chain.steps++;
      chain.bytes += stats.bytes;
    }
  }
  return chain;
}

/** Many objects of exactly one full swiss table size (the one holding the most bytes). */
function fullSwissTable(bySize: ReadonlyMap<number, SizeStats>): number | undefined {
  let best: number | undefined;
  let bestBytes = 0;
  for (const [size, stats] of bySize) {
    if (size < 8192 || size > 32768 || stats.objects < 8 || stats.bytes <= bestBytes) continue;
    if (SWISS_FULL_TABLE_SIZES.has(size)) {
      best = size;
      bestBytes = stats.bytes;
    }
  }
  return best;
}

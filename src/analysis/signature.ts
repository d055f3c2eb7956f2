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
}

/** The best classic and swiss explanations of one site's object sizes. */
export function inferSizeSignatures(bySize: ReadonlyMap<number, SizeStats>): SizeSignature[] {
  const found: SizeSignature[] = [];
  const classic = bestChain(SLOT_SIZES.map((slot) => classicChain(16 + 8 * slot, bySize)));
  if (classic) {
    found.push({
      impl: 'classic',
      components: classic.sizes,
      strength: classic.steps >= 3 ? 0.75 : 0.6,
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

function bestChain(chains: Chain[]): Chain | undefined {
  let best: Chain | undefined;
  for (const chain of chains) {
    if (chain.steps < 2) continue;
    if (!best || chain.bytes > best.bytes || (chain.bytes === best.bytes && chain.steps > best.steps)) best = chain;
  }
  return best;
}

function classicChain(bucketSize: number, bySize: ReadonlyMap<number, SizeStats>): Chain {
  const chain: Chain = { sizes: new Map(), steps: 0, bytes: 0 };
  for (let b = MIN_CLASSIC_B; b <= MAX_CLASSIC_B; b++) {
    const size = classicArraySize(bucketSize, b);
    const stats = bySize.get(size);
    if (stats && !chain.sizes.has(size)) {
      chain.sizes.set(size, 'buckets');
      chain.steps++;
      chain.bytes += stats.bytes;
    }
  }
  const overflow = allocatedSize(bucketSize);
  const overflowStats = bySize.get(overflow);
  if (chain.steps > 0 && overflowStats) {
    chain.sizes.set(overflow, 'overflow');
    chain.bytes += overflowStats.bytes;
  }
  return chain;
}

function swissChain(groupSize: number, bySize: ReadonlyMap<number, SizeStats>): Chain {
  const chain: Chain = { sizes: new Map(), steps: 0, bytes: 0 };
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

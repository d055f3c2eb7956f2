/** Go's malloc size classes (runtime/sizeclasses.go, unchanged from Go 1.12 to 1.26). */
const SIZE_CLASSES = [
  8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320, 352, 384, 416,
  448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200,
  3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336,
  16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768,
];
const MAX_SMALL_SIZE = 32768;
const PAGE_SIZE = 8192;
/** runtime/malloc.go (Go 1.22+): objects with pointers above 512 bytes carry an 8-byte type header. */
const MALLOC_HEADER_SIZE = 8;
const MIN_SIZE_FOR_MALLOC_HEADER = 512;

/**
 * How an allocation is rounded: `plain` for objects without pointers, and
 * for every object before Go 1.22; `header` for objects with pointers from
 * Go 1.22 on, whose small-object size class is that of the request plus an
 * 8-byte malloc header (runtime.roundupsize).
 */
export type Rounding = 'plain' | 'header';
export const ROUNDINGS: readonly Rounding[] = ['plain', 'header'];

// Size class of every request up to MAX_SMALL_SIZE, in 8-byte steps (like size_to_class8/128).
const CLASS_BY_EIGHTH = (() => {
  const table = new Uint32Array(MAX_SMALL_SIZE / 8 + 1);
  let c = 0;
  for (let i = 0; i < table.length; i++) {
    while ((SIZE_CLASSES[c] as number) < i * 8) c++;
    table[i] = SIZE_CLASSES[c] as number;
  }
  return table;
})();

/**
 * The size mallocgc really allocates for a request, which is what the heap
 * profile records for the object (the size class, or whole pages above
 * 32 KiB).
 */
export function allocatedSize(requested: number, rounding: Rounding = 'plain'): number {
  if (requested <= 0) return 0;
  if (requested <= MAX_SMALL_SIZE - MALLOC_HEADER_SIZE || (rounding === 'plain' && requested <= MAX_SMALL_SIZE)) {
    const withHeader = rounding === 'header' && requested > MIN_SIZE_FOR_MALLOC_HEADER ? requested + MALLOC_HEADER_SIZE : requested;
    return CLASS_BY_EIGHTH[Math.ceil(withHeader / 8)] as number;
  }
  return Math.ceil(requested / PAGE_SIZE) * PAGE_SIZE;
}

/** What runtime.roundupsize hands back to the caller: the allocation minus its header. */
function usableSize(requested: number, rounding: Rounding): number {
  const allocated = allocatedSize(requested, rounding);
  const hasHeader = rounding === 'header' && requested > MIN_SIZE_FOR_MALLOC_HEADER && requested <= MAX_SMALL_SIZE - MALLOC_HEADER_SIZE;
  return hasHeader ? allocated - MALLOC_HEADER_SIZE : allocated;
}

/**
 * Allocated sizes of the successive backing arrays of a slice of pointers
 * grown one append at a time (runtime.growslice / nextslicecap: doubling
 * below 256 elements, then +(n+768)/4, each capacity widened to fill its
 * size class), up to `maxBytes`.
 */
export function pointerSliceGrowth(rounding: Rounding, maxBytes: number): number[] {
  const sizes: number[] = [];
  let cap = 0;
  while (true) {
    const needed = cap + 1;
    let next = cap * 2;
    if (needed > next) next = needed;
    else if (cap >= 256) {
      next = cap;
      while (next < needed) next += Math.floor((next + 3 * 256) / 4);
    }
    const bytes = next * 8;
    if (bytes > maxBytes) return sizes;
    sizes.push(allocatedSize(bytes, rounding));
    cap = Math.floor(usableSize(bytes, rounding) / 8);
  }
}

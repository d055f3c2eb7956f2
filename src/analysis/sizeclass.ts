/** Go's malloc size classes (runtime/sizeclasses.go, unchanged since Go 1.12). */
const SIZE_CLASSES = [
  8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320, 352, 384, 416,
  448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200,
  3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336,
  16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768,
];
const MAX_SMALL_SIZE = 32768;
const PAGE_SIZE = 8192;

/** The size mallocgc really allocates (and the heap profile records) for a request. */
export function allocatedSize(requested: number): number {
  if (requested <= MAX_SMALL_SIZE) {
    for (const size of SIZE_CLASSES) if (size >= requested) return size;
  }
  return Math.ceil(requested / PAGE_SIZE) * PAGE_SIZE;
}

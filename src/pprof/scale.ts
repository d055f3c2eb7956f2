/**
 * Undo heap sampling bias exactly as runtime/pprof does (protomem.go,
 * scaleHeapSample): an object of average size s is sampled with
 * probability 1 - exp(-s/rate), and the estimates are truncated to whole
 * numbers (int64), as in the proto profile.
 */
export function scaleHeapSample(
  count: number,
  bytes: number,
  rate: number,
): { count: number; bytes: number } {
  if (count === 0 || bytes === 0) return { count: 0, bytes: 0 };
  if (rate <= 1) return { count, bytes };
  const averageSize = bytes / count;
  const scale = 1 / (1 - Math.exp(-averageSize / rate));
  return { count: Math.trunc(count * scale), bytes: Math.trunc(bytes * scale) };
}

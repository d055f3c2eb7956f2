import type { Kind } from './attribute.js';
import type { MapImpl } from './frames.js';

export type Pattern = 'growing' | 'retained' | 'churn' | 'stable';

/** One line a developer can act on, fitting the pattern and the map implementation. */
export function adviceFor(kind: Kind, pattern: Pattern, impl: MapImpl): string {
  if (kind === 'other') {
    return pattern === 'growing'
      ? 'Non-map memory keeps growing here: look for a slice, buffer or cache that is only appended to (go tool pprof -list this function).'
      : 'Non-map memory; nothing map-specific to do.';
  }
  const parts = impl === 'swiss' ? 'tables' : impl === 'classic' ? 'buckets' : 'buckets/tables';
  switch (pattern) {
    case 'growing':
      return `Map grows without bound: cap it (evict, expire or shard by lifetime); Go maps never return their ${parts}, so even a bounded map keeps its high-water size.`;
    case 'retained':
      return impl === 'swiss'
        ? 'Map was drained but keeps its tables (delete and clear() never shrink a map): replace a drained map with a new make(map[K]V) to free them.'
        : `Map was drained but keeps its ${parts} (delete never shrinks a map): replace a drained map with a new make(map[K]V) (m = nil or a fresh map) to free them.`;
    case 'churn':
      return 'Maps are built and dropped over and over: pre-size with make(map[K]V, n), reuse one map with clear(m), or use a slice for short-lived data.';
    case 'stable':
      return 'Steady map memory in ongoing use; no leak signal. If it is larger than expected, check key and value sizes (values over 128 bytes are stored out of line).';
  }
}

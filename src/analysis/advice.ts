import type { Kind } from './attribute.js';
import type { MapImpl } from './frames.js';

export type Pattern = 'growing' | 'retained' | 'churn' | 'stable';

/**
 * What the series showed beyond the pattern itself:
 * - `overflow-churn`: a classic map whose overflow buckets are what grows,
 *   while its bucket array and what it holds stay the same size;
 * - `undecidable`: a map held at one size with nothing of its own (keys and
 *   values inline, no pointers) whose being freed would show draining;
 * - `insufficient`: a map called stable by a window that cannot rule out
 *   growth (one distinct capture, or growth below what sampling resolves).
 */
export type AdviceNote = 'overflow-churn' | 'undecidable' | 'insufficient';

/** One line a developer can act on, fitting the pattern and the map implementation. */
export function adviceFor(kind: Kind, pattern: Pattern, impl: MapImpl, note?: AdviceNote): string {
  if (kind === 'other') {
    return pattern === 'growing'
      ? 'Non-map memory keeps growing here: look for a slice, buffer or cache that is only appended to (go tool pprof -list this function).'
      : 'Non-map memory; nothing map-specific to do.';
  }
  const parts = impl === 'swiss' ? 'tables' : impl === 'classic' ? 'buckets' : 'buckets/tables';
  if (note === 'overflow-churn') {
    return (
      'Classic map under insert/delete churn: what grows is its overflow buckets, not its entries; they level off at a same-size ' +
      'rehash (about one per bucket), so this is churn at a bound, not a leak. Rebuild the map now and then, or build with Go 1.24+ (swiss maps), to keep it smaller.'
    );
  }
  if (note === 'undecidable') {
    return (
      `Map ${parts} held at one size since before the window; its keys and values are stored inline, so a heap profile cannot tell a full map ` +
      'from a drained one. Check len(m) (a debugger, a metric or a log line): if it is far below the size the map once had, replace it with a new make(map[K]V).'
    );
  }
  if (note === 'insufficient') {
    return (
      `Map ${parts} look steady, but this window cannot rule out slow growth (too few distinct captures, or growth below what ` +
      'sampling resolves at this MemProfileRate): watch it over more captures, each after a GC cycle, before calling it stable.'
    );
  }
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

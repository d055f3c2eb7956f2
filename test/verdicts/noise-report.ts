/**
 * Prints, per recorded stream and site, the patterns over the short windows
 * (the before/after figures of the sampling-noise model):
 *   npm run build && node dist/test/verdicts/noise-report.js
 */
import { countPatterns, LEAKY_GROWING, LEAKY_STEADY, loadStream, SERVICES_GROWING, SERVICES_STEADY, verdictsOver, type StreamName } from './noise-windows.js';

for (const name of ['leaky-go1.26', 'leaky-go1.19', 'services-go1.26', 'services-go1.19'] as StreamName[]) {
  const target = name.startsWith('leaky') ? 'leaky' : 'services';
  const snapshots = await loadStream(name);
  const refs = target === 'leaky' ? [...LEAKY_GROWING, ...LEAKY_STEADY] : [...SERVICES_GROWING, ...SERVICES_STEADY];
  for (const windows of ['spaced', 'short'] as const) {
    console.log(`${name} (${snapshots.length} captures, rate ${snapshots[0]?.memProfileRate}), ${windows} windows`);
    for (const [site, verdicts] of verdictsOver(snapshots, target, refs, windows)) console.log(`  ${site.padEnd(40)} ${JSON.stringify(countPatterns(verdicts))}`);
  }
}

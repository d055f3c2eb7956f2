import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { sampledVariancePerByte, type TimedSnapshot } from '../../src/analysis/series.js';
import {
  countPatterns,
  LEAKY_GROWING,
  LEAKY_STEADY,
  loadStream,
  SERVICES_STEADY,
  verdictsOver,
  WINDOW_COUNT,
  type SiteRef,
  type StreamName,
} from './noise-windows.js';

const R = 512 * 1024;

describe('sampling model of heap profile estimates (runtime.MemProfileRate, runtime/pprof scaleHeapSample)', () => {
  test('small objects: each sample stands for about R bytes, so B bytes are known to about sqrt(B·R)', () => {
    assert.ok(Math.abs(sampledVariancePerByte(64, R) / R - 1) < 0.001);
    // s(1-p)/p with p = 1 - exp(-s/R): a 27 KiB swiss table is a little less noisy per byte.
    const table = 27_264;
    const p = 1 - Math.exp(-table / R);
    assert.ok(Math.abs(sampledVariancePerByte(table, R) - (table * (1 - p)) / p) < 1e-6 * R);
    assert.ok(sampledVariancePerByte(table, R) < R);
  });

  test('objects far above the rate are always sampled: no noise; MemProfileRate=1 records every allocation', () => {
    assert.ok(sampledVariancePerByte(14 * 1024 * 1024, R) < 1, 'less than a byte of variance per byte');
    assert.equal(sampledVariancePerByte(64, 1), 0);
  });

  test('an unknown object size assumes the small-object bound, the noisiest', () => {
    assert.equal(sampledVariancePerByte(0, R), R);
  });
});

/**
 * Streams recorded at the default 512 KiB rate (record-streams.ts), read in
 * WINDOW_COUNT short windows each. Steady memory (a cache at capacity whose
 * values are replaced all the time, an LRU at capacity, drained and static
 * tables, maps built and dropped) must never be `growing`; growth well above
 * what sampling hides must be `growing` in at least 19 of 20 windows.
 */
/** Maps built and dropped: never growing in windows 6 s apart; two captures 2 s apart can catch one mid-build (not asserted there). */
const isChurnSite = (ref: SiteRef): boolean => ref.site.includes('churn');

const STREAMS: { name: StreamName; target: 'leaky' | 'services'; steady: SiteRef[]; growing: SiteRef[] }[] = [
  // The leaky target's sessions grow by about 1 MB/s of values and their map's tables: far above the noise.
  { name: 'leaky-go1.26', target: 'leaky', steady: LEAKY_STEADY, growing: LEAKY_GROWING.filter((r) => r.site.includes('session')) },
  { name: 'leaky-go1.19', target: 'leaky', steady: LEAKY_STEADY, growing: LEAKY_GROWING.filter((r) => r.site.includes('session')) },
  { name: 'services-go1.26', target: 'services', steady: SERVICES_STEADY, growing: [] },
  { name: 'services-go1.19', target: 'services', steady: SERVICES_STEADY, growing: [] },
];

for (const stream of STREAMS) {
  describe(`${stream.name} at the default sampling rate, ${WINDOW_COUNT} short windows`, () => {
    let verdicts: Map<string, string[]>;
    let shortVerdicts: Map<string, string[]>;
    before(async () => {
      const snapshots: TimedSnapshot[] = await loadStream(stream.name);
      assert.ok(snapshots.length >= 40, 'the recorded stream is complete');
      assert.ok(snapshots.every((s) => s.memProfileRate === R), 'recorded at the default rate');
      verdicts = verdictsOver(snapshots, stream.target, [...stream.steady, ...stream.growing]);
      shortVerdicts = verdictsOver(snapshots, stream.target, stream.steady.filter((r) => !isChurnSite(r)), 'short');
    });

    for (const ref of stream.steady) {
      const short = !isChurnSite(ref);
      test(`${ref.kind} ${ref.site}: never growing in windows 6 s apart${short ? ', nor in windows of 3 to 10 captures 2 s apart' : ''}`, () => {
        for (const [windows, all] of [['spaced', verdicts], ...(short ? [['short', shortVerdicts] as const] : [])] as const) {
          const got = all.get(`${ref.kind} ${ref.site}`) ?? [];
          assert.equal(got.length, WINDOW_COUNT);
          assert.ok(!got.some((v) => v.split('+').includes('growing')), `${ref.site} (${windows} windows): ${JSON.stringify(countPatterns(got))}`);
        }
      });
    }
    for (const ref of stream.growing) {
      test(`${ref.kind} ${ref.site}: growing in at least 19 of ${WINDOW_COUNT}`, () => {
        const got = verdicts.get(`${ref.kind} ${ref.site}`) ?? [];
        const growing = got.filter((v) => v === 'growing').length;
        assert.ok(growing >= 19, `${ref.site}: ${JSON.stringify(countPatterns(got))}`);
      });
    }
  });
}

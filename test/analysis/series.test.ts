import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { analyzeSeries, siteKey, type Evidence, type Kind, type SiteUsage, type TimedSnapshot } from '../../src/analysis/index.js';

const MiB = 1024 * 1024;

interface UsageSpec {
  fn: string;
  line: number;
  kind: Kind;
  inuse: number;
  alloc: number;
  evidence?: Evidence;
  entryBytes?: number;
}

/** A capture at `minute` minutes, built from per-site values (bytes). */
function snapshot(minute: number, specs: UsageSpec[]): TimedSnapshot {
  const usages: SiteUsage[] = specs.map((s) => {
    const site = { function: s.fn, file: '/app/main.go', line: s.line };
    return {
      key: siteKey(site, s.kind),
      site,
      kind: s.kind,
      evidence: s.evidence ?? (s.kind === 'map' ? 'symbolized' : 'none'),
      mapImpl: s.kind === 'map' ? 'swiss' : 'unknown',
      inuseBytes: s.inuse,
      allocBytes: s.alloc,
      inuseObjects: 0,
      allocObjects: 0,
      components: s.kind === 'map' ? { groups: s.inuse - (s.entryBytes ?? 0), entry: s.entryBytes ?? 0 } : {},
    };
  });
  const allocBytesByFunction = new Map<string, number>();
  for (const u of usages) allocBytesByFunction.set(u.site.function, (allocBytesByFunction.get(u.site.function) ?? 0) + u.allocBytes);
  const inuse = usages.reduce((a, u) => a + u.inuseBytes, 0);
  return {
    time: new Date(Date.UTC(2026, 10, 26, 4, minute)),
    mapImpl: 'swiss',
    usages,
    allocBytesByFunction,
    totals: {
      inuseBytes: inuse,
      allocBytes: usages.reduce((a, u) => a + u.allocBytes, 0),
      mapInuseBytes: usages.filter((u) => u.kind === 'map').reduce((a, u) => a + u.inuseBytes, 0),
    },
    evidence: 'symbolized',
  };
}

const series = (n: number, at: (i: number) => UsageSpec[]): TimedSnapshot[] => Array.from({ length: n }, (_, i) => snapshot(i, at(i)));

describe('series analysis', () => {
  test('rising map memory is growing, with growth per hour from the slope', () => {
    const result = analyzeSeries(series(5, (i) => [{ fn: 'main.put', line: 10, kind: 'map', inuse: (10 + 10 * i) * MiB, alloc: (20 + 20 * i) * MiB }]));
    const [finding] = result.findings;
    assert.equal(finding?.pattern, 'growing');
    assert.equal(finding.growthBytesPerHour, 600 * MiB); // 10 MiB a minute
    assert.equal(finding.inuseBytes, 50 * MiB);
    assert.ok(finding.confidence >= 0.9);
    assert.match(finding.advice, /grows without bound/);
    assert.equal(finding.series.length, 5);
    assert.equal(result.captures, 5);
  });

  test("a classic map's growth sawtooth (old and new arrays live while evacuating) is still growing", () => {
    const mib = [2.3, 4.5, 13.5, 9, 9, 28.1, 18.1, 18.1]; // measured on a Go 1.19 map filled by json.Unmarshal
    const result = analyzeSeries(series(mib.length, (i) => [{ fn: 'main.ingest', line: 50, kind: 'map', inuse: mib[i]! * MiB, alloc: (3 + 5 * i) * MiB }]));
    assert.equal(result.findings[0]?.pattern, 'growing');
  });

  test('map memory held while its owner allocates nothing more is retained; freed elements raise confidence', () => {
    const held = (freed: boolean) =>
      analyzeSeries(
        series(5, (i) => [
          // Some other code keeps the GC cycling, so the captures differ.
          { fn: 'main.busy', line: 99, kind: 'other', inuse: 100 * 1024, alloc: (1 + i) * MiB },
          { fn: 'main.drain', line: 20, kind: 'map', inuse: 30 * MiB, alloc: 60 * MiB },
          { fn: 'main.drain', line: 19, kind: 'other', inuse: freed ? 0 : 80 * MiB, alloc: 80 * MiB },
        ]),
      ).findings.find((f) => f.kind === 'map');
    const freed = held(true);
    const notFreed = held(false);
    assert.equal(freed?.pattern, 'retained');
    assert.equal(notFreed?.pattern, 'retained');
    assert.ok(freed.confidence > notFreed.confidence);
    assert.match(freed.advice, /make\(map/);
  });

  test('maps built and dropped again and again are churn', () => {
    const inuse = [2, 5, 1, 3, 2];
    const result = analyzeSeries(series(5, (i) => [{ fn: 'main.hist', line: 30, kind: 'map', inuse: inuse[i]! * MiB, alloc: (100 + 300 * i) * MiB }]));
    assert.equal(result.findings[0]?.pattern, 'churn');
    assert.equal(result.findings[0].allocBytesPerHour, 300 * 60 * MiB);
  });

  test('steady map memory whose owner keeps working is stable', () => {
    const result = analyzeSeries(
      series(5, (i) => [
        { fn: 'main.cache', line: 40, kind: 'map', inuse: 30 * MiB, alloc: 31 * MiB },
        { fn: 'main.cache', line: 40, kind: 'other', inuse: 9 * MiB, alloc: (10 + 5 * i) * MiB },
      ]),
    );
    assert.deepEqual(
      result.findings.map((f) => [f.kind, f.pattern]),
      [['map', 'stable']],
      'the steady values are other memory that does not grow: not reported',
    );
  });

  test('growing non-map memory is reported as other, never as a map', () => {
    const result = analyzeSeries(series(4, (i) => [{ fn: 'main.leak', line: 50, kind: 'other', inuse: (5 + 5 * i) * MiB, alloc: (5 + 5 * i) * MiB }]));
    assert.equal(result.findings.length, 1);
    assert.equal(result.findings[0]?.kind, 'other');
    assert.equal(result.findings[0].pattern, 'growing');
    assert.equal(result.findings[0].evidence, 'none');
  });

  test('findings come most serious first; thresholds drop small maps', () => {
    const result = analyzeSeries(
      series(5, (i) => [
        { fn: 'main.stable', line: 1, kind: 'map', inuse: 90 * MiB, alloc: 90 * MiB + i },
        { fn: 'main.stable', line: 2, kind: 'other', inuse: MiB, alloc: (1 + i) * MiB },
        { fn: 'main.drained', line: 3, kind: 'map', inuse: 20 * MiB, alloc: 40 * MiB },
        { fn: 'main.put', line: 4, kind: 'map', inuse: (10 + 10 * i) * MiB, alloc: (20 + 20 * i) * MiB },
        { fn: 'main.tiny', line: 5, kind: 'map', inuse: 100 * 1024, alloc: 100 * 1024 },
      ]),
    );
    assert.deepEqual(
      result.findings.map((f) => `${f.site.function}:${f.pattern}`),
      ['main.put:growing', 'main.drained:retained', 'main.stable:stable'],
    );
  });

  test('captures are ordered by their own time, and repeats (no GC in between) are set aside', () => {
    const snaps = series(4, (i) => [{ fn: 'main.put', line: 10, kind: 'map', inuse: (10 + 10 * i) * MiB, alloc: (20 + 20 * i) * MiB }]);
    const repeat = { ...snaps[1]!, time: new Date(snaps[1]!.time.getTime() + 30_000) };
    const result = analyzeSeries([snaps[3]!, repeat, snaps[0]!, snaps[2]!, snaps[1]!]);
    assert.equal(result.captures, 5);
    assert.equal(result.staleCaptures, 1);
    assert.equal(result.window.start, snaps[0]!.time.toISOString());
    assert.equal(result.window.end, snaps[3]!.time.toISOString());
    assert.equal(result.findings[0]?.pattern, 'growing');
    assert.equal(result.findings[0].series.length, 4);
  });

  test('one capture cannot show a trend: low confidence', () => {
    const result = analyzeSeries([snapshot(0, [{ fn: 'main.put', line: 10, kind: 'map', inuse: 40 * MiB, alloc: 41 * MiB }])]);
    assert.equal(result.findings[0]?.pattern, 'stable');
    assert.ok(result.findings[0].confidence <= 0.3);
  });
});

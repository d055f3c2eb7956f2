import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { analyzeSeries, siteKey, type Evidence, type Kind, type MapComponent, type MapImpl, type SiteUsage, type TimedSnapshot } from '../../src/analysis/index.js';
import { buildReport } from '../../src/analysis/report.js';
import { formatReport } from '../../src/cli/format.js';

const MiB = 1024 * 1024;

interface UsageSpec {
  fn: string;
  line: number;
  kind: Kind;
  inuse: number;
  alloc: number;
  evidence?: Evidence;
  entryBytes?: number;
  entryAlloc?: number;
  overflowAlloc?: number;
  /** In-use bytes by component; default: all groups (and entryBytes entries). */
  components?: Partial<Record<MapComponent, number>>;
  impl?: MapImpl;
  caller?: { fn: string; line: number };
  /** In-use objects (the sampling model reads the typical object size from it); default unknown (0). */
  objects?: number;
}

/** A capture at `minute` minutes, built from per-site values (bytes). */
function snapshot(minute: number, specs: UsageSpec[]): TimedSnapshot {
  const usages: SiteUsage[] = specs.map((s) => {
    const site = { function: s.fn, file: '/app/main.go', line: s.line };
    const caller = s.caller ? { function: s.caller.fn, file: '/app/main.go', line: s.caller.line } : undefined;
    return {
      key: siteKey(site, s.kind, caller),
      site,
      ...(caller ? { caller } : {}),
      kind: s.kind,
      evidence: s.evidence ?? (s.kind === 'map' ? 'symbolized' : 'none'),
      mapImpl: s.kind === 'map' ? (s.impl ?? 'swiss') : 'unknown',
      inuseBytes: s.inuse,
      allocBytes: s.alloc,
      inuseObjects: s.objects ?? 0,
      allocObjects: 0,
      components: s.kind === 'map' ? (s.components ?? { groups: s.inuse - (s.entryBytes ?? 0), entry: s.entryBytes ?? 0 }) : {},
      allocComponents: s.kind === 'map' ? { entry: s.entryAlloc ?? 0, ...(s.overflowAlloc !== undefined ? { overflow: s.overflowAlloc } : {}) } : {},
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
    // One or two bucket arrays of megabytes: objects far above the sampling rate are always sampled.
    const arrays = [1, 1, 2, 1, 1, 2, 1, 1];
    const result = analyzeSeries(series(mib.length, (i) => [{ fn: 'main.ingest', line: 50, kind: 'map', inuse: mib[i]! * MiB, alloc: (3 + 5 * i) * MiB, objects: arrays[i]! }]));
    assert.equal(result.findings[0]?.pattern, 'growing');
  });

  test('a map held at its high-water mark whose elements were freed is retained; the same map whose elements live is stable', () => {
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
    const inUse = held(false);
    assert.equal(freed?.pattern, 'retained');
    assert.match(freed.advice, /make\(map/);
    assert.equal(inUse?.pattern, 'stable', 'a table built once whose values are alive is not drained');
    assert.doesNotMatch(inUse.advice, /drained but/);
  });

  test('out-of-line entries freed while the tables stay are evidence of draining', () => {
    const result = analyzeSeries(
      series(6, (i) => [
        { fn: 'main.busy', line: 99, kind: 'other', inuse: 100 * 1024, alloc: (1 + i) * MiB },
        { fn: 'main.blobs', line: 20, kind: 'map', inuse: 12 * MiB, alloc: 76 * MiB, entryBytes: 0, entryAlloc: 64 * MiB },
      ]),
    );
    assert.equal(result.findings[0]?.pattern, 'retained');
  });

  test('a map with keys and values inline held at one size: stable, with advice that the profile cannot tell drained from full', () => {
    const result = analyzeSeries(
      series(6, (i) => [
        { fn: 'main.busy', line: 99, kind: 'other', inuse: 100 * 1024, alloc: (1 + i) * MiB },
        { fn: 'main.vectors', line: 20, kind: 'map', inuse: 9 * MiB, alloc: 18 * MiB },
      ]),
    );
    assert.equal(result.findings[0]?.pattern, 'stable');
    assert.match(result.findings[0].advice, /cannot tell a full map from a drained one/);
    assert.match(result.findings[0].advice, /len\(m\)/);
  });

  test('a transient at the start of the window is neither a trend nor activity', () => {
    const busy = (i: number): UsageSpec => ({ fn: 'main.busy', line: 99, kind: 'other', inuse: 100 * 1024, alloc: (1 + i) * MiB });
    // A drained classic map: the first capture still held the old bucket
    // array of its last growth; its values were freed before the window.
    const drained = [66, 46, 46, 46, 46, 46];
    const classic = analyzeSeries(
      series(drained.length, (i) => [
        busy(i),
        { fn: 'main.drain', line: 20, kind: 'map', inuse: drained[i]! * MiB, alloc: 112 * MiB, impl: 'classic', components: { buckets: drained[i]! * MiB } },
        // Freed values, their frees published a cycle late: the first capture still counts some.
        { fn: 'main.drain', line: 19, kind: 'other', inuse: i === 0 ? 20 * MiB : 0, alloc: (i === 0 ? 60 : 80) * MiB },
      ]),
    ).findings.find((f) => f.kind === 'map');
    assert.equal(classic?.pattern, 'retained');
    // A swiss map filled before serving, captured right after start: the
    // first capture shows only what the last finished cycle had published.
    const filled = [22, 40, 40, 40, 40, 40];
    const swiss = analyzeSeries(
      series(filled.length, (i) => [busy(i), { fn: 'main.table', line: 30, kind: 'map', inuse: filled[i]! * MiB, alloc: filled[i]! * MiB }]),
    ).findings[0];
    assert.notEqual(swiss?.pattern, 'growing');
    assert.equal(swiss?.pattern, 'stable');
  });

  test('an LRU at capacity whose entries another package allocates is stable, not retained', () => {
    const result = analyzeSeries(
      series(8, (i) => [
        // The map belongs to the library; the user's lookup feeds it.
        { fn: 'github.com/acme/lru.(*LRU).Add', line: 70, kind: 'map', inuse: 6 * MiB, alloc: 6 * MiB, caller: { fn: 'main.lookup', line: 12 } },
        // List elements (another package) and values (the caller) stay alive while they churn.
        { fn: 'github.com/acme/lru/internal.(*List).insert', line: 30, kind: 'other', inuse: 5 * MiB, alloc: (40 + 10 * i) * MiB, caller: { fn: 'main.lookup', line: 12 } },
        { fn: 'main.lookup', line: 11, kind: 'other', inuse: 9 * MiB, alloc: (80 + 20 * i) * MiB },
      ]),
    );
    const map = result.findings.find((f) => f.kind === 'map');
    assert.equal(map?.pattern, 'stable');
    assert.deepEqual(map.caller, { function: 'main.lookup', file: '/app/main.go', line: 12 });
    assert.equal(map.site.function, 'github.com/acme/lru.(*LRU).Add');
  });

  test("a classic map whose overflow buckets grow under churn is churn at a bound, and the advice says so", () => {
    const result = analyzeSeries(
      series(10, (i) => [
        { fn: 'main.busy', line: 99, kind: 'other', inuse: 4 * MiB, alloc: (100 + 10 * i) * MiB },
        {
          fn: 'main.cache',
          line: 40,
          kind: 'map',
          impl: 'classic',
          inuse: (16 + 0.8 * i) * MiB,
          alloc: (16 + 0.8 * i) * MiB,
          components: { buckets: 16 * MiB, overflow: 0.8 * i * MiB },
          overflowAlloc: 0.8 * i * MiB,
        },
        { fn: 'main.cache', line: 39, kind: 'other', inuse: 10 * MiB, alloc: (50 + 5 * i) * MiB },
      ]),
    );
    const map = result.findings.find((f) => f.kind === 'map');
    assert.equal(map?.pattern, 'churn');
    assert.match(map.advice, /overflow buckets/);
  });

  test("a growing map between its doublings (its own memory flat) is growing: what it holds grows", () => {
    const result = analyzeSeries(
      series(10, (i) => [
        { fn: 'main.put', line: 40, kind: 'map', impl: 'classic', inuse: 32 * MiB, alloc: 48 * MiB, components: { buckets: 32 * MiB } },
        { fn: 'main.put', line: 39, kind: 'other', inuse: (20 + 3 * i) * MiB, alloc: (20 + 3 * i) * MiB },
      ]),
    );
    assert.equal(result.findings.find((f) => f.kind === 'map')?.pattern, 'growing');
  });

  test('a map built and dropped on every scrape, bigger each time, is churn, not growing', () => {
    // In use only when a capture's GC cycle ended during a scrape.
    const live = [0, 3, 0, 0, 4, 0, 0, 5, 0, 0];
    const result = analyzeSeries(
      series(live.length, (i) => [
        { fn: 'main.busy', line: 99, kind: 'other', inuse: 4 * MiB, alloc: (100 + 10 * i) * MiB },
        { fn: 'github.com/acme/metrics.(*Registry).Gather', line: 400, kind: 'map', inuse: live[i]! * MiB, alloc: (20 * i + i * i) * MiB, caller: { fn: 'main.scrape', line: 5 } },
      ]),
    );
    assert.equal(result.findings.find((f) => f.kind === 'map')?.pattern, 'churn');
  });

  test('growth spread over several lines of one function is reported for the function', () => {
    // One buffer, grown by whichever Write finds it full: its memory moves
    // between lines; doubling, it has allocated about twice its size.
    const at = [10, 11, 12, 10, 11, 12, 10, 11, 12, 10];
    const result = analyzeSeries(
      series(at.length, (i) =>
        [10, 11, 12].map((line) => ({ fn: 'main.(*journal).record', line, kind: 'other' as const, inuse: at[i] === line ? (4 + 2 * i) * MiB : 0, alloc: ((8 + 4 * i) / 3) * MiB })),
      ),
    );
    assert.equal(result.findings.length, 1, 'no single line grows');
    const [finding] = result.findings;
    assert.equal(finding?.scope, 'function');
    assert.equal(finding.kind, 'other');
    assert.equal(finding.pattern, 'growing');
    assert.equal(finding.site.function, 'main.(*journal).record');
    assert.equal(finding.site.line, 0);
    assert.deepEqual(finding.lines, [10, 11, 12]);
    assert.equal(finding.inuseBytes, 22 * MiB);
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
        { fn: 'main.drained', line: 6, kind: 'other', inuse: 0, alloc: 30 * MiB }, // its values, freed
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
    // Tables of 2 MiB each: always sampled, so two settled captures are enough to see the rise.
    const snaps = series(4, (i) => [{ fn: 'main.put', line: 10, kind: 'map', inuse: (10 + 10 * i) * MiB, alloc: (20 + 20 * i) * MiB, objects: 5 + 5 * i }]);
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

describe('series analysis: a target that restarted during the series', () => {
  // Measured by the accuracy review (a leaky program restarted during a --url watch): allocated 1.23 GB, then 70 MB.
  const restarted = series(14, (i) =>
    i < 6
      ? [{ fn: 'main.put', line: 10, kind: 'map', inuse: (40 + 10 * i) * MiB, alloc: (80 + 20 * i) * MiB }]
      : [{ fn: 'main.put', line: 10, kind: 'map', inuse: (10 + 10 * (i - 6)) * MiB, alloc: (20 + 20 * (i - 6)) * MiB }],
  );

  test('the captures before the restart are left out, so the restart hides no growing map', () => {
    const analysis = analyzeSeries(restarted);
    assert.equal(analysis.findings[0]?.pattern, 'growing');
    assert.equal(analysis.restartedCaptures, 6);
    assert.equal(analysis.captures, 14);
    assert.equal(analysis.window.start, (restarted[6] as TimedSnapshot).time.toISOString());
  });

  test('the report says the target restarted and how many captures were left out', () => {
    const report = buildReport(analyzeSeries(restarted), undefined, ['a capture warning']);
    assert.deepEqual(report.warnings, ['the target restarted during the series (its allocation counters started again): the 6 capture(s) before its last restart are left out', 'a capture warning']);
  });

  test('profiles with in-use figures only (no allocation counters) are never read as restarts', () => {
    const inuseOnly = series(8, (i) => [{ fn: 'main.put', line: 10, kind: 'map', inuse: (80 - 5 * i) * MiB, alloc: 0 }]);
    assert.equal(analyzeSeries(inuseOnly).restartedCaptures, 0);
  });

  test('a new process that has already allocated more in all than the old one had is told by a function whose allocation fell', () => {
    // The old process loaded 18 MiB at main.load; the new one's start-up allocates far more at main.put before main.load catches up.
    const overtaken = series(10, (i) =>
      i < 5
        ? [{ fn: 'main.load', line: 5, kind: 'other', inuse: 2 * MiB, alloc: (10 + 2 * i) * MiB }, { fn: 'main.put', line: 10, kind: 'map', inuse: (20 + 5 * i) * MiB, alloc: (40 + 10 * i) * MiB }]
        : [{ fn: 'main.load', line: 5, kind: 'other', inuse: 2 * MiB, alloc: (4 + i) * MiB }, { fn: 'main.put', line: 10, kind: 'map', inuse: (20 + 5 * i) * MiB, alloc: (200 + 10 * i) * MiB }],
    );
    assert.ok((overtaken[5] as TimedSnapshot).totals.allocBytes > (overtaken[4] as TimedSnapshot).totals.allocBytes, 'the total did not fall');
    assert.equal(analyzeSeries(overtaken).restartedCaptures, 5);
  });

  test('a function a later capture no longer names (a stored capture keeps only its largest sites) is no restart, nor a fall within four samples', () => {
    const capped = series(10, (i) => [
      ...(i < 5 ? [{ fn: 'main.cold', line: 7, kind: 'other' as const, inuse: 0, alloc: 3 * MiB }] : []),
      { fn: 'main.load', line: 5, kind: 'other', inuse: 2 * MiB, alloc: (i === 6 ? 23.5 : 20 + i) * MiB }, // 1.5 MiB below the capture before: three samples at 512 KiB
      { fn: 'main.put', line: 10, kind: 'map', inuse: (20 + 5 * i) * MiB, alloc: (40 + 10 * i) * MiB },
    ]);
    assert.equal(analyzeSeries(capped).restartedCaptures, 0);
  });

  test('one process: allocation counters that only rise (or stay) leave every capture in', () => {
    const steady = series(10, (i) => [{ fn: 'main.put', line: 10, kind: 'map', inuse: (40 + 10 * i) * MiB, alloc: (80 + 20 * Math.floor(i / 2)) * MiB }]);
    const analysis = analyzeSeries(steady);
    assert.equal(analysis.restartedCaptures, 0);
    assert.equal(analysis.window.start, (steady[0] as TimedSnapshot).time.toISOString());
    assert.deepEqual(buildReport(analysis, undefined, []).warnings, []);
  });
});

describe('series analysis: memory that stays, as a rate', () => {
  test('map memory that keeps one in five of the copies it allocates, rising steadily, is growing', () => {
    // Measured by the accuracy review (client-go's fake clientset keeps a DeepCopy of every updated object's Data map).
    const inuse = [30, 35, 40.5, 49.5, 55, 61, 68.5, 78.5, 89];
    const alloc = [100, 120, 139.5, 187.5, 221.5, 256.5, 291, 339, 384];
    const result = analyzeSeries(series(inuse.length, (i) => [{ fn: 'k8s.io/api/core/v1.(*ConfigMap).DeepCopyInto', line: 599, kind: 'map', inuse: (inuse[i] as number) * MiB, alloc: (alloc[i] as number) * MiB }]));
    assert.equal(result.findings[0]?.pattern, 'growing');
  });
});

describe('series analysis: drained means gone, not merely allocated before', () => {
  test('an inline table refilled to one size by code that also makes short-lived garbage is not retained', () => {
    // Measured by the accuracy review (a map[uint64]uint64 cleared and refilled to one size every 2.5 s beside decode buffers).
    const result = analyzeSeries(
      series(8, (i) => [
        { fn: 'main.refill', line: 99, kind: 'map', inuse: 8 * MiB, alloc: 8 * MiB }, // tables reused after clear()
        { fn: 'main.refill', line: 90, kind: 'other', inuse: 200 * 1024, alloc: (40 + 7 * i) * MiB }, // decode buffers, freed at once
      ]),
    );
    const map = result.findings.find((f) => f.kind === 'map');
    assert.ok(map, 'the map is reported');
    assert.notEqual(map.pattern, 'retained');
  });
});

describe('series analysis: churn is memory given back', () => {
  test('a map site that keeps what it allocates is not churn, whatever the sampling rate', () => {
    // Measured by the accuracy review (leaky at MemProfileRate 4 MiB): every sampled map is kept; first sampled mid-window.
    const mib = [...Array<number>(12).fill(0), ...Array<number>(8).fill(4), 8, 8, 8, 8, 12];
    const snaps = series(mib.length, (i) => [
      { fn: 'main.busy', line: 99, kind: 'other', inuse: 100 * 1024, alloc: (1 + 100 * i) * MiB },
      ...((mib[i] as number) > 0 ? [{ fn: 'main.audit', line: 52, kind: 'map' as const, inuse: (mib[i] as number) * MiB, alloc: (mib[i] as number) * MiB }] : []),
    ]);
    for (const s of snaps) s.memProfileRate = 4 * MiB;
    assert.notEqual(analyzeSeries(snaps).findings.find((f) => f.kind === 'map')?.pattern, 'churn');
  });
});

describe('series analysis: growing means still growing at the end of the window', () => {
  test('a map that grew in a burst and then held its size for the rest of the window is not growing', () => {
    // Measured (a warming cache, Go 1.26, 30 captures 2 s apart): the warm-up ended 16 s into a 58 s window.
    const map = [0.5, 2.1, 2.1, 4.6, 3.6, 3.6, 3.6, 6.2, ...Array<number>(22).fill(6.7)];
    const values = [0.5, 1.5, 2.0, 2.0, 2.5, 4.0, 7.0, 7.5, 9.0, 10.5, 12.0, 13.0, ...Array<number>(18).fill(13.5)];
    const result = analyzeSeries(
      series(map.length, (i) => [
        { fn: 'main.busy', line: 99, kind: 'other', inuse: 100 * 1024, alloc: (1 + 100 * i) * MiB },
        { fn: 'main.warm', line: 30, kind: 'map', inuse: map[i]! * MiB, alloc: Math.max(...map.slice(0, i + 1)) * 1.5 * MiB },
        { fn: 'main.warm', line: 30, kind: 'other', inuse: values[i]! * MiB, alloc: Math.max(...values.slice(0, i + 1)) * MiB },
      ]),
    );
    const map_ = result.findings.find((f) => f.kind === 'map');
    assert.equal(map_?.pattern, 'stable');
    assert.equal(result.findings.find((f) => f.kind === 'other'), undefined, 'its values stopped growing too: not reported');
  });

  test('the same map still filling at the end of the window is growing', () => {
    const result = analyzeSeries(
      series(30, (i) => [
        { fn: 'main.busy', line: 99, kind: 'other', inuse: 100 * 1024, alloc: (1 + 100 * i) * MiB },
        { fn: 'main.warm', line: 30, kind: 'map', inuse: (0.5 + 0.25 * i) * MiB, alloc: (0.5 + 0.25 * i) * 1.5 * MiB },
        { fn: 'main.warm', line: 30, kind: 'other', inuse: (0.5 + 0.5 * i) * MiB, alloc: (0.5 + 0.5 * i) * MiB },
      ]),
    );
    assert.equal(result.findings.find((f) => f.kind === 'map')?.pattern, 'growing');
    assert.equal(result.findings.find((f) => f.kind === 'other')?.pattern, 'growing');
  });

  test('a latter half too noisy to show a rise does not stop one: a resampled buffer growing steadily stays growing', () => {
    // Everything in use is re-allocated between captures (large sampling error); the latter half's own slope is not significant.
    const result = analyzeSeries(series(10, (i) => [{ fn: 'main.record', line: 10, kind: 'other', inuse: (4 + 2 * i) * MiB, alloc: (8 + 4 * i) * MiB }]));
    assert.equal(result.findings[0]?.pattern, 'growing');
  });
});

describe('series analysis: growth in steps', () => {
  test('a map whose tables doubled and are flat since, for less time than the next doubling takes at its rate, is still growing', () => {
    // Measured (a go-cache that never expires, Go 1.26, 25 captures 2 s apart): its tables
    // split together (keys hash uniformly) 22 s in; nothing else it holds is linked to it.
    const tables = [16.76, 17.81, 17.81, 17.81, ...Array<number>(6).fill(18.86), 19.38, 24.62, 28.29, ...Array<number>(12).fill(28.81)];
    const allocated = [33, 34.05, 34.05, 34.05, ...Array<number>(6).fill(39.29), 39.81, 46.62, 53.95, ...Array<number>(12).fill(54.48)];
    const objects = [356, 378, 378, 378, ...Array<number>(6).fill(401), 412, 524, 601, ...Array<number>(12).fill(613)];
    const result = analyzeSeries(
      series(tables.length, (i) => [
        { fn: 'main.busy', line: 99, kind: 'other', inuse: 100 * 1024, alloc: (1 + 100 * i) * MiB },
        { fn: 'main.remember', line: 61, kind: 'map', inuse: tables[i]! * MiB, alloc: allocated[i]! * MiB, objects: objects[i]! },
      ]),
    );
    assert.equal(result.findings.find((f) => f.kind === 'map')?.pattern, 'growing');
  });
});

describe('series analysis: a map can hold only so much more while its tables stay', () => {
  test('a capped map whose caller also grows unrelated memory is not growing: the growth is reported as other', () => {
    const result = analyzeSeries(
      series(10, (i) => [
        { fn: 'github.com/acme/lru.(*LRU).Add', line: 60, kind: 'map', inuse: 1.5 * MiB, alloc: 1.5 * MiB, caller: { fn: 'main.handle', line: 126 } },
        { fn: 'main.handle', line: 129, kind: 'other', inuse: (5 + 4 * i) * MiB, alloc: (5 + 4 * i) * MiB },
      ]),
    );
    assert.notEqual(result.findings.find((f) => f.kind === 'map')?.pattern, 'growing');
    assert.equal(result.findings.find((f) => f.kind === 'other')?.pattern, 'growing');
  });

  test('a capped map that grew early in the window, then held its tables while its caller leaked, is not growing', () => {
    // Measured (golang-lru at capacity 50,000 in a handler that appends to a journal, Go 1.26, 30 captures 2 s apart):
    // the LRU's tables grew until 14 s and never again; the journal grew throughout.
    const lru = [1.53, 3.05, 3.05, 3.05, 1.02, ...Array<number>(25).fill(1.53)];
    const lruAlloc = [2.04, 4.58, 4.58, 4.58, 5.6, ...Array<number>(25).fill(6.11)];
    const result = analyzeSeries(
      series(lru.length, (i) => [
        { fn: 'github.com/acme/lru.(*LRU).Add', line: 60, kind: 'map', inuse: lru[i]! * MiB, alloc: lruAlloc[i]! * MiB, caller: { fn: 'main.handle', line: 126 } },
        { fn: 'main.handle', line: 126, kind: 'other', inuse: 1.5 * MiB, alloc: (1.5 + 0.3 * i) * MiB },
        { fn: 'main.handle', line: 129, kind: 'other', inuse: (2 + 1.15 * i) * MiB, alloc: (3 + 2.2 * i) * MiB },
      ]),
    );
    assert.notEqual(result.findings.find((f) => f.kind === 'map')?.pattern, 'growing');
    assert.equal(result.findings.find((f) => f.kind === 'other' && f.site.line === 129)?.pattern, 'growing');
  });
});

describe('series analysis: a classic map\'s overflow buckets add no room', () => {
  // Measured (golang-lru at capacity 50,000 in a handler that appends every request to a journal, Go 1.19,
  // 30 captures 2 s apart): the bucket array held; two sampled overflow buckets came in (evictions and
  // inserts leave some chains full) and stayed; the journal grew throughout.
  const overflow = [...Array<number>(13).fill(0), ...Array<number>(5).fill(0.5), ...Array<number>(12).fill(1)];
  const objects = [...Array<number>(13).fill(1), ...Array<number>(5).fill(3642), ...Array<number>(12).fill(7283)];
  const journal = [5.08, 5.08, 7.51, 8.84, 10.34, 12.27, 12.27, 14.32, 15.32, 17.53, 18.53, 18.53, 19.92, 21.42, 21.42, 22.92, 27.53, 27.53, 28.53, 28.53, 30.92, 30.92, 32.42, 32.42, 33.92, 33.92, 35.42, 35.42, 38.65, 38.65];
  const journalAlloc = [7.63, 7.63, 12.4, 15.24, 16.74, 20.51, 20.51, 24.83, 25.83, 30.86, 31.86, 31.86, 36.77, 38.27, 38.27, 39.77, 48.8, 48.8, 49.8, 49.8, 57.71, 57.71, 59.21, 59.21, 60.71, 60.71, 62.21, 62.21, 72.36, 72.36];
  const lru = (i: number, entries = 0): UsageSpec => ({
    fn: 'github.com/hashicorp/golang-lru/v2/simplelru.(*LRU[...]).Add',
    line: 60,
    kind: 'map',
    impl: 'classic',
    inuse: (1.32 + overflow[i]! + entries) * MiB,
    alloc: (2.84 + overflow[i]! + entries) * MiB,
    components: { buckets: 1.32 * MiB, overflow: overflow[i]! * MiB, ...(entries > 0 ? { entry: entries * MiB } : {}) },
    overflowAlloc: overflow[i]! * MiB,
    entryAlloc: entries * MiB,
    objects: objects[i]!,
    caller: { fn: 'main.handle', line: 126 },
  });
  const journalOf = (i: number): UsageSpec => ({ fn: 'main.handle', line: 129, kind: 'other', inuse: journal[i]! * MiB, alloc: journalAlloc[i]! * MiB, objects: 43_695 + 9_600 * i });

  test('a capped map whose overflow buckets filled while its caller leaked is not growing; the leak is reported at its line', () => {
    const findings = analyzeSeries(series(journal.length, (i) => [lru(i), journalOf(i)])).findings;
    assert.notEqual(findings.find((f) => f.kind === 'map')?.pattern, 'growing');
    assert.equal(findings.find((f) => f.site.line === 129)?.pattern, 'growing');
  });

  test('the same map whose out-of-line entries grow as well is growing: that is room it took', () => {
    const findings = analyzeSeries(series(journal.length, (i) => [lru(i, 0.6 * i), journalOf(i)])).findings;
    assert.equal(findings.find((f) => f.kind === 'map')?.pattern, 'growing');
  });
});

describe('series analysis: one map fed from two lines', () => {
  // Measured (a map filled to 851,969 entries at one line, then insert/delete churn at a constant count at another,
  // Go 1.26, MemProfileRate 4096, 30 captures 2 s apart): tables the churn line allocates replace tables of the fill line.
  const churnLine = [0, 0.04, 0.04, 0.14, 0.14, 0.25, 0.25, 0.25, 0.28, 0.28, 0.39, 0.39, 0.39, 0.46, 0.46, 0.46, 0.46, 0.71, 0.75, 0.75, 0.82, 0.82, 0.82, 0.82, 0.92, 0.92, 0.92, 0.92, 1.03, 1.03];
  const fillLine = [18.37, 18.35, 18.35, 18.3, 18.3, 18.24, 18.24, 18.24, 18.23, 18.23, 18.17, 18.17, 18.17, 18.14, 18.14, 18.14, 18.14, 18.01, 17.99, 17.99, 17.94, 17.94, 17.94, 17.94, 17.89, 17.89, 17.89, 17.89, 17.83, 17.83];
  const run = (fill: readonly number[]) => {
    const snaps = series(churnLine.length, (i) => [
      { fn: 'main.busy', line: 99, kind: 'other', inuse: 100 * 1024, alloc: (1 + 100 * i) * MiB },
      { fn: 'main.evacuating', line: 102, kind: 'map', inuse: fill[i]! * MiB, alloc: 36.74 * MiB, objects: Math.round((fill[i]! * MiB) / 10_600) },
      ...(churnLine[i]! > 0 ? [{ fn: 'main.evacuating', line: 112, kind: 'map' as const, inuse: churnLine[i]! * MiB, alloc: churnLine[i]! * MiB, objects: Math.round((churnLine[i]! * MiB) / 18_600) }] : []),
    ]);
    for (const s of snaps) s.memProfileRate = 4096;
    return analyzeSeries(snaps).findings;
  };

  test('the line whose tables replace the other line\'s is not growing: the map is at a constant size', () => {
    const findings = run(fillLine);
    assert.notEqual(findings.find((f) => f.site.line === 112)?.pattern, 'growing');
    assert.equal(findings.some((f) => f.pattern === 'growing'), false, 'nor is the function');
  });

  test('the same line beside a map that does not give its tables back is growing', () => {
    const findings = run(fillLine.map(() => 18.37));
    assert.equal(findings.find((f) => f.site.line === 112)?.pattern, 'growing');
  });
});

describe('series analysis: stable only where the window can show it', () => {
  const busy = (i: number): UsageSpec => ({ fn: 'main.busy', line: 99, kind: 'other', inuse: 100 * 1024, alloc: (1 + i) * MiB });

  test('one distinct capture cannot show a map is stable: the finding says growth is undetermined, and the table prints ~', () => {
    // No GC cycle ended between the captures: every one repeats the first.
    const result = analyzeSeries(series(5, () => [busy(0), { fn: 'main.put', line: 10, kind: 'map', inuse: 6 * MiB, alloc: 6 * MiB }]));
    const [finding] = result.findings;
    assert.equal(finding?.pattern, 'stable');
    assert.equal(finding.growthUndetermined, true);
    assert.match(finding.advice, /cannot rule out slow growth/);
    const row = formatReport(buildReport(result, undefined, [])).split('\n').find((l) => l.includes('main.put'));
    assert.match(row ?? '', /stable\s+6\.0 MiB\s+~\s/);
  });

  test('a rise of less than one sample at a sparse rate is not called stable without saying growth is undetermined', () => {
    // MemProfileRate 4 MiB: the map's 3 MiB of new entries show as one 4 MiB sample, or none.
    const mib = [8, 8, 8, 8, 8, 12, 12, 12, 12, 12];
    const snaps = series(mib.length, (i) => [busy(i), { fn: 'main.put', line: 10, kind: 'map', inuse: mib[i]! * MiB, alloc: mib[i]! * MiB }]);
    for (const s of snaps) s.memProfileRate = 4 * MiB;
    const finding = analyzeSeries(snaps).findings.find((f) => f.kind === 'map');
    assert.ok(finding?.pattern !== 'stable' || finding.growthUndetermined === true, `${finding?.pattern}, growthUndetermined ${String(finding?.growthUndetermined)}`);
  });

  test('a map whose tables stay the same sampled objects throughout is stable, and resolved', () => {
    const result = analyzeSeries(series(8, (i) => [busy(i), { fn: 'main.index', line: 20, kind: 'map', inuse: 12 * MiB, alloc: 12 * MiB }]));
    const finding = result.findings.find((f) => f.kind === 'map');
    assert.equal(finding?.pattern, 'stable');
    assert.equal(finding.growthUndetermined, undefined);
    assert.doesNotMatch(finding.advice, /cannot rule out/);
  });
});

describe('series analysis: one library line fed by two callers', () => {
  const SET = 'github.com/patrickmn/go-cache.(*cache).Set';
  const remember = { fn: 'main.remember', line: 38 };
  const session = { fn: 'main.session', line: 42 };
  // As test/targets/twocallers has them: a cache that keeps every entry, and a TTL cache at its bound whose values are replaced all the time.
  const twoCaches = (i: number): UsageSpec[] => [
    { fn: SET, line: 61, kind: 'map', inuse: (4 + 2 * i) * MiB, alloc: (4 + 2 * i) * MiB, caller: remember },
    { fn: SET, line: 61, kind: 'map', inuse: 9 * MiB, alloc: (9 + 3 * i) * MiB, caller: session },
    { fn: 'main.remember', line: 38, kind: 'other', inuse: (2 + i) * MiB, alloc: (2 + i) * MiB },
    { fn: 'main.session', line: 42, kind: 'other', inuse: 3 * MiB, alloc: (3 + 20 * i) * MiB },
  ];

  test('each caller is a finding of its own: the leaking one growing, the bounded one not, each naming its caller', () => {
    const maps = analyzeSeries(series(10, twoCaches)).findings.filter((f) => f.kind === 'map');
    assert.equal(maps.length, 2);
    const leak = maps.find((f) => f.caller?.function === 'main.remember');
    const bounded = maps.find((f) => f.caller?.function === 'main.session');
    assert.equal(leak?.pattern, 'growing');
    assert.notEqual(bounded?.pattern, 'growing');
    assert.match(leak.advice, /grows without bound/);
    assert.doesNotMatch(bounded?.advice ?? '', /grows without bound/);
    // The leak's series is its own bytes, not the two caches' sum.
    assert.deepEqual(leak.series.map((p) => p.inuseBytes / MiB), Array.from({ length: 10 }, (_, i) => 4 + 2 * i));
    assert.ok(maps.every((f) => f.site.function === SET && f.site.line === 61));
  });

  test("what another caller stores is not this map's elements", () => {
    // main.remember's values grow (its own map holds them); main.session's map and values stay flat.
    const result = analyzeSeries(
      series(10, (i) => [
        { fn: SET, line: 61, kind: 'map', inuse: 1.5 * MiB, alloc: 1.5 * MiB, caller: session },
        { fn: SET, line: 61, kind: 'map', inuse: (2 + 0.5 * i) * MiB, alloc: (2 + 0.5 * i) * MiB, caller: remember },
        { fn: SET, line: 61, kind: 'other', inuse: (5 + 4 * i) * MiB, alloc: (5 + 4 * i) * MiB, caller: remember },
        { fn: SET, line: 61, kind: 'other', inuse: 1 * MiB, alloc: (1 + 5 * i) * MiB, caller: session },
      ]),
    );
    const bounded = result.findings.find((f) => f.kind === 'map' && f.caller?.function === 'main.session');
    assert.ok(bounded, 'reported');
    assert.notEqual(bounded.pattern, 'growing');
    assert.equal(result.findings.find((f) => f.kind === 'map' && f.caller?.function === 'main.remember')?.pattern, 'growing');
  });

  test("growth spread over a library function's lines is the finding of the caller that feeds them, without another caller's lines", () => {
    const at = [10, 11, 12, 10, 11, 12, 10, 11, 12, 10];
    const JOURNAL = 'github.com/acme/journal.(*Journal).Write';
    const result = analyzeSeries(
      series(at.length, (i) => [
        ...[10, 11, 12].map((line) => ({ fn: JOURNAL, line, kind: 'other' as const, inuse: at[i] === line ? (4 + 2 * i) * MiB : 0, alloc: ((8 + 4 * i) / 3) * MiB, caller: { fn: 'main.audit', line: 5 } })),
        // Another journal of the same library, flat, fed by another caller.
        ...[10, 11].map((line) => ({ fn: JOURNAL, line, kind: 'other' as const, inuse: 6 * MiB, alloc: 6 * MiB, caller: { fn: 'main.access', line: 9 } })),
      ]),
    );
    const spread = result.findings.filter((f) => f.scope === 'function');
    assert.equal(spread.length, 1, JSON.stringify(result.findings.map((f) => [f.site, f.caller, f.pattern])));
    assert.equal(spread[0]?.pattern, 'growing');
    assert.equal(spread[0].caller?.function, 'main.audit');
    assert.deepEqual(spread[0].lines, [10, 11, 12]);
    assert.equal(spread[0].inuseBytes, 22 * MiB, "the other caller's 12 MiB are not in it");
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Finding, SeriesAnalysis } from '../../src/analysis/series.js';
import { buildCaptureStatus, findingKey, roundConditions, verdictOf, type TargetRound } from '../../src/status/build.js';
import { setCondition } from '../../src/status/conditions.js';

const MiB = 1024 * 1024;

function finding(line: number, pattern: Finding['pattern'], kind: Finding['kind'] = 'map', inuse = 10 * MiB): Finding {
  return {
    site: { function: 'main.put', file: '/app/main.go', line },
    kind,
    pattern,
    inuseBytes: inuse,
    maxInuseBytes: inuse,
    growthBytesPerHour: pattern === 'growing' ? 100 * MiB : 0,
    allocBytesPerHour: 0,
    evidence: 'symbolized',
    mapImpl: 'swiss',
    confidence: 0.8,
    advice: 'do something',
    components: {},
    series: [],
  };
}

function round(name: string, findings: Finding[], extra: Partial<TargetRound> = {}): TargetRound {
  const analysis: SeriesAnalysis = {
    captures: 3,
    staleCaptures: 0,
    window: { start: '2026-11-26T04:00:00.000Z', end: '2026-11-26T04:01:00.000Z' },
    mapImpl: 'swiss',
    totals: { inuseBytes: 100 * MiB, mapInuseBytes: 40 * MiB },
    findings,
  };
  return { pod: { name, namespace: 'default', uid: `uid-${name}` }, captures: 3, lastCaptureTime: '2026-11-26T04:01:00.000Z', analysis, ...extra };
}

describe('status from a round', () => {
  test("a profile's own names and numbers are made to fit the CRD (one bad field would make the API server refuse the whole status)", () => {
    const hostile: Finding = {
      ...finding(2 ** 40, 'growing'),
      site: { function: 'main.put\nVerdict: Healthy\u202e', file: `/app/${'x'.repeat(2000)}.go`, line: 2 ** 40 },
      caller: { function: 'main.main', file: '/app/main.go', line: -3 },
      scope: 'function',
      lines: [12, 2 ** 33, Number.NaN],
      inuseBytes: 1.5e6 + 0.25,
      growthBytesPerHour: Number.NaN,
      allocBytesPerHour: Number.POSITIVE_INFINITY,
    };
    const shown = buildCaptureStatus([round('a', [hostile])], new Map()).findings?.[0];
    assert.ok(shown);
    assert.equal(shown.site.function, 'main.put\ufffdVerdict: Healthy\ufffd', 'control and bidi characters replaced');
    assert.equal([...shown.site.file].length, 512, 'at most the CRD maxLength');
    assert.equal(shown.site.line, 0, 'beyond int32: unknown');
    assert.equal(shown.caller?.line, 0, 'negative: unknown');
    assert.deepEqual(shown.lines, [12, 0, 0]);
    assert.equal(shown.inuseBytes, 1_500_000, 'whole bytes');
    assert.equal(shown.growthBytesPerHour, 0);
    assert.equal(shown.allocBytesPerHour, 0);
  });

  test('two callers of one library line are two status entries; each merges across pods with its own caller only', () => {
    const at = (caller: string, pattern: Finding['pattern']): Finding => ({
      ...finding(61, pattern),
      site: { function: 'github.com/patrickmn/go-cache.(*cache).Set', file: 'cache.go', line: 61 },
      caller: { function: caller, file: '/app/main.go', line: caller === 'main.remember' ? 38 : 42 },
    });
    const status = buildCaptureStatus([round('a', [at('main.remember', 'growing'), at('main.session', 'stable')]), round('b', [at('main.session', 'stable')])], new Map());
    assert.deepEqual(
      status.findings?.map((f) => [f.caller?.function, f.pattern, f.podCount]),
      [
        ['main.remember', 'growing', 1],
        ['main.session', 'stable', 2],
      ],
    );
    assert.notEqual(findingKey(at('main.remember', 'growing')), findingKey(at('main.session', 'growing')));
    assert.equal(findingKey(finding(10, 'growing')), 'map|main.put|/app/main.go|10', 'a finding without a caller keeps its key');
  });

  test('findings of the same site merge across pods; the most serious pattern wins', () => {
    const status = buildCaptureStatus([round('a', [finding(10, 'growing')]), round('b', [finding(10, 'stable'), finding(20, 'retained')])], new Map([[findingKey(finding(10, 'growing')), '2026-11-26T03:00:00.000Z']]));
    assert.equal(status.verdict, 'Leaking');
    assert.equal(status.findings?.length, 2);
    const merged = status.findings?.[0];
    assert.equal(merged?.pattern, 'growing');
    assert.equal(merged?.podCount, 2);
    assert.deepEqual(merged?.pods, ['a', 'b']);
    assert.equal(merged?.inuseBytes, 20 * MiB);
    assert.equal(merged?.firstSeen, '2026-11-26T03:00:00.000Z');
    assert.equal(status.mapInuseBytes, 80 * MiB);
    assert.equal(status.mapMemory, '80.0 MiB');
  });

  test("a finding keeps the caller in the main module, its scope and lines, and the most serious pod's own advice", () => {
    const library = { ...finding(10, 'stable'), site: { function: 'github.com/hashicorp/golang-lru/v2/simplelru.(*LRU[...]).Add', file: '/go/pkg/mod/lru.go', line: 80 } };
    const caller = { function: 'main.lookup', file: '/app/main.go', line: 42 };
    const churning = { ...library, pattern: 'churn' as const, caller, scope: 'line' as const, advice: 'Classic map under insert/delete churn: what grows is its overflow buckets' };
    const spread = { ...finding(0, 'growing', 'other'), site: { function: 'main.journal', file: '/app/main.go', line: 0 }, scope: 'function' as const, lines: Array.from({ length: 30 }, (_, i) => 100 + i) };
    const status = buildCaptureStatus([round('a', [{ ...library, caller }]), round('b', [churning, spread])], new Map());
    const lru = status.findings?.find((f) => f.site.line === 80);
    assert.deepEqual(lru?.caller, caller);
    assert.equal(lru?.pattern, 'churn');
    assert.equal(lru?.advice, churning.advice, 'the engine chose a specific advice; merging keeps it');
    const fn = status.findings?.find((f) => f.site.function === 'main.journal');
    assert.equal(fn?.scope, 'function');
    assert.equal(fn?.lines?.length, 20, 'bounded');
    assert.equal(fn?.caller, undefined);
  });

  test('status stays bounded whatever the number of pods', () => {
    const rounds = Array.from({ length: 500 }, (_, i) => round(`pod-${String(i).padStart(3, '0')}`, Array.from({ length: 30 }, (_, j) => finding(j, 'growing'))));
    const status = buildCaptureStatus(rounds, new Map(), { maxFindings: 10, maxTargets: 20, maxPodsPerFinding: 10 });
    assert.equal(status.targets?.length, 20);
    assert.equal(status.targetsOmitted, 480);
    assert.equal(status.findings?.length, 10);
    assert.ok(status.findings?.every((f) => f.pods.length === 10 && f.podCount === 500));
    assert.ok(JSON.stringify(status).length < 16_000, `${JSON.stringify(status).length} bytes`);
  });

  test('verdicts: Leaking, Retaining, Healthy, Unknown; growing non-map memory does not make a map verdict', () => {
    const r = (findings: Finding[]): TargetRound[] => [round('a', findings)];
    assert.equal(verdictOf(buildCaptureStatus(r([finding(1, 'retained')]), new Map()).findings ?? [], r([])), 'Retaining');
    assert.equal(verdictOf(buildCaptureStatus(r([finding(1, 'growing', 'other')]), new Map()).findings ?? [], r([])), 'Healthy');
    assert.equal(buildCaptureStatus([round('a', [], { analysis: undefined, captures: 0 })], new Map()).verdict, 'Unknown');
  });

  test('failing targets are listed first, with their reason', () => {
    const status = buildCaptureStatus([round('ok', []), round('bad', [], { error: { reason: 'Http404', message: 'pprof not found' } })], new Map());
    assert.deepEqual(status.targets?.map((t) => [t.name, t.lastErrorReason]), [['bad', 'Http404'], ['ok', undefined]]);
  });

  test('conditions after a round', () => {
    assert.deepEqual(roundConditions([], 'namespace default, selector "app=x"').map((c) => [c.type, c.status, c.reason]), [['Capturing', 'False', 'NoTargets'], ['Degraded', 'False', 'AllTargetsHealthy']]);
    const failing = roundConditions([round('ok', []), round('bad', [], { error: { reason: 'Timeout', message: 'target too slow' } })], '');
    assert.deepEqual(failing.map((c) => [c.type, c.status, c.reason]), [['Capturing', 'True', 'CapturesSucceeding'], ['Degraded', 'True', 'CaptureTimeout']]);
    assert.match(failing[1]!.message, /1 of 2 targets failing\. bad: target too slow/);
  });

  test('a condition keeps its transition time while its status holds', () => {
    const t0 = new Date('2026-11-26T04:00:00Z');
    const t1 = new Date('2026-11-26T04:05:00Z');
    const first = setCondition(undefined, { type: 'Ready', status: 'True', reason: 'Scheduled', message: 'a' }, 1, t0);
    const same = setCondition(first, { type: 'Ready', status: 'True', reason: 'Scheduled', message: 'b' }, 2, t1);
    assert.equal(same[0]?.lastTransitionTime, t0.toISOString());
    assert.equal(same[0]?.observedGeneration, 2);
    const flipped = setCondition(same, { type: 'Ready', status: 'False', reason: 'Suspended', message: 'c' }, 2, t1);
    assert.equal(flipped[0]?.lastTransitionTime, t1.toISOString());
    assert.equal(flipped.length, 1);
  });
});

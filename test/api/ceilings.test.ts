import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_CEILINGS, effectiveSettings, keptCaptures, type Ceilings } from '../../src/api/ceilings.js';
import type { MapLeakProbeSpec } from '../../src/api/types.js';

const spec = (pprof: Partial<MapLeakProbeSpec['pprof']>, schedule: Partial<MapLeakProbeSpec['schedule']>): MapLeakProbeSpec => ({
  selector: { matchLabels: { app: 'x' } },
  pprof: { port: 6060, pathPrefix: '/debug/pprof', transport: 'APIServerProxy', timeout: '10s', maxProfileBytes: 64 * 1024 * 1024, ...pprof },
  schedule: { interval: '5m', window: 12, jitter: '0s', ...schedule },
  gctrace: { enabled: true },
  thresholds: { minMapBytes: 1, minGrowthBytesPerHour: 1, maxFindings: 10 },
  suspend: false,
});
const chart: Ceilings = { ...DEFAULT_CEILINGS, maxProfileBytes: 64 * 1024 * 1024, maxRequestTimeoutMs: 30_000, minIntervalMs: 30_000, maxWindow: 24 };

describe('admin ceilings over tenant settings', () => {
  test('values within the ceilings are used as they are, and nothing is reported', () => {
    const settings = effectiveSettings(spec({}, {}), chart);
    assert.deepEqual(settings, { maxProfileBytes: 64 * 1024 * 1024, timeoutMs: 10_000, intervalMs: 300_000, window: 12, lowered: [], maxFindings: 10 });
  });

  test('values beyond a ceiling are clamped and each one is reported', () => {
    const settings = effectiveSettings(spec({ maxProfileBytes: 1024 ** 3, timeout: '5m' }, { interval: '5s', window: 100 }), chart);
    assert.equal(settings.maxProfileBytes, 64 * 1024 * 1024);
    assert.equal(settings.timeoutMs, 30_000);
    assert.equal(settings.intervalMs, 30_000);
    assert.equal(settings.window, 24);
    assert.deepEqual(settings.lowered, [
      "spec.pprof.maxProfileBytes 1073741824 lowered to the operator's ceiling 67108864",
      "spec.pprof.timeout 300000ms lowered to the operator's ceiling 30000ms",
      "spec.schedule.window 100 lowered to the operator's ceiling 24",
      "spec.schedule.interval 5000ms raised to the operator's minimum 30000ms",
    ]);
  });

  test('spec.thresholds.maxFindings is lowered to the admin\'s --max-findings, and said', () => {
    const many = { ...spec({}, {}), thresholds: { minMapBytes: 1, minGrowthBytesPerHour: 1, maxFindings: 50 } };
    const settings = effectiveSettings(many, { ...chart, maxFindings: 20 });
    assert.equal(settings.maxFindings, 20);
    assert.deepEqual(settings.lowered, ["spec.thresholds.maxFindings 50 lowered to the operator's ceiling 20"]);
    assert.equal(effectiveSettings(many, DEFAULT_CEILINGS).maxFindings, 50, 'the default ceiling is the CRD\'s own maximum');
  });

  test('large profiles shorten a target’s window to its Redis budget, never below 2', () => {
    const budget = { maxRedisBytesPerTarget: 128 * 1024 * 1024 };
    assert.equal(keptCaptures(24, 1024 * 1024, budget), 24);
    assert.equal(keptCaptures(24, 16 * 1024 * 1024, budget), 8);
    assert.equal(keptCaptures(24, 100 * 1024 * 1024, budget), 2);
  });
});

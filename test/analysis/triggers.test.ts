import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseGcTrace, type GcCycle } from '../../src/analysis/gctrace.js';
import { disarm, growthPerMinute, INITIAL_TRIGGER_STATE, observeCycle, type ObservedCycle, type PodTriggerState, type TriggerDecision, type TriggerThresholds } from '../../src/analysis/triggers.js';
import { DEFAULT_CEILINGS, effectiveSettings } from '../../src/api/ceilings.js';
import { parseMemoryQuantity } from '../../src/api/quantity.js';
import type { MapLeakProbeSpec } from '../../src/api/types.js';

const MiB = 1024 * 1024;
const T0 = Date.parse('2026-12-01T10:00:00Z');

/** A gctrace line as Go 1.26 writes it, read back by the real parser. */
function cycle(n: number, atSeconds: number, liveMB: number, forced = false): GcCycle {
  const line = `gc ${n} @${atSeconds.toFixed(3)}s 3%: 0.021+2.1+0.004 ms clock, 0.085+0.31/1.9/0.62+0.017 ms cpu, ${liveMB * 2}->${liveMB * 2 + 1}->${liveMB} MB, ${liveMB * 2 + 2} MB goal, 0 MB stacks, 0 MB globals, 4 P${forced ? ' (forced)' : ''}`;
  const [parsed] = parseGcTrace(line).cycles;
  assert.ok(parsed, line);
  return parsed;
}

const thresholds = (t: Partial<TriggerThresholds>): TriggerThresholds => ({ growthWindowMs: 60_000, minIntervalMs: 30_000, ...t });

interface Fired {
  atMs: number;
  decision: Extract<TriggerDecision, { fire: true }>;
}

/**
 * Feeds cycles (process clock = seconds after T0, each logged and seen at
 * once) the way the watcher does: a fired decision that got its round
 * disarms its triggers and starts the rate limit.
 */
function run(series: readonly { n: number; at: number; liveMB: number; forced?: boolean }[], t: TriggerThresholds, memoryLimitBytes?: number): { fired: Fired[]; why: string[]; state: PodTriggerState } {
  let state = INITIAL_TRIGGER_STATE;
  let lastTriggeredAtMs: number | undefined;
  const fired: Fired[] = [];
  const why: string[] = [];
  for (const s of series) {
    const atMs = T0 + s.at * 1000;
    const result = observeCycle(state, { cycle: cycle(s.n, s.at, s.liveMB, s.forced), loggedAtMs: atMs }, {
      thresholds: t,
      ...(memoryLimitBytes !== undefined ? { memoryLimitBytes } : {}),
      ...(lastTriggeredAtMs !== undefined ? { lastTriggeredAtMs } : {}),
      nowMs: atMs,
      maxLagMs: 30_000,
    });
    state = result.state;
    if (result.decision.fire) {
      fired.push({ atMs, decision: result.decision });
      state = disarm(state, result.decision.reasons);
      lastTriggeredAtMs = atMs;
    } else {
      why.push(result.decision.why);
    }
  }
  return { fired, why, state };
}

/** A map growing 2 MB per GC cycle, one cycle a second, from 10 MB. */
const ramp = (cycles: number, fromMB = 10, stepMB = 2): { n: number; at: number; liveMB: number }[] =>
  Array.from({ length: cycles }, (_, i) => ({ n: i + 1, at: i + 1, liveMB: fromMB + stepMB * i }));

describe('memory triggers (pure decision)', () => {
  test('liveHeapBytes fires at the first cycle whose live heap reaches it, with the figures of that cycle', () => {
    const { fired } = run(ramp(20), thresholds({ liveHeapBytes: 32 * MiB }));
    assert.equal(fired.length, 1);
    const [first] = fired;
    // 10 + 2·11 = 32 MB at cycle 12: the crossing cycle itself, not a later one.
    assert.equal(first?.decision.cycle, 12);
    assert.equal(first?.decision.reason, 'LiveHeapBytes');
    assert.equal(first?.decision.liveHeapBytes, 32 * MiB);
    assert.equal(first?.decision.thresholdBytes, 32 * MiB);
    assert.equal(first?.decision.loggedAtMs, T0 + 12_000);
  });

  test('a heap held above the threshold fires once; it fires again only after dropping below and crossing anew', () => {
    const above = Array.from({ length: 60 }, (_, i) => ({ n: i + 1, at: i + 1, liveMB: 40 }));
    const held = run(above, thresholds({ liveHeapBytes: 32 * MiB }));
    assert.equal(held.fired.length, 1, 'one capture for one crossing, however long the heap stays up');
    assert.ok(held.why.every((w) => w === 'disarmed'));

    const dropAndCross = [...above.slice(0, 5), { n: 6, at: 40, liveMB: 20 }, { n: 7, at: 41, liveMB: 41 }];
    const again = run(dropAndCross, thresholds({ liveHeapBytes: 32 * MiB }));
    assert.deepEqual(again.fired.map((f) => f.decision.cycle), [1, 7]);
  });

  test('a heap flapping around the threshold fires at most once per minInterval, and a held-back crossing fires once allowed', () => {
    // Up and down every second for two minutes: 60 crossings.
    const flapping = Array.from({ length: 120 }, (_, i) => ({ n: i + 1, at: i + 1, liveMB: i % 2 === 0 ? 40 : 20 }));
    const { fired, why } = run(flapping, thresholds({ liveHeapBytes: 32 * MiB, minIntervalMs: 30_000 }));
    const times = fired.map((f) => (f.atMs - T0) / 1000);
    assert.deepEqual(times, [1, 31, 61, 91], 'the first crossing, then the first crossing each time the limit allows');
    assert.ok(why.includes('rate-limited'));
    for (let i = 1; i < times.length; i++) assert.ok((times[i] as number) - (times[i - 1] as number) >= 30);
  });

  test('memoryLimitFraction: the fraction of the container limit, rounded down; a pod without a limit never fires for it', () => {
    const limit = 64 * MiB;
    const { fired } = run(ramp(30), thresholds({ memoryLimitFraction: 0.75 }), limit);
    assert.equal(fired.length, 1);
    assert.equal(fired[0]?.decision.reason, 'MemoryLimitFraction');
    assert.equal(fired[0]?.decision.thresholdBytes, 48 * MiB);
    assert.equal(fired[0]?.decision.memoryLimitBytes, limit);
    assert.equal(fired[0]?.decision.liveHeapBytes, 48 * MiB, '10 + 2·19 MB at cycle 20');

    assert.equal(run(ramp(30), thresholds({ memoryLimitFraction: 0.75 })).fired.length, 0);
    // The other triggers still apply to it.
    assert.equal(run(ramp(30), thresholds({ memoryLimitFraction: 0.75, liveHeapBytes: 20 * MiB })).fired[0]?.decision.reason, 'LiveHeapBytes');
  });

  test('when several triggers cross at one cycle the most specific is named and all of them are disarmed', () => {
    const series = [{ n: 1, at: 1, liveMB: 10 }, { n: 2, at: 2, liveMB: 50 }, { n: 3, at: 3, liveMB: 60 }];
    const { fired } = run(series, thresholds({ liveHeapBytes: 32 * MiB, memoryLimitFraction: 0.5, minIntervalMs: 10_000 }), 64 * MiB);
    assert.equal(fired.length, 1);
    assert.equal(fired[0]?.decision.reason, 'MemoryLimitFraction');
    assert.deepEqual(fired[0]?.decision.reasons, ['MemoryLimitFraction', 'LiveHeapBytes']);
  });

  test('growth rate: the live heap slope over the window, once three unforced cycles cover half of it', () => {
    // 2 MB per second = 120 MB/min; the window is 20 s, so cycle 11 (10 s of history) is the first that can say.
    const t = thresholds({ growthBytesPerMinute: 100 * MiB, growthWindowMs: 20_000 });
    const { fired } = run(ramp(30), t);
    assert.equal(fired.length, 1);
    assert.equal(fired[0]?.decision.reason, 'GrowthRate');
    assert.equal(fired[0]?.decision.cycle, 11);
    assert.equal(fired[0]?.decision.growthBytesPerMinute, 120 * MiB);
    assert.equal(run(ramp(30), { ...t, growthBytesPerMinute: 130 * MiB }).fired.length, 0, 'slower than the threshold');

    const observed = (n: number, at: number, liveMB: number, forced = false): ObservedCycle => ({ cycle: cycle(n, at, liveMB, forced), loggedAtMs: T0 + at * 1000 });
    assert.equal(growthPerMinute([observed(1, 1, 10), observed(2, 2, 12)], 2_000), undefined, 'two cycles say nothing');
    assert.equal(growthPerMinute([observed(1, 1, 10), observed(2, 2, 12), observed(3, 3, 14)], 20_000), undefined, 'three cycles over 2 s of a 20 s window');
    // A forced cycle right after a big drop elsewhere is left out of the slope.
    assert.equal(growthPerMinute([observed(1, 0, 10), observed(2, 5, 10), observed(3, 6, 100, true), observed(4, 10, 10)], 20_000), 0);
  });

  test('history (cycles logged before the follow could act) feeds the window but never fires', () => {
    const now = T0 + 600_000;
    const old = observeCycle(INITIAL_TRIGGER_STATE, { cycle: cycle(1, 1, 40), loggedAtMs: T0 + 1000 }, { thresholds: thresholds({ liveHeapBytes: 32 * MiB }), nowMs: now, maxLagMs: 30_000 });
    assert.deepEqual(old.decision, { fire: false, why: 'history' });
    // Still armed: the first live cycle above fires.
    const live = observeCycle(old.state, { cycle: cycle(2, 600, 40), loggedAtMs: now }, { thresholds: thresholds({ liveHeapBytes: 32 * MiB }), nowMs: now, maxLagMs: 30_000 });
    assert.equal(live.decision.fire, true);
  });

  test('lines read again after a reconnect are ignored; a restarted process starts over', () => {
    const t = thresholds({ liveHeapBytes: 32 * MiB });
    const ctx = (atMs: number): Parameters<typeof observeCycle>[2] => ({ thresholds: t, nowMs: atMs, maxLagMs: 30_000 });
    let state = observeCycle(INITIAL_TRIGGER_STATE, { cycle: cycle(7, 7, 40), loggedAtMs: T0 + 7000 }, ctx(T0 + 7000)).state;
    state = disarm(state, ['LiveHeapBytes']);
    const replay = observeCycle(state, { cycle: cycle(7, 7, 40), loggedAtMs: T0 + 7000 }, ctx(T0 + 8000));
    assert.deepEqual(replay.decision, { fire: false, why: 'duplicate' });
    assert.equal(replay.state, state);
    // Cycle 1 logged after cycle 7: a new process, armed again.
    const restarted = observeCycle(state, { cycle: cycle(1, 0.5, 40), loggedAtMs: T0 + 9000 }, ctx(T0 + 9000));
    assert.equal(restarted.decision.fire, true);
    assert.equal(restarted.state.recent.length, 1);
  });

  test('a forged line with figures no runtime prints is not read (nothing unbounded reaches the status)', () => {
    const [forged] = parseGcTrace('gc 5 @1.000s 1%: 0+0+0 ms clock, 0+0/0/0+0 ms cpu, 1->1->99999999999999999999 MB, 2 MB goal, 4 P').cycles;
    assert.ok(forged);
    const result = observeCycle(INITIAL_TRIGGER_STATE, { cycle: forged, loggedAtMs: T0 }, { thresholds: thresholds({ liveHeapBytes: 32 * MiB }), nowMs: T0, maxLagMs: 30_000 });
    assert.deepEqual(result.decision, { fire: false, why: 'unreadable' });
    assert.equal(result.state, INITIAL_TRIGGER_STATE);
  });

});

describe('memory quantities of a pod spec', () => {
  test('binary, decimal and exponent forms, rounded up to whole bytes', () => {
    assert.equal(parseMemoryQuantity('512Mi'), 512 * MiB);
    assert.equal(parseMemoryQuantity('1.5Gi'), 1.5 * 1024 * MiB);
    assert.equal(parseMemoryQuantity('1G'), 1e9);
    assert.equal(parseMemoryQuantity('129e6'), 129e6);
    assert.equal(parseMemoryQuantity('134217728'), 134217728);
    assert.equal(parseMemoryQuantity('1500m'), 2);
  });
  test('anything else is not a limit', () => {
    for (const bad of ['', 'lots', '-1Gi', '1Zi', '1 Gi', '1e999', 'x'.repeat(100)]) assert.equal(parseMemoryQuantity(bad), undefined, bad);
  });
});

describe('the admin floor on spec.triggers.minInterval', () => {
  const spec = (minInterval: string): MapLeakProbeSpec => ({
    selector: { matchLabels: { app: 'x' } },
    pprof: { port: 6060, pathPrefix: '/debug/pprof', transport: 'APIServerProxy', timeout: '10s', maxProfileBytes: MiB },
    schedule: { interval: '5m', window: 12, jitter: '0s' },
    gctrace: { enabled: true },
    thresholds: { minMapBytes: 1, minGrowthBytesPerHour: 1, maxFindings: 10 },
    triggers: { liveHeapBytes: 64 * MiB, growthWindow: '2m', minInterval },
    suspend: false,
  });
  test('a shorter minInterval is raised to it and reported; a longer one is kept', () => {
    const raised = effectiveSettings(spec('10s'), { ...DEFAULT_CEILINGS, minTriggerIntervalMs: 60_000 });
    assert.equal(raised.triggerMinIntervalMs, 60_000);
    assert.deepEqual(raised.lowered, ["spec.triggers.minInterval 10000ms raised to the operator's minimum 60000ms"]);
    const kept = effectiveSettings(spec('10m'), { ...DEFAULT_CEILINGS, minTriggerIntervalMs: 60_000 });
    assert.equal(kept.triggerMinIntervalMs, 600_000);
    assert.deepEqual(kept.lowered, []);
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TriggerJobData } from '../../src/queue/names.js';
import { triggeredStatus, triggerEventMessage, type TargetRound } from '../../src/status/build.js';

const MiB = 1024 * 1024;
const trigger = (t: Partial<TriggerJobData>): TriggerJobData => ({
  reason: 'LiveHeapBytes',
  pod: 'web-1',
  liveHeapBytes: 41 * MiB,
  thresholdBytes: 40 * MiB,
  gcCycle: 31,
  observedTime: '2026-12-01T10:00:00.100Z',
  firedTime: '2026-12-01T10:00:00.104Z',
  ...t,
});
const round = (name: string, failed = false): TargetRound => ({
  pod: { name, namespace: 'shop', uid: `uid-${name}` },
  captures: 3,
  ...(failed ? { error: { reason: 'Http503', message: 'nothing listens' } } : { lastCaptureTime: '2026-12-01T10:00:00.118Z' }),
});

describe('the status and Event of a triggered round', () => {
  test('lastTriggeredTime is when the trigger fired; captureTime is the crossing pod’s capture, absent when it failed', () => {
    assert.deepEqual(triggeredStatus(trigger({}), [round('web-0'), round('web-1')]), {
      lastTriggeredTime: '2026-12-01T10:00:00.104Z',
      lastTrigger: { reason: 'LiveHeapBytes', pod: 'web-1', liveHeapBytes: 41 * MiB, thresholdBytes: 40 * MiB, gcCycle: 31, observedTime: '2026-12-01T10:00:00.100Z', captureTime: '2026-12-01T10:00:00.118Z' },
    });
    assert.equal(triggeredStatus(trigger({}), [round('web-0'), round('web-1', true)]).lastTrigger?.captureTime, undefined);
  });

  test('the Event names the trigger, its figures and what the round captured, for each reason', () => {
    const rounds = [round('web-0'), round('web-1', true)];
    assert.equal(triggerEventMessage(trigger({}), rounds), 'pod web-1: live heap 41.0 MiB at GC cycle 31 reached spec.triggers.liveHeapBytes 40.0 MiB; triggered round captured 1 of 2 targets');
    assert.equal(
      triggerEventMessage(trigger({ reason: 'MemoryLimitFraction', thresholdBytes: 32 * MiB, memoryLimitBytes: 128 * MiB }), rounds),
      "pod web-1: live heap 41.0 MiB at GC cycle 31 reached 32.0 MiB, spec.triggers.memoryLimitFraction of the container's memory limit 128.0 MiB; triggered round captured 1 of 2 targets",
    );
    assert.equal(
      triggerEventMessage(trigger({ reason: 'GrowthRate', thresholdBytes: 100 * MiB, growthBytesPerMinute: 150 * MiB }), rounds),
      'pod web-1: live heap 41.0 MiB at GC cycle 31 grew 150.0 MiB/min (spec.triggers.growthBytesPerMinute 100.0 MiB/min); triggered round captured 1 of 2 targets',
    );
  });
});

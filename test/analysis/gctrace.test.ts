import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { linearSlope, parseGcTrace, summarizeGcTrace } from '../../src/analysis/gctrace.js';

const GO119 = 'gc 24 @11.480s 0%: 0.026+11+0.005 ms clock, 0.053+0/1.2/12+0.011 ms cpu, 112->112->65 MB, 131 MB goal, 0 MB stacks, 0 MB globals, 2 P';
const GO126_LEAKCHECK = 'gc 25 @12.179s 3% (checking for goroutine leaks): 0.029+14+0.005 ms clock, 0.058+0.41/3.9/15+0.011 ms cpu, 111->113->68 MB, 130 MB goal, 0 MB stacks, 0 MB globals, 2 P';
const FORCED = 'gc 26 @12.977s 3%: 0.030+43+0.004 ms clock, 0.061+0.041/20/27+0.008 ms cpu, 117->122->20 MB, 137 MB goal, 0 MB stacks, 0 MB globals, 2 P (forced)';
const GO115 = 'gc 27 @13.500s 4%: 0.030+43+0.004 ms clock, 0.061+0.041/20/27+0.008 ms cpu, 117->122->70 MB, 137 MB goal, 2 P';

describe('gctrace', () => {
  test('reads Go 1.15–1.27 line shapes, wherever they sit in a log line', () => {
    const text = [
      GO119,
      `2026-11-26T04:00:00.000000000Z stderr F ${GO126_LEAKCHECK}`,
      FORCED,
      `2026-11-26T04:00:01Z ${GO115}`,
      'listening on 127.0.0.1:6060',
      'gc 28 @garbage line',
      '',
    ].join('\n');
    const trace = parseGcTrace(text);
    assert.deepEqual(trace.cycles.map((c) => c.cycle), [24, 25, 26, 27]);
    assert.equal(trace.skippedLines, 1);
    assert.equal(trace.cycles[0]!.liveHeapBytes, 65 * 1024 * 1024);
    assert.equal(trace.cycles[1]!.cpuPercent, 3);
    assert.ok(trace.cycles[2]!.forced);
    assert.ok(!trace.cycles[0]!.forced);
  });

  test('forced cycles are counted but left out of the live-heap trend', () => {
    const summary = summarizeGcTrace(parseGcTrace([GO119, GO126_LEAKCHECK, FORCED, GO115].join('\n')));
    assert.equal(summary.cycles, 4);
    assert.equal(summary.forcedCycles, 1);
    assert.equal(summary.liveHeapBytes, 70 * 1024 * 1024);
    // 65 → 68 → 70 MiB over ~2 s, rising; the forced 20 MiB dip is ignored.
    assert.ok(summary.liveHeapGrowthBytesPerHour > 0);
    assert.equal(summary.gcCpuPercent, 4);
  });

  test('a restarted process (cycle numbers going back) starts a new trend', () => {
    const lines = [
      'gc 40 @100.0s 5%: 0+0+0 ms clock, 0+0/0/0+0 ms cpu, 900->900->800 MB, 1000 MB goal, 2 P',
      'gc 1 @0.5s 0%: 0+0+0 ms clock, 0+0/0/0+0 ms cpu, 4->4->2 MB, 5 MB goal, 2 P',
      'gc 2 @1.5s 0%: 0+0+0 ms clock, 0+0/0/0+0 ms cpu, 4->4->3 MB, 5 MB goal, 2 P',
    ];
    const summary = summarizeGcTrace(parseGcTrace(lines.join('\n')));
    assert.equal(summary.liveHeapBytes, 3 * 1024 * 1024);
    assert.equal(summary.liveHeapGrowthBytesPerHour, 3600 * 1024 * 1024);
  });

  test('no gctrace at all', () => {
    const summary = summarizeGcTrace(parseGcTrace('hello\nworld\n'));
    assert.deepEqual(summary, { cycles: 0, forcedCycles: 0, skippedLines: 0, liveHeapBytes: 0, liveHeapGrowthBytesPerHour: 0, gcCpuPercent: 0 });
  });

  test('least-squares slope', () => {
    assert.equal(linearSlope([0, 1, 2], [1, 3, 5]), 2);
    assert.equal(linearSlope([5], [1]), 0);
    assert.equal(linearSlope([1, 1], [1, 9]), 0);
  });
});

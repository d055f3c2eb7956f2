import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { parseGcTrace } from '../../src/analysis/gctrace.js';
import { startOperator, type RunningOperator } from '../../src/cli/operator.js';
import { CAPTURE_QUEUE, TRIGGERED_JOB, type CaptureJobData } from '../../src/queue/names.js';
import { restartApiserver, runPod, stopCluster, type Cluster, type RunningPod } from '../cluster/cluster.js';
import { podDirectory } from '../cluster/run-pod.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { startClusterWithCrd, TestProbes } from '../support/probes.js';
import { testOperatorConfig } from '../support/operator-config.js';
import { bearer, testReaderToken } from '../support/tokens.js';
import { waitFor } from '../support/wait.js';

process.env.LOG_LEVEL ??= 'warn';
const CLUSTER = 'triggers';
const NS = 'default';
const MiB = 1024 * 1024;

/** One gctrace line of a pod's CRI log file: when it was written and what the cycle marked. */
interface LoggedCycle {
  atMs: number;
  stamp: string;
  cycle: number;
  liveHeapBytes: number;
}

/** The gctrace lines the pod has written so far, from the log file behind the pod log API. */
function loggedCycles(pod: RunningPod): LoggedCycle[] {
  const cycles: LoggedCycle[] = [];
  for (const line of readFileSync(pod.logFile, 'utf8').split('\n')) {
    const stamp = line.split(' ', 1)[0] ?? '';
    const [cycle] = parseGcTrace(line).cycles;
    if (cycle) cycles.push({ atMs: Date.parse(stamp), stamp, cycle: cycle.cycle, liveHeapBytes: cycle.liveHeapBytes });
  }
  return cycles;
}

/** A gctrace line as Go 1.26 prints it, with the given live heap (MB). */
const gcLine = (cycle: number, liveMB: number): string => `gc ${cycle} @${cycle}.000s 1%: 0.01+1.0+0.01 ms clock, 0.04+0.1/0.5/0+0.04 ms cpu, ${liveMB}->${liveMB}->${liveMB} MB, ${liveMB * 2} MB goal, 0 MB stacks, 0 MB globals, 4 P`;

describe('memory triggers against a real API server, Redis and Go pods whose heap moves on command', () => {
  let cluster: Cluster;
  let kc: KubeConfig;
  let redis: RedisServer;
  let queueRedis: Redis;
  let queue: Queue<CaptureJobData>;
  let operator: RunningOperator;
  let secondWorker: RunningOperator;
  let probes: TestProbes;
  let token: string;
  const pods = new Map<string, RunningPod>();

  const metric = async (op: RunningOperator, name: string): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${op.port}/metrics`, { headers: bearer(token) })).text();
    return text
      .split('\n')
      .filter((l) => l.startsWith(name))
      .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
  };
  const follows = async (): Promise<number> => (await metric(operator, 'mapleak_trigger_follows')) + (await metric(secondWorker, 'mapleak_trigger_follows'));
  const startRamp = async (pod: RunningPod): Promise<void> => {
    const answer = await fetch(`http://${pod.podIp}:6060/ramp/start`, { method: 'POST' });
    assert.equal(answer.status, 200);
  };
  const events = async (probe: string, reason: string) =>
    (await kc.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=${probe}` })).items.filter((e) => e.reason === reason);
  const triggeredJobs = async (probe: string) =>
    (await queue.getJobs(['completed', 'active', 'waiting', 'failed', 'delayed'])).filter((j) => j.name === TRIGGERED_JOB && j.data.name === probe).sort((a, b) => a.timestamp - b.timestamp);
  /** Waits until a round has listed the probe's pods, and the watcher follows at least `n` pod logs in all. */
  const watched = async (probe: string, n: number): Promise<void> => {
    await waitFor(`${probe}: a round listed its pods`, async () => ((await probes.get(probe))?.status?.targets?.[0]?.captures ?? 0) >= 1, 60_000);
    await waitFor(`${n} pod logs followed`, async () => (await follows()) >= n, 30_000, 200);
  };

  before(async () => {
    ({ cluster, kc } = await startClusterWithCrd(CLUSTER));
    probes = new TestProbes(kc, NS);
    redis = await startRedis();
    queueRedis = new Redis(redis.url, { maxRetriesPerRequest: null });
    queue = new Queue(CAPTURE_QUEUE, { connection: queueRedis });
    const ramp = ['-base-mb', '8', '-grow-mb-per-sec', '4', '-until-mb', '72', '-gc-every', '2s'];
    const started = await Promise.all([
      // Held around 24 MiB, plus a second map filled to 16 MiB in about a second and dropped, over and over.
      runPod(cluster, { name: 'flapper', labels: { app: 'flapper' }, path: 'test/targets/ramp', args: ['-start-now', '-base-mb', '24', '-flap-mb', '16', '-grow-mb-per-sec', '16', '-gc-every', '500ms'] }),
      runPod(cluster, { name: 'ramp-heap', labels: { app: 'ramp-heap', group: 'limits' }, path: 'test/targets/ramp', args: ramp }),
      runPod(cluster, { name: 'ramp-limit', labels: { app: 'ramp-limit', group: 'limits' }, path: 'test/targets/ramp', args: ramp, resources: { limits: { memory: '128Mi' } } }),
      // A hostile log, once the test creates the file "go" in its directory: a 1 MiB line ending in a forged
      // gctrace line of 900 MB, a real-looking line below the threshold, 6 MiB of other lines (past the 4 MiB a
      // follow reads per connection), then, a second later, a line that crosses it.
      runPod(cluster, {
        name: 'noisy',
        labels: { app: 'noisy' },
        path: '/bin/sh',
        args: ['-c', [
          'while [ ! -e go ]; do sleep 0.1; done',
          `head -c 1048576 /dev/zero | tr '\\0' x; echo ' ${gcLine(9, 900)}'`,
          `echo '${gcLine(1, 10)}'`,
          `yes "$(head -c 1000 /dev/zero | tr '\\0' y)" | head -n 6300`,
          // In a later second: the follow skips the rest of a second that held more than its cap.
          'sleep 1.5',
          `echo '${gcLine(2, 50)}'`,
          'exec sleep 600',
        ].join('; ')],
        waitForPort: null,
      }),
    ]);
    for (const pod of started) pods.set(pod.name, pod);
    token = await testReaderToken(kc);
    // Two workers: a crossing both see, or two crossings within minInterval, must still give one round.
    [operator, secondWorker] = await Promise.all([
      startOperator(testOperatorConfig(cluster, redis.url, { leaderElect: false, identity: 'triggers-a' })),
      startOperator(testOperatorConfig(cluster, redis.url, { role: 'worker', identity: 'triggers-b' })),
    ]);
  });

  after(async () => {
    await Promise.all([operator?.stop(), secondWorker?.stop()]);
    await queue?.close();
    queueRedis?.disconnect();
    await redis?.stop();
    await stopCluster(CLUSTER);
  });

  test('invalid triggers are rejected by the API server with a message that names the rule', async () => {
    const reject = async (name: string, spec: Record<string, unknown>, message: RegExp): Promise<void> => {
      await assert.rejects(probes.create(name, { selector: { matchLabels: { app: 'x' } }, ...spec }), (err: unknown) => {
        assert.match(String((err as { body?: unknown }).body), message);
        return true;
      });
    };
    await reject('no-threshold', { triggers: { minInterval: '1m' } }, /triggers needs at least one of liveHeapBytes, memoryLimitFraction or growthBytesPerMinute/);
    await reject('too-often', { triggers: { liveHeapBytes: 64 * MiB, minInterval: '1s' } }, /triggers.minInterval must be between 10s and 24h/);
    await reject('short-window', { triggers: { growthBytesPerMinute: MiB, growthWindow: '1s' } }, /triggers.growthWindow must be between 10s and 1h/);
    await reject('over-limit', { triggers: { memoryLimitFraction: 1.5 } }, /memoryLimitFraction: Invalid value: 1.5: spec.triggers.memoryLimitFraction in body should be less than or equal to 1/);
    await reject('zero-fraction', { triggers: { memoryLimitFraction: 0 } }, /spec.triggers.memoryLimitFraction in body should be greater than 0/);
    await reject('tiny-heap', { triggers: { liveHeapBytes: 1000 } }, /spec.triggers.liveHeapBytes in body should be greater than or equal to 1048576/);
    await reject('no-gctrace', { gctrace: { enabled: false }, triggers: { liveHeapBytes: 64 * MiB } }, /triggers need gctrace.enabled/);
    // A valid one gets the defaults.
    await probes.create('valid-triggers', { selector: { matchLabels: { app: 'nobody' } }, suspend: true, triggers: { liveHeapBytes: 64 * MiB } });
    assert.deepEqual((await probes.get('valid-triggers'))?.spec.triggers, { liveHeapBytes: 64 * MiB, growthWindow: '2m', minInterval: '5m' });
    await probes.delete('valid-triggers');
  });

  test('a heap flapping around liveHeapBytes, followed by two workers: at most one triggered round per minInterval', async () => {
    const minIntervalMs = 10_000;
    await probes.create('flapper', { selector: { matchLabels: { app: 'flapper' } }, triggers: { liveHeapBytes: 32 * MiB, minInterval: '10s' } });
    await watched('flapper', 1);
    // Both workers run the probe's rounds (5 s apart) and so both follow the pod.
    await waitFor('both workers saw crossings', async () => (await metric(operator, 'mapleak_triggers_total')) > 0 && (await metric(secondWorker, 'mapleak_triggers_total')) > 0, 60_000, 500);
    const first = (await triggeredJobs('flapper'))[0];
    assert.ok(first, 'the first crossing queued a round');
    const observeMs = 32_000;
    await waitFor('the observation span', async () => Date.now() - first.timestamp >= observeMs, observeMs + 5_000, 500);

    const jobs = (await triggeredJobs('flapper')).filter((j) => j.timestamp <= first.timestamp + observeMs);
    const gaps = jobs.slice(1).map((j, i) => j.timestamp - (jobs[i]?.timestamp ?? 0));
    const crossings = loggedCycles(pods.get('flapper')!).filter((c, i, all) => c.liveHeapBytes >= 32 * MiB && (all[i - 1]?.liveHeapBytes ?? 0) < 32 * MiB && c.atMs >= first.timestamp && c.atMs <= first.timestamp + observeMs);
    console.log(`flapper: ${crossings.length} upward crossings of 32 MiB in ${observeMs / 1000}s, ${jobs.length} triggered rounds, gaps ${gaps.map((g) => `${(g / 1000).toFixed(1)}s`).join(', ')}`);
    assert.ok(crossings.length >= 10, `the heap really flaps (${crossings.length} crossings)`);
    assert.ok(jobs.length >= 2, 'a crossing held back by the limit fires once it allows');
    assert.ok(jobs.length <= Math.floor(observeMs / minIntervalMs) + 1, `${jobs.length} rounds in ${observeMs} ms`);
    for (const gap of gaps) assert.ok(gap >= minIntervalMs - 50, `rounds ${gap} ms apart`);
    await waitFor('the triggered rounds finished', async () => (await triggeredJobs('flapper')).every((j) => j.finishedOn), 30_000);
    const all = await triggeredJobs('flapper');
    assert.ok(all.every((j) => j.returnvalue === 'captured'));
    // Both workers acted on crossings (queued, or found the probe's round already queued), yet the rounds are those above.
    const attempts = (await metric(operator, 'mapleak_triggers_total')) + (await metric(secondWorker, 'mapleak_triggers_total'));
    console.log(`flapper: ${attempts} trigger attempts by two workers gave ${all.length} rounds`);
    assert.ok(attempts > all.length, `${attempts} attempts, ${all.length} rounds`);
    await probes.delete('flapper');
  });

  test('a map growing past liveHeapBytes gets a triggered capture within one gctrace interval of the crossing line', async () => {
    const threshold = 40 * MiB;
    await probes.create('ramp-heap', { selector: { matchLabels: { app: 'ramp-heap' } }, schedule: { interval: '5m' }, triggers: { liveHeapBytes: threshold, minInterval: '10m' } });
    // The same pod under a growth-rate trigger: the map grows 4 MiB of values a second (240 MiB/min) once started.
    await probes.create('ramp-growth', { selector: { matchLabels: { app: 'ramp-heap' } }, schedule: { interval: '5m' }, triggers: { growthBytesPerMinute: 120 * MiB, growthWindow: '10s', minInterval: '10m' } });
    await watched('ramp-heap', 1);
    await watched('ramp-growth', 2);
    const pod = pods.get('ramp-heap')!;
    await startRamp(pod);
    const probe = await waitFor('ramp-heap triggered capture', async () => {
      const p = await probes.get('ramp-heap');
      return p?.status?.lastTrigger?.captureTime ? p : undefined;
    }, 90_000, 200);
    const trigger = probe.status!.lastTrigger!;
    // The gctrace line after the crossing one marks the end of that interval.
    const cycles = await waitFor('the gctrace line after the crossing', async () => {
      const logged = loggedCycles(pod);
      const index = logged.findIndex((c) => c.liveHeapBytes >= threshold);
      return index >= 0 && logged[index + 1] ? logged : undefined;
    }, 30_000, 200);
    const crossingIndex = cycles.findIndex((c) => c.liveHeapBytes >= threshold);
    const crossing = cycles[crossingIndex];
    const nextLine = cycles[crossingIndex + 1];
    assert.ok(crossing && nextLine, 'the log holds the crossing line and the one after it');
    // The trigger names the crossing line itself, not a later one.
    assert.equal(trigger.gcCycle, crossing.cycle);
    assert.equal(trigger.observedTime, new Date(crossing.atMs).toISOString());
    assert.equal(trigger.reason, 'LiveHeapBytes');
    assert.equal(trigger.pod, 'ramp-heap');
    assert.equal(trigger.liveHeapBytes, crossing.liveHeapBytes);
    assert.equal(trigger.thresholdBytes, threshold);
    const delayMs = Date.parse(trigger.captureTime!) - crossing.atMs;
    const intervalMs = nextLine.atMs - crossing.atMs;
    console.log(`ramp-heap: crossing (gc ${crossing.cycle}, ${crossing.liveHeapBytes / MiB} MiB) → triggered capture in ${delayMs} ms; gctrace interval there ${intervalMs} ms`);
    assert.ok(delayMs >= 0 && delayMs < intervalMs, `captured ${delayMs} ms after the crossing, within one gctrace interval (${intervalMs} ms)`);
    assert.ok(probe.status?.lastTriggeredTime, 'lastTriggeredTime is set');
    // One crossing, one triggered round: the heap stays above the threshold.
    assert.equal((await triggeredJobs('ramp-heap')).length, 1);
    const [event] = await events('ramp-heap', 'MemoryTriggered');
    assert.match(event?.message ?? '', new RegExp(`^pod ramp-heap: live heap ${crossing.liveHeapBytes / MiB}\\.0 MiB at GC cycle ${crossing.cycle} reached spec.triggers.liveHeapBytes 40\\.0 MiB; triggered round captured 1 of 1 targets$`));

    const growth = (await waitFor('ramp-growth triggered capture', async () => {
      const p = await probes.get('ramp-growth');
      return p?.status?.lastTrigger?.captureTime ? p : undefined;
    }, 30_000, 200)).status!.lastTrigger!;
    assert.equal(growth.reason, 'GrowthRate');
    assert.equal(growth.thresholdBytes, 120 * MiB);
    const rate = growth.growthBytesPerMinute ?? 0;
    // Fired as the slope over the window (flat before the start) rose through 120 MiB/min, towards the
    // 240 MiB/min of values the map gains (plus its own tables), read from whole-MB gctrace figures.
    assert.ok(rate >= 120 * MiB && rate <= 400 * MiB, `growth ${(rate / MiB).toFixed(0)} MiB/min`);
    const start = cycles.findIndex((c) => c.cycle === growth.gcCycle);
    console.log(`ramp-growth: ${(rate / MiB).toFixed(0)} MiB/min at gc ${growth.gcCycle} (live ${(cycles[start]?.liveHeapBytes ?? 0) / MiB} MiB) → triggered capture in ${Date.parse(growth.captureTime!) - Date.parse(growth.observedTime)} ms`);
    await probes.delete('ramp-growth');
  });

  test('memoryLimitFraction of the container limit in the pod spec, after the API server went away and came back; a pod without a limit is said once', async () => {
    await probes.create('limits', { selector: { matchLabels: { group: 'limits' } }, schedule: { interval: '5s' }, triggers: { memoryLimitFraction: 0.25, minInterval: '10m' } });
    await watched('limits', 2);
    // Every follow breaks; the watcher must back off and resume on its own.
    await restartApiserver(cluster, 3000);
    const pod = pods.get('ramp-limit')!;
    await startRamp(pod);
    const probe = await waitFor('limits triggered capture', async () => {
      const p = await probes.get('limits');
      return p?.status?.lastTrigger?.captureTime ? p : undefined;
    }, 90_000, 200);
    const trigger = probe.status!.lastTrigger!;
    assert.equal(trigger.reason, 'MemoryLimitFraction');
    assert.equal(trigger.pod, 'ramp-limit');
    assert.equal(trigger.memoryLimitBytes, 128 * MiB);
    assert.equal(trigger.thresholdBytes, 32 * MiB);
    const crossing = loggedCycles(pod).find((c) => c.liveHeapBytes >= 32 * MiB);
    assert.equal(trigger.gcCycle, crossing?.cycle);
    console.log(`ramp-limit: crossing → triggered capture in ${Date.parse(trigger.captureTime!) - (crossing?.atMs ?? 0)} ms (after an API server restart)`);
    // ramp-heap grows too (from the test before) but has no limit: skipped for this trigger, said once over many rounds and two workers.
    await waitFor('several rounds', async () => ((await probes.get('limits'))?.status?.targets?.find((t) => t.name === 'ramp-heap')?.captures ?? 0) >= 3, 60_000);
    const skipped = await events('limits', 'TriggerSkipped');
    assert.equal(skipped.length, 1);
    assert.equal(skipped[0]?.message, 'pod ramp-heap: container app has no memory limit, so spec.triggers.memoryLimitFraction does not apply to it (the other triggers do)');
    assert.equal((await triggeredJobs('limits')).length, 1, 'ramp-heap, over 40 MiB, never triggered this probe');
  });

  test('a hostile log: an over-long line and a flood of lines neither fire nor blind the follow', async () => {
    await probes.create('noisy', { selector: { matchLabels: { app: 'noisy' } }, schedule: { interval: '5m' }, triggers: { liveHeapBytes: 32 * MiB, minInterval: '10m' } });
    await waitFor('noisy: a round listed its pod', async () => ((await probes.get('noisy'))?.status?.targets?.length ?? 0) >= 1, 60_000);
    writeFileSync(join(podDirectory(cluster, NS, 'noisy'), 'go'), '');
    const probe = await waitFor('noisy triggered', async () => {
      const p = await probes.get('noisy');
      return p?.status?.lastTrigger ? p : undefined;
    }, 60_000, 200);
    // The crossing is the line after the flood, not the 900 MB one hidden at the end of the 1 MiB line.
    assert.equal(probe.status?.lastTrigger?.gcCycle, 2);
    assert.equal(probe.status?.lastTrigger?.liveHeapBytes, 50 * MiB);
    // The pod serves no pprof: the round failed for it, so there is no capture time, and the Event says so.
    assert.equal(probe.status?.lastTrigger?.captureTime, undefined);
    const [event] = await waitFor('MemoryTriggered Event', async () => {
      const found = await events('noisy', 'MemoryTriggered');
      return found.length > 0 ? found : undefined;
    }, 10_000, 200);
    assert.equal(event?.message, 'pod noisy: live heap 50.0 MiB at GC cycle 2 reached spec.triggers.liveHeapBytes 32.0 MiB; triggered round captured 0 of 1 targets');
  });
});

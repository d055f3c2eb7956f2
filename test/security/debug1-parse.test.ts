/**
 * Review 4, finding G, through the real operator: four pods of
 * test/targets/debug1flood, one namespace each (one build in one namespace
 * is one binary, whose debug=1 is read once for all its pods), each serve a 30 MiB debug=1 of one-PC records
 * (~1.37 M records, ~370 MB parsed as they were), within the chart's
 * --max-debug1-bytes 32Mi and --max-inflight-bytes 192Mi. Each parse is
 * refused TooLarge once it holds more than its text (the capture keeps its
 * proto, debug=1 is left out with a warning), so the operator's peak RSS
 * stays within the in-flight budget and a margin (it reached 2,313 MiB),
 * while team-b's honest probe keeps capturing.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { KubeConfig } from '@kubernetes/client-node';
import type { MapLeakProbe } from '../../src/api/types.js';
import { runPod, stopCluster, type Cluster } from '../cluster/cluster.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { spawnOperator, type OperatorProcess } from '../support/operator-process.js';
import { startClusterWithCrd, TestProbes } from '../support/probes.js';
import { testReaderToken } from '../support/tokens.js';
import { waitFor } from '../support/wait.js';

const CLUSTER = 'd1parse';
const MiB = 1024 * 1024;
const INFLIGHT = 192 * MiB;
const FLOODS = 4;
/**
 * Past the budget: the decode thread's copy of the one answer it parses at
 * a time and that parse (each at most the 32 MiB ceiling), and V8's slack
 * on both heaps (four refused 30 MiB parses through the gate alone: +69 MiB).
 * Measured +277-319 MiB; +905 MiB before the parse was bounded.
 */
const MARGIN = 256 * MiB;

function procStatus(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) * 1024;
}

describe("debug=1: the operator's memory is bounded by what an answer parses into", () => {
  let cluster: Cluster;
  let kc: KubeConfig;
  let redis: RedisServer;
  let operator: OperatorProcess;
  let floodIps: string[] = [];
  const diagnostics = (): string => operator?.output().slice(-6000) ?? '';

  before(async () => {
    ({ cluster, kc } = await startClusterWithCrd(CLUSTER));
    const [token, started, floods] = await Promise.all([
      testReaderToken(kc),
      startRedis(),
      Promise.all(Array.from({ length: FLOODS }, (_, i) => runPod(cluster, { name: `flood-${i}`, namespace: `flood-${i}`, labels: { app: 'flood' }, path: 'test/targets/debug1flood', args: ['-mib', '30'] }))),
      runPod(cluster, { name: 'honest', namespace: 'team-b', labels: { app: 'honest' }, path: 'test/targets/leaky' }),
    ]);
    redis = started;
    floodIps = floods.map((pod) => pod.podIp);
    operator = await spawnOperator({
      kubeconfig: cluster.kubeconfigPath,
      redisUrl: redis.url,
      identity: 'd1parse',
      leaseNamespace: 'default',
      httpToken: token,
      // The chart's ceilings.
      args: ['--no-leader-elect', '--max-profile-bytes', '64Mi', '--max-debug1-bytes', '32Mi', '--max-inflight-bytes', `${INFLIGHT / MiB}Mi`, '--max-request-timeout', '30s'],
    });
  });

  after(async () => {
    await operator?.kill('SIGTERM');
    await redis?.stop();
    await stopCluster(CLUSTER);
  });

  test('four pods serving 30 MiB of one-PC records: their captures count without debug=1, the peak RSS stays within the budget, the honest probe captures', async () => {
    const honest = new TestProbes(kc, 'team-b');
    const hostile = Array.from({ length: FLOODS }, (_, i) => new TestProbes(kc, `flood-${i}`));
    const rssBefore = procStatus(operator.pid, 'VmRSS');
    writeFileSync(`/proc/${operator.pid}/clear_refs`, '5'); // VmHWM from here
    await Promise.all([
      honest.create('honest', { selector: { matchLabels: { app: 'honest' } }, schedule: { interval: '5s' } }),
      ...hostile.map((probes) => probes.create('flood', { selector: { matchLabels: { app: 'flood' } }, gctrace: { enabled: false }, schedule: { interval: '30s' }, pprof: { timeout: '30s' } })),
    ]);
    const floodTargets = async (): Promise<NonNullable<NonNullable<MapLeakProbe['status']>['targets']>> =>
      (await Promise.all(hostile.map(async (probes) => (await probes.get('flood'))?.status?.targets ?? []))).flat();
    await waitFor(
      'every flood pod captured once',
      async () => {
        const targets = await floodTargets();
        return targets.length === FLOODS && targets.every((t) => (t.captures ?? 0) >= 1);
      },
      90_000,
    ).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
    const floods = await floodTargets();
    const peak = procStatus(operator.pid, 'VmHWM') - rssBefore;
    console.log(`operator peak RSS +${(peak / MiB).toFixed(0)} MiB over ${(rssBefore / MiB).toFixed(0)} MiB (in-flight budget ${INFLIGHT / MiB} MiB)`);
    // Each was read whole (the 30 MiB are within --max-debug1-bytes): the parse is what refused it...
    for (const ip of floodIps) {
      const stats = (await (await fetch(`http://${ip}:6060/stats`)).json()) as { debug1Reads: number; debug1Whole: number };
      assert.ok(stats.debug1Whole >= 1, `${ip}: ${JSON.stringify(stats)}`);
    }
    // ...as a warning, never the target's failure.
    for (const target of floods) assert.equal(target.lastErrorReason, undefined, `${target.name}: ${target.lastError}`);
    assert.ok(peak <= INFLIGHT + MARGIN, `operator peak RSS grew ${(peak / MiB).toFixed(0)} MiB\n${diagnostics()}`);
    await waitFor('the honest probe capturing', async () => ((await honest.get('honest'))?.status?.targets?.[0]?.captures ?? 0) >= 2, 60_000).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
    assert.equal((await honest.get('honest'))?.status?.targets?.[0]?.lastErrorReason, undefined);
  });
});

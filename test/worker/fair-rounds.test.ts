/**
 * Worker slots shared between namespaces, through the real operator
 * process (controller and worker, `--concurrency 2`, so each namespace's
 * share is its default of 1): team-a has three probes whose targets
 * (test/targets/gated, gate closed) hold their heap answer, so each of
 * their rounds would hold a slot for as long as its capture deadline; team-b
 * has one probe of a target that answers at once. Real Redis, real
 * kube-apiserver, real Go programs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { KubeConfig } from '@kubernetes/client-node';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { CAPTURE_QUEUE, type CaptureJobData } from '../../src/queue/names.js';
import { runPod, stopCluster, type Cluster } from '../cluster/cluster.js';
import type { RunningPod } from '../cluster/run-pod.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { spawnOperator, type OperatorProcess } from '../support/operator-process.js';
import { condition, startClusterWithCrd, TestProbes } from '../support/probes.js';
import { testReaderToken } from '../support/tokens.js';
import { waitFor } from '../support/wait.js';

const CLUSTER = 'fairshare';
const INTERVAL_MS = 5000;
const HELD = ['held-1', 'held-2', 'held-3'];

describe("worker slots: one namespace's slow rounds never take every slot", () => {
  let cluster: Cluster;
  let kc: KubeConfig;
  let redis: RedisServer;
  let operator: OperatorProcess;
  let token: string;
  let client: Redis;
  let queue: Queue<CaptureJobData>;
  const pods = new Map<string, RunningPod>();
  const diagnostics = (): string => operator?.output().slice(-6000) ?? '';
  const gate = async (pod: string, action: string): Promise<string> =>
    (await (await fetch(`http://${pods.get(pod)?.podIp}:6060/gate/${action}`, { method: action === 'waiting' ? 'GET' : 'POST' })).text()).trim();
  const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${operator.port}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
  const deferredOf = (text: string, namespace: string): number => Number(new RegExp(`^mapleak_rounds_deferred_total\\{namespace="${namespace}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);

  before(async () => {
    ({ cluster, kc } = await startClusterWithCrd(CLUSTER));
    const [reader, started, ...running] = await Promise.all([
      testReaderToken(kc),
      startRedis(),
      ...HELD.map((name) => runPod(cluster, { name, namespace: 'team-a', labels: { app: name }, path: 'test/targets/gated', args: ['-closed'] })),
      runPod(cluster, { name: 'quiet', namespace: 'team-b', labels: { app: 'quiet' }, path: 'test/targets/gated' }),
    ]);
    token = reader as string;
    redis = started as RedisServer;
    for (const pod of running as RunningPod[]) pods.set(pod.name, pod);
    client = new Redis(redis.url, { maxRetriesPerRequest: null });
    queue = new Queue<CaptureJobData>(CAPTURE_QUEUE, { connection: client });
    operator = await spawnOperator({
      kubeconfig: cluster.kubeconfigPath,
      redisUrl: redis.url,
      identity: 'fairshare',
      leaseNamespace: 'default',
      httpToken: token,
      // Two slots, the default share of 1 per namespace; held answers may wait a minute.
      args: ['--no-leader-elect', '--concurrency', '2', '--max-request-timeout', '60s'],
    });
  });

  after(async () => {
    await operator?.kill('SIGTERM');
    await queue?.close();
    client?.disconnect();
    await redis?.stop();
    await stopCluster(CLUSTER);
  });

  test("team-b's round runs on schedule while team-a's are deferred; team-a's run once their slot frees, and RoundsDeferred clears", async () => {
    const teamA = new TestProbes(kc, 'team-a');
    const teamB = new TestProbes(kc, 'team-b');
    await Promise.all(HELD.map((name) => teamA.create(name, { selector: { matchLabels: { app: name } }, pprof: { timeout: '60s' } })));
    await waitFor('a round of team-a held at a gated pod', async () => (await Promise.all(HELD.map((p) => gate(p, 'waiting')))).some((n) => Number(n) > 0), 60_000, 250).catch((err: Error) =>
      assert.fail(`${err.message}\n${diagnostics()}`),
    );
    await teamB.create('quiet', { selector: { matchLabels: { app: 'quiet' } } });
    const lastQuietCapture = async (): Promise<string | undefined> => (await teamB.get('quiet'))?.status?.targets?.[0]?.lastCaptureTime;
    await waitFor('the quiet probe capturing', async () => (await lastQuietCapture()) !== undefined, 30_000).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));

    // 20 s: the quiet probe's captures, and how many of team-a's rounds hold a gated answer at once.
    // And team-a's jobs waiting in the queue: put back (started again) but never an attempt, at most two per probe.
    const captures: number[] = [];
    let mostHeld = 0;
    let putBack = 0;
    const attemptsMade = new Set<number>();
    // A job that did use an attempt, described, so a failure of the assertion below explains itself.
    const spentAttempts = new Map<string, string>();
    // Jobs that finished between being listed and being read: how each ended.
    const finishedMeanwhile = new Map<string, string>();
    const mostWaiting = new Map<string, number>();
    const until = Date.now() + 20_000;
    while (Date.now() < until) {
      const last = await lastQuietCapture();
      if (last && !captures.includes(Date.parse(last))) captures.push(Date.parse(last));
      const held = (await Promise.all(HELD.map((p) => gate(p, 'waiting')))).reduce((sum, n) => sum + Number(n), 0);
      mostHeld = Math.max(mostHeld, held);
      // Queue.getJobs lists the ids atomically but then reads each job's hash on its own: a job can
      // finish in between (a superseded one completes, and BullMQ counts a completion in attemptsMade).
      // Such a job was no longer waiting when read; its hash says so with finishedOn.
      const listed = (await queue.getJobs(['delayed', 'waiting'])).filter((job) => job?.data.namespace === 'team-a');
      for (const job of listed) if (job.finishedOn !== undefined) finishedMeanwhile.set(job.id ?? '?', job.failedReason ? `failed: ${job.failedReason}` : String(job.returnvalue));
      const waiting = listed.filter((job) => job.finishedOn === undefined);
      for (const job of waiting) {
        if ((job.attemptsStarted ?? 0) >= 2) putBack++;
        attemptsMade.add(job.attemptsMade);
        if (job.attemptsMade > 0) spentAttempts.set(job.id ?? '?', `${job.id}: attemptsMade ${job.attemptsMade}, attemptsStarted ${job.attemptsStarted}, failed with ${job.failedReason}`);
      }
      for (const name of HELD) mostWaiting.set(name, Math.max(mostWaiting.get(name) ?? 0, waiting.filter((job) => job.data.name === name).length));
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    const gaps = captures.slice(1).map((t, i) => t - (captures[i] ?? t));
    const text = await metrics();
    console.log(`quiet: ${captures.length} captures in 20 s, largest gap ${Math.max(...gaps)} ms; team-a rounds held at once: ${mostHeld}; deferred team-a ${deferredOf(text, 'team-a')}, team-b ${deferredOf(text, 'team-b')}; most team-a rounds waiting per probe ${Math.max(...mostWaiting.values())}; jobs that finished between being listed and read: ${finishedMeanwhile.size}`);

    // team-a never holds more than its share (1) of the two slots: without the share it held both, and team-b had none.
    assert.equal(mostHeld, 1, diagnostics());
    // team-b keeps its interval, and none of its rounds waited.
    assert.ok(captures.length >= 4, `${captures.length} quiet captures in 20 s`);
    for (const gap of gaps) assert.ok(gap <= INTERVAL_MS + 2500, `quiet gap ${gap} ms`);
    assert.ok(deferredOf(text, 'team-a') > 0, 'team-a rounds were deferred');
    assert.equal(deferredOf(text, 'team-b'), 0);
    // A round that waited its whole interval gave way to the probe's next one: no backlog of stale rounds builds up.
    const supersededOf = (namespace: string): number => Number(new RegExp(`^mapleak_rounds_superseded_total\\{namespace="${namespace}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
    assert.ok(supersededOf('team-a') > 0, 'team-a rounds were superseded');
    const superseded = (await queue.getCompleted()).filter((job) => job.data.namespace === 'team-a' && job.returnvalue === 'superseded');
    assert.ok(superseded.length > 0);
    // A deferral is not an attempt: the jobs put back have used none of theirs.
    assert.ok(putBack > 0, 'team-a jobs were taken and put back');
    assert.deepEqual([...attemptsMade], [0], `${[...spentAttempts.values()].join('\n')}\n${diagnostics()}`);
    // One that finished while it was read was superseded: team-a's one slot stays held all along, so none ran, and none failed.
    for (const [id, ended] of finishedMeanwhile) assert.equal(ended, 'superseded', id);
    for (const name of HELD) assert.ok((mostWaiting.get(name) ?? 0) <= 2, `${name}: ${mostWaiting.get(name)} rounds waiting at once (at most its current and its next)`);
    // The probes whose rounds waited a whole interval say so; the quiet one does not.
    const deferred = await waitFor(
      'RoundsDeferred on a team-a probe',
      async () => {
        for (const name of HELD) {
          const found = condition(await teamA.get(name), 'RoundsDeferred');
          if (found?.status === 'True') return { name, found };
        }
        return undefined;
      },
      15_000,
    );
    assert.equal(deferred.found.reason, 'NamespaceRoundLimit');
    assert.match(deferred.found.message, /namespace team-a already runs 1 round at once.*--max-active-rounds-per-namespace/);
    assert.equal(condition(await teamB.get('quiet'), 'RoundsDeferred'), undefined);

    // The gates open: every team-a probe gets its rounds, and the deferred one's condition turns False.
    await Promise.all(HELD.map((p) => gate(p, 'open?answer=profile')));
    await waitFor(
      'every team-a probe captured, RoundsDeferred cleared',
      async () => {
        const probes = await Promise.all(HELD.map((name) => teamA.get(name)));
        return probes.every((p) => (p?.status?.targets?.[0]?.captures ?? 0) >= 1) && condition(probes[HELD.indexOf(deferred.name)], 'RoundsDeferred')?.status === 'False';
      },
      60_000,
    ).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
    assert.equal(condition(await teamA.get(deferred.name), 'RoundsDeferred')?.reason, 'RoundRan');
  });
});

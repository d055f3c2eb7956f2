import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { KubeConfig } from '@kubernetes/client-node';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { MapLeakProbe } from '../../src/api/types.js';
import { CAPTURE_QUEUE } from '../../src/queue/names.js';
import { restartApiserver, runPod, stopCluster, type Cluster } from '../cluster/cluster.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { spawnOperator, type OperatorProcess } from '../support/operator-process.js';
import { startClusterWithCrd, TestProbes } from '../support/probes.js';
import { testReaderToken } from '../support/tokens.js';
import { waitFor } from '../support/wait.js';

const CLUSTER = 'faults';
const NS = 'default';
const LEASE_MS = 15_000;

describe('faults: bad targets, replicas, crashes, Redis and API server restarts', () => {
  let cluster: Cluster;
  let kc: KubeConfig;
  let redis: RedisServer;
  let redisPort: number;
  let queueRedis: Redis;
  let queue: Queue;
  const operators: OperatorProcess[] = [];
  let httpToken: string;

  const startReplica = async (identity: string): Promise<OperatorProcess> => {
    const op = await spawnOperator({ kubeconfig: cluster.kubeconfigPath, redisUrl: redis.url, identity, leaseNamespace: NS, httpToken, args: ['--resync-interval', '5s'] });
    operators.push(op);
    return op;
  };
  let probes: TestProbes;
  const getProbe = (name: string): Promise<MapLeakProbe | undefined> => probes.get(name);
  const createProbe = (name: string, app: string, pprof: Record<string, unknown> = {}): Promise<unknown> => probes.create(name, { selector: { matchLabels: { app } }, pprof });
  const diagnostics = (): string => operators.map((o) => `--- ${o.identity}\n${o.output().slice(-4000)}`).join('\n');

  before(async () => {
    ({ cluster, kc } = await startClusterWithCrd(CLUSTER));
    probes = new TestProbes(kc, NS);
    httpToken = await testReaderToken(kc);
    redis = await startRedis();
    redisPort = redis.port;
    queueRedis = new Redis(redis.url, { maxRetriesPerRequest: null });
    queueRedis.on('error', () => undefined);
    queue = new Queue(CAPTURE_QUEUE, { connection: queueRedis });
    queue.on('error', () => undefined); // expected while Redis is restarted
    await Promise.all([
      runPod(cluster, { name: 'good', labels: { app: 'mixed' }, path: 'test/targets/leaky' }),
      ...['garbage', 'huge', 'slow', 'html404'].map((mode) => runPod(cluster, { name: `bad-${mode}`, labels: { app: 'mixed' }, path: 'test/targets/badpprof', args: ['-mode', mode] })),
    ]);
  });

  after(async () => {
    for (const op of operators) await op.kill('SIGTERM');
    await queue?.close();
    queueRedis?.disconnect();
    await redis?.stop();
    await stopCluster(CLUSTER);
  });

  test('garbage, huge, slow and 404 targets each get a reason; the good pod is unaffected', async () => {
    await startReplica('replica-a');
    await createProbe('mixed', 'mixed', { timeout: '2s', maxProfileBytes: 16 * 1024 * 1024 });
    const probe = await waitFor(
      'every target reported, the good one analysed',
      async () => {
        const p = await getProbe('mixed');
        const targets = p?.status?.targets ?? [];
        const good = targets.find((t) => t.name === 'good');
        return targets.length === 5 && (good?.captures ?? 0) >= 2 && p?.status?.verdict === 'Leaking' && p;
      },
      90_000,
      1000,
    ).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
    const reasons = Object.fromEntries((probe.status?.targets ?? []).map((t) => [t.name, t.lastErrorReason]));
    assert.deepEqual(reasons, { 'bad-garbage': 'NotAProfile', 'bad-huge': 'TooLarge', 'bad-slow': 'Timeout', 'bad-html404': 'Http404', good: undefined });
    const messages = (probe.status?.targets ?? []).map((t) => t.lastError ?? '').join('\n');
    assert.match(messages, /pprof not found/);
    assert.match(messages, /more than 16777216 bytes/);
    const degraded = probe.status?.conditions?.find((c) => c.type === 'Degraded');
    assert.equal(degraded?.status, 'True');
    assert.match(degraded?.message ?? '', /4 of 5 targets failing/);
    assert.equal(probe.status?.conditions?.find((c) => c.type === 'Capturing')?.status, 'True');
    assert.equal(probe.status?.targets?.[4]?.name, 'good', 'failing targets are listed first');
  });

  test('two replicas: exactly one leads; a killed leader is replaced within the lease time', async (t) => {
    const [a] = operators as [OperatorProcess];
    const b = await startReplica('replica-b');
    await waitFor('a settled leadership', async () => (await a.leader()) === 1 && (await b.leader()) === 0, 20_000);
    // Several looks over a few retry periods: never two leaders.
    for (let i = 0; i < 5; i++) {
      assert.equal(((await a.leader()) ?? 0) + ((await b.leader()) ?? 0), 1);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const killedAt = Date.now();
    await a.kill('SIGKILL');
    await waitFor('replica-b to take over', async () => (await b.leader()) === 1, LEASE_MS + 15_000, 250);
    const failoverMs = Date.now() - killedAt;
    // Worst case: the follower saw the last renewal up to one retry period
    // (2 s) after it happened, waits the lease (15 s) from then, and takes
    // over at its next retry (2 s); plus polling and a loaded machine.
    t.diagnostic(`failover took ${failoverMs} ms`);
    assert.ok(failoverMs <= LEASE_MS + 2 * 2000 + 3000, `failover took ${failoverMs} ms`);
    // The new leader reconciles: a new probe gets its scheduler.
    await createProbe('after-failover', 'mixed');
    await waitFor('scheduler from the new leader', async () => (await queue.getJobScheduler(`${NS}/after-failover`)) !== undefined, 20_000);
    await probes.delete('after-failover');
  });

  test('an operator killed mid-capture: the job is retried and its capture stored once', async (t) => {
    const b = operators[1] as OperatorProcess;
    // The round for "mixed" spends ~2 s on the slow target: kill while it is active. A round of
    // replica-a (killed in the test before) stays in the active list until its lock lapses: the
    // round to follow is one that replica-b started (after replica-a died) and that never stalled.
    const since = Date.now();
    const active = await waitFor(
      'a capture job in progress on replica-b',
      async () => (await queue.getActive()).find((j) => j.data.name === 'mixed' && (j.processedOn ?? 0) >= since && j.stalledCounter === 0),
      30_000,
      100,
    );
    t.diagnostic(`killed during job ${active.id}: processedOn ${Date.now() - (active.processedOn ?? 0)} ms ago, attemptsStarted ${active.attemptsStarted}, stalledCounter ${active.stalledCounter}`);
    const killedAt = Date.now();
    await b.kill('SIGKILL');
    const killedJobId = active.id as string;
    await startReplica('replica-c');
    // The lock lapses (30 s) and the stalled job goes back to the queue. Its retry may find the dead
    // replica's slot lease still in the namespace's share: it waits for the slot, never superseded.
    const done = await waitFor(
      'the killed job to complete on replica-c',
      async () => {
        const job = await queue.getJob(killedJobId);
        return job && job.finishedOn ? job : undefined;
      },
      90_000,
      1000,
    ).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
    assert.ok(done.finishedOn);
    const probe = await getProbe('mixed');
    const podUid = await goodPodUid();
    const captureId = createHash('sha256').update(`${killedJobId}|${podUid}`).digest('hex').slice(0, 24);
    const scored = await queueRedis.zrange(`mlp:{${NS}/mixed}:t:${podUid}:series`, '0', '-1', 'WITHSCORES');
    const members = scored.filter((_, i) => i % 2 === 0);
    // What would explain a failure: the job as BullMQ ended it, the series, the good target's status, the rounds of "mixed" each replica logged.
    const facts = {
      job: killedJobId,
      captureId,
      killedAt,
      returnvalue: done.returnvalue,
      failedReason: done.failedReason,
      attemptsStarted: done.attemptsStarted,
      attemptsMade: done.attemptsMade,
      stalledCounter: done.stalledCounter,
      processedOn: done.processedOn,
      finishedOn: done.finishedOn,
      series: scored,
      goodTarget: probe?.status?.targets?.find((target) => target.name === 'good'),
    };
    const rounds = operators.map((o) => `--- ${o.identity}\n${o.output().split('\n').filter((line) => line.includes(`"${NS}/mixed"`) && !line.includes('"bad-')).slice(-40).join('\n')}`);
    const why = `${JSON.stringify(facts, null, 1)}\n${rounds.join('\n')}`;
    assert.equal(done.returnvalue, 'captured', `the retried round ran to its end\n${why}`);
    assert.equal(members.filter((m) => m === captureId).length, 1, `the retried round stored its capture once\n${why}`);
    assert.equal(new Set(members).size, members.length);
    assert.ok(probe?.status?.targets?.some((t) => t.name === 'good'));
  });

  test('Redis killed and restarted empty: schedulers come back and captures resume', async () => {
    await redis.stop();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const restartedAt = new Date();
    redis = await startRedis({ port: redisPort });
    await waitFor('scheduler recreated by resync', async () => (await queue.getJobScheduler(`${NS}/mixed`)) !== undefined, 30_000, 500).catch((err: Error) =>
      assert.fail(`${err.message}\n${diagnostics()}`),
    );
    await waitFor(
      'a capture after the restart',
      async () => {
        const p = await getProbe('mixed');
        const good = p?.status?.targets?.find((t) => t.name === 'good');
        return good?.lastCaptureTime !== undefined && Date.parse(good.lastCaptureTime) > restartedAt.getTime();
      },
      60_000,
      1000,
    ).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
  });

  test('API server restarted: the watch recovers and new probes are scheduled', async () => {
    await restartApiserver(cluster, 3000);
    await waitFor('API server back', async () => (await getProbe('mixed')) !== undefined, 30_000);
    await createProbe('after-restart', 'mixed');
    await waitFor('scheduler for a probe created after the restart', async () => (await queue.getJobScheduler(`${NS}/after-restart`)) !== undefined, 60_000, 500).catch((err: Error) =>
      assert.fail(`${err.message}\n${diagnostics()}`),
    );
  });

  async function goodPodUid(): Promise<string> {
    const { CoreV1Api } = await import('@kubernetes/client-node');
    const pod = await kc.makeApiClient(CoreV1Api).readNamespacedPod({ name: 'good', namespace: NS });
    return pod.metadata?.uid ?? '';
  }
});

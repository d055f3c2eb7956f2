// Production Redis topologies on real processes: the operator (a separate
// process, as in a pod) against a primary + replica + 3 sentinels, and
// against a 3-primary Redis Cluster with a replica per primary; a real
// kube-apiserver and a real leaking Go pod. While a capture round runs, the
// sentinels' primary is SIGKILLed, and so is the cluster primary holding the
// queue (its replica takes over); the operator must follow the new primary
// without a restart, store every capture once, and lose no round beyond the
// failover itself (its time polled apart from the operator), without the
// stall watchdog. Then a cluster that stays failed while BullMQ resets its
// blocking connection (what wedged the worker after a SIGKILL), and last the
// stall watchdog: an in-process worker whose fetch loop stops is recreated
// once its bound has passed.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeConfig } from '@kubernetes/client-node';
import { Queue } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import type { MapLeakProbe } from '../../src/api/types.js';
import { ProbeClient } from '../../src/api/client.js';
import { BinaryKnowledgeCache } from '../../src/capture/binary-knowledge.js';
import { ClusterRegistry } from '../../src/clusters/registry.js';
import { jsonLogger } from '../../src/observability/log.js';
import { OperatorMetrics } from '../../src/observability/metrics.js';
import { redisConnection, type RedisConfig } from '../../src/queue/connection.js';
import { CAPTURE_JOB, CAPTURE_QUEUE, queuePrefix } from '../../src/queue/names.js';
import { SeriesStore } from '../../src/store/series-store.js';
import { DEFAULT_WORKER_LIMITS } from '../../src/worker/capture-round.js';
import { captureIdOf } from '../../src/worker/capture-round.js';
import { STALL_BOUND_MS, startCaptureWorker } from '../../src/worker/worker.js';
import { runPod, stopCluster, type Cluster as KubeCluster } from '../cluster/cluster.js';
import { startRedisCluster, startSentinelSet, type RedisClusterSet, type SentinelSet } from '../cluster/redis.js';
import { spawnOperator, type OperatorProcess } from '../support/operator-process.js';
import { condition, startClusterWithCrd, TestProbes } from '../support/probes.js';
import { bearer, testReaderToken } from '../support/tokens.js';
import { waitFor } from '../support/wait.js';

const CLUSTER = 'redis-topologies';
const NS = 'default';
const INTERVAL_MS = 5000;
/** Captures after the kill that the test waits for: enough gaps to see a lost round. */
const ROUNDS_AFTER = 4;

interface StoredCapture {
  id: string;
  time: number;
  /** The pod's uid: a capture id is derived from its job id and this. */
  uid: string;
}

/** Every capture stored for a probe, per pod, read the way the store lays keys out. */
async function storedCaptures(client: Redis | Cluster, probe: string): Promise<StoredCapture[]> {
  const uids = Object.keys(await client.hgetall(`mlp:{${NS}/${probe}}:targets`));
  const captures: StoredCapture[] = [];
  for (const uid of uids) {
    const flat = await client.zrange(`mlp:{${NS}/${probe}}:t:${uid}:series`, '0', '-1', 'WITHSCORES');
    for (let i = 0; i < flat.length; i += 2) captures.push({ id: flat[i] as string, time: Number(flat[i + 1]), uid });
  }
  return captures.sort((a, b) => a.time - b.time);
}

/** A kill: when, and the jobs being worked on (or about to be) at that moment. */
interface Kill {
  killedAt: number;
  inFlight: string[];
}

/** Kills `victim` while a capture job is being worked on. */
async function killDuringRound(queue: Queue, victim: { kill(): Promise<void> }): Promise<Kill> {
  const inFlight = await waitFor(
    'a capture round in flight',
    async () => {
      // Waiting jobs too: one may be taken between this read and the kill.
      const [active, waiting] = await Promise.all([queue.getActive(), queue.getWaiting()]);
      const ids = [...active, ...waiting].map((job) => job.id).filter((id): id is string => id !== undefined);
      return active.length > 0 && ids;
    },
    30_000,
    25,
  );
  const killedAt = Date.now();
  await victim.kill();
  return { killedAt, inFlight };
}

/**
 * The failover as the operator lived it: the time from the kill to the first
 * capture stored by a round taken from the queue after it (a round in flight
 * at the kill may store to a primary that lives on; polled every 100 ms on a
 * client that follows the new primary too), then ROUNDS_AFTER more rounds.
 */
async function followFailover(client: Redis | Cluster, probes: string[], { killedAt, inFlight }: Kill): Promise<{ recoveryMs: number }> {
  const recoveredAt = await waitFor(
    'the first capture stored by a round taken after the kill',
    async () => {
      for (const probe of probes) {
        const taken = (await storedCaptures(client, probe)).filter((c) => c.time > killedAt && !inFlight.some((job) => captureIdOf(job, c.uid) === c.id));
        if (taken.length > 0) return Date.now();
      }
      return undefined;
    },
    60_000,
    100,
  );
  await waitFor(
    `${ROUNDS_AFTER} more rounds after the failover`,
    async () => {
      for (const probe of probes) if ((await storedCaptures(client, probe)).filter((c) => c.time > killedAt).length < ROUNDS_AFTER + 1) return false;
      return true;
    },
    (ROUNDS_AFTER + 4) * INTERVAL_MS,
    250,
  );
  return { recoveryMs: recoveredAt - killedAt };
}

/** A round's own duration varies (and a client's catch-up after a failover); a lost round adds a whole interval. */
const SLACK_MS = 2500;

/**
 * Polls (every 50 ms, from the kill) until `promoted` says the replica has
 * taken over, independently of the operator: the failover's own time.
 */
async function failoverTime(killedAt: number, promoted: () => Promise<boolean>): Promise<number> {
  await waitFor('the replica promoted', async () => (await promoted().catch(() => false)) || undefined, 30_000, 50);
  return Date.now() - killedAt;
}

/**
 * What a failover may cost: the rounds due while there was no primary. The
 * first round scheduled after the failover ended must be stored, so the
 * first capture of a round taken after the kill comes at most one interval
 * (plus slack) after the failover's end.
 */
function assertRecoveredAfterFailover(recoveryMs: number, failoverMs: number, what: string): void {
  const allowed = failoverMs + INTERVAL_MS + SLACK_MS;
  assert.ok(recoveryMs <= allowed, `${what}: first round after the kill stored ${recoveryMs} ms after it; the failover took ${failoverMs} ms, so at most ${allowed} ms`);
}

/**
 * No capture twice (distinct ids and capture times), and no scheduled round
 * lost: consecutive captures are at most one interval apart (plus a round's
 * own time), except across the kill, where the next capture may wait for
 * the failover to end and then for the next scheduled round.
 */
function assertSeriesWhole(captures: StoredCapture[], killedAt: number, failoverMs: number, what: string): void {
  assert.equal(new Set(captures.map((c) => c.id)).size, captures.length, `${what}: every capture id once (${JSON.stringify(captures)})`);
  assert.equal(new Set(captures.map((c) => c.time)).size, captures.length, `${what}: every capture time once`);
  for (let i = 1; i < captures.length; i++) {
    const previous = captures[i - 1]!.time;
    const gap = captures[i]!.time - previous;
    const acrossKill = previous <= killedAt && captures[i]!.time > killedAt;
    const allowed = acrossKill ? killedAt + failoverMs + INTERVAL_MS + SLACK_MS - previous : INTERVAL_MS + SLACK_MS;
    assert.ok(gap <= allowed, `${what}: ${gap} ms between captures ${i - 1} and ${i}${acrossKill ? ` (across the kill; the failover took ${failoverMs} ms)` : ''}, at most ${allowed} ms`);
  }
}

/** The stall watchdog's restarts, from the operator's /metrics. */
async function watchdogRestarts(operator: OperatorProcess, token: string): Promise<number> {
  const metrics = await (await fetch(`http://127.0.0.1:${operator.port}/metrics`, { headers: bearer(token) })).text();
  return Number(/^mapleak_worker_restarts_total\{reason="stalled"\} (\d+)/m.exec(metrics)?.[1] ?? 0);
}

/** The connection settings of a test cluster, as the operator builds them from its flags. */
function clusterConfig(set: RedisClusterSet): RedisConfig {
  return { mode: 'cluster', nodes: set.seeds.split(',').map((a) => ({ host: a.split(':')[0]!, port: Number(a.split(':')[1]) })), tls: false, password: set.password };
}

async function readyz(operator: OperatorProcess): Promise<{ ready: boolean; checks: Record<string, boolean>; redis?: { mode: string; master?: string; primaries?: number } }> {
  return (await (await fetch(`http://127.0.0.1:${operator.port}/readyz`)).json()) as { ready: boolean; checks: Record<string, boolean>; redis?: { mode: string; master?: string; primaries?: number } };
}

function assertHealthy(probe: MapLeakProbe | undefined, stored: number, name: string): void {
  assert.equal(condition(probe, 'Ready')?.status, 'True', `${name} Ready`);
  assert.equal(condition(probe, 'Capturing')?.status, 'True', `${name} Capturing`);
  assert.equal(condition(probe, 'Degraded')?.status, 'False', `${name} not Degraded: ${condition(probe, 'Degraded')?.message ?? ''}`);
  const captures = probe?.status?.targets?.[0]?.captures ?? 0;
  // The status is written after the store; one round may be between the two reads.
  assert.ok(captures >= stored - 1 && captures <= stored + 1, `${name}: status counts ${captures} captures, Redis holds ${stored}`);
}

function assertNoSecrets(text: string, secrets: string[]): void {
  for (const secret of secrets) assert.ok(!text.includes(secret), 'a Redis password appears in the output');
}

describe('production Redis: sentinel and cluster failover with real processes', () => {
  let cluster: KubeCluster;
  let kc: KubeConfig;
  let probes: TestProbes;
  let httpToken: string;
  let sentinel: SentinelSet;
  let redisCluster: RedisClusterSet;
  /** A cluster without replicas: a killed primary leaves it failed until restarted. */
  let bareCluster: RedisClusterSet;
  const operators: OperatorProcess[] = [];
  const figures: string[] = [];

  before(async () => {
    [{ cluster, kc }, sentinel, redisCluster, bareCluster] = await Promise.all([
      startClusterWithCrd(CLUSTER),
      startSentinelSet({ downAfterMs: 1000 }),
      startRedisCluster({ primaries: 3, nodeTimeoutMs: 1000 }),
      startRedisCluster({ primaries: 3, replicas: 0, nodeTimeoutMs: 1000 }),
    ]);
    probes = new TestProbes(kc, NS);
    [httpToken] = await Promise.all([
      testReaderToken(kc),
      // Sampled densely so a few captures give a verdict.
      runPod(cluster, { name: 'leaky', labels: { app: 'leaky' }, path: 'test/targets/leaky', args: ['-memprofilerate', '131072'] }),
    ]);
  });

  after(async () => {
    for (const op of operators) await op.kill('SIGTERM');
    if (figures.length > 0) console.log(`# redis failover figures\n${figures.map((f) => `#   ${f}`).join('\n')}`);
    await Promise.all([sentinel?.stop(), redisCluster?.stop(), bareCluster?.stop(), stopCluster(CLUSTER)]);
  });

  /** The operators' warnings and errors (rounds done are many and say little here). */
  const diagnostics = (): string =>
    operators.map((o) => `--- ${o.identity}\n${o.output().split('\n').filter((line) => !line.includes('"level":"info"')).join('\n').slice(-8000)}`).join('\n');
  const spec = { selector: { matchLabels: { app: 'leaky' } }, schedule: { interval: '5s', window: 48 } };

  describe('sentinel: primary + replica + 3 sentinels', () => {
    let operator: OperatorProcess;
    let client: Redis;
    let queue: Queue;

    before(async () => {
      operator = await spawnOperator({
        kubeconfig: cluster.kubeconfigPath,
        identity: 'sentinel-operator',
        leaseNamespace: NS,
        httpToken,
        args: ['--redis-sentinels', sentinel.sentinelAddresses, '--redis-sentinel-master', sentinel.masterName, '--no-leader-elect', '--resync-interval', '5s'],
        env: { REDIS_PASSWORD: sentinel.password, REDIS_SENTINEL_PASSWORD: sentinel.sentinelPassword },
      });
      operators.push(operator);
      const sentinels = sentinel.sentinels.map((s) => ({ host: s.host, port: s.port }));
      client = new Redis({ sentinels, name: sentinel.masterName, password: sentinel.password, sentinelPassword: sentinel.sentinelPassword, failoverDetector: true, maxRetriesPerRequest: null });
      client.on('error', () => undefined);
      queue = new Queue(CAPTURE_QUEUE, { connection: client, prefix: queuePrefix('sentinel') });
      queue.on('error', () => undefined);
    });
    after(async () => {
      // Its controller would go on reconciling the cluster test's probes (and this Redis keeps them).
      await Promise.all(['sentinel-a', 'sentinel-b'].map((name) => probes.delete(name).catch(() => undefined)));
      await waitFor('sentinel probes gone', async () => (await probes.get('sentinel-a')) === undefined && (await probes.get('sentinel-b')) === undefined, 30_000, 250).catch(() => undefined);
      await operator?.kill('SIGTERM');
      await queue?.close();
      client?.disconnect();
    });

    test('the operator names the mode and the resolved master on /readyz and in its start-up line, never a password', async () => {
      const ready = await waitFor('ready', async () => {
        const r = await readyz(operator);
        return r.ready && r;
      }, 20_000);
      assert.deepEqual(ready.redis, { mode: 'sentinel', master: `127.0.0.1:${sentinel.primary.port}` });
      const started = operator
        .output()
        .split('\n')
        .map((line) => (line.startsWith('{') ? (JSON.parse(line) as Record<string, unknown>) : {}))
        .find((line) => line.msg === 'operator started');
      assert.ok(started, operator.output());
      assert.match(String(started.redis), new RegExp(`^sentinel master "${sentinel.masterName}" via 127\\.0\\.0\\.1:\\d+,127\\.0\\.0\\.1:\\d+,127\\.0\\.0\\.1:\\d+$`));
      assert.deepEqual(started.redisTopology, { mode: 'sentinel', master: `127.0.0.1:${sentinel.primary.port}` });
      assertNoSecrets(operator.output() + JSON.stringify(ready), [sentinel.password, sentinel.sentinelPassword]);
    });

    test('SIGKILL of the primary in the middle of a round: the operator follows the new primary, no capture twice, no round lost', async () => {
      await probes.create('sentinel-a', spec);
      await probes.create('sentinel-b', spec);
      await waitFor('two captures per probe before the kill', async () => (await storedCaptures(client, 'sentinel-a')).length >= 2 && (await storedCaptures(client, 'sentinel-b')).length >= 2, 60_000, 500).catch(
        (err: Error) => assert.fail(`${err.message}\n${diagnostics()}`),
      );
      const kill = await killDuringRound(queue, sentinel.primary);
      const promoted = `127.0.0.1:${sentinel.replica.port}`;
      const [failoverMs, { recoveryMs }] = await Promise.all([
        failoverTime(kill.killedAt, async () => (await sentinel.currentMaster()) === promoted),
        followFailover(client, ['sentinel-a', 'sentinel-b'], kill).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`)),
      ]);
      const restarts = await watchdogRestarts(operator, httpToken);
      figures.push(`sentinel: SIGKILL of the primary: replica named master after ${failoverMs} ms; first capture of a round taken after the kill at ${recoveryMs} ms (down-after-milliseconds 1000; stall-watchdog restarts: ${restarts})`);
      assert.equal(await sentinel.currentMaster(), promoted, 'the sentinels promoted the replica');
      assert.equal(restarts, 0, `the worker followed the failover by itself, without the stall watchdog\n${diagnostics()}`);
      assertRecoveredAfterFailover(recoveryMs, failoverMs, 'sentinel');
      for (const name of ['sentinel-a', 'sentinel-b']) {
        const captures = await storedCaptures(client, name);
        assertSeriesWhole(captures, kill.killedAt, failoverMs, name);
        assertHealthy(await probes.get(name), captures.length, name);
      }
      const ready = await readyz(operator);
      assert.equal(ready.ready, true);
      assert.deepEqual(ready.redis, { mode: 'sentinel', master: `127.0.0.1:${sentinel.replica.port}` }, 'the new master, without a restart');
      assertNoSecrets(operator.output(), [sentinel.password, sentinel.sentinelPassword]);
    });

    test('/metrics: bytes stored per capture, the size the captures take in Redis, and the primary’s memory', async () => {
      const metrics = await (await fetch(`http://127.0.0.1:${operator.port}/metrics`, { headers: bearer(httpToken) })).text();
      const sum = Number(/^mapleak_redis_capture_bytes_sum (\S+)/m.exec(metrics)?.[1]);
      const count = Number(/^mapleak_redis_capture_bytes_count (\S+)/m.exec(metrics)?.[1]);
      assert.ok(count >= 4 && sum > 0, `captures counted: ${count}, ${sum} bytes`);
      assert.match(metrics, /# HELP mapleak_redis_capture_bytes Bytes one stored capture writes/);
      assert.match(metrics, new RegExp(`^mapleak_redis_used_memory_bytes\\{node="127\\.0\\.0\\.1:${sentinel.replica.port}"\\} [1-9]`, 'm'));
      assert.match(metrics, new RegExp(`^mapleak_redis_maxmemory_bytes\\{node="127\\.0\\.0\\.1:${sentinel.replica.port}"\\} 0`, 'm'));
      // What Redis itself says the capture keys take, against what the metric reports.
      const captures = await storedCaptures(client, 'sentinel-a');
      let usage = 0;
      for (const { id } of captures) {
        usage += Number(await client.call('MEMORY', 'USAGE', `mlp:{${NS}/sentinel-a}:c:${id}`));
        usage += Number(await client.call('MEMORY', 'USAGE', `mlp:{${NS}/sentinel-a}:p:${id}`));
      }
      const perCaptureRedis = usage / captures.length;
      const perCaptureMetric = sum / count;
      const part = (name: string): number => Number(new RegExp(`^mapleak_redis_stored_bytes_total\\{part="${name}"\\} (\\S+)`, 'm').exec(metrics)?.[1]);
      figures.push(
        `memory per capture: ${Math.round(perCaptureMetric)} value bytes (metric; summary ${Math.round(part('summary') / count)}, profile ${Math.round(part('profile') / count)}), ${Math.round(perCaptureRedis)} bytes by MEMORY USAGE of its two keys`,
      );
      assert.ok(perCaptureRedis >= perCaptureMetric * 0.8 && perCaptureRedis <= perCaptureMetric * 1.3 + 512, `metric ${perCaptureMetric} vs MEMORY USAGE ${perCaptureRedis}`);
    });
  });

  describe('cluster: 3 primaries, a replica each', () => {
    let operator: OperatorProcess;
    let client: Cluster;
    let queue: Queue;
    const names = ['spread-a', 'spread-b', 'spread-c', 'spread-d'];

    before(async () => {
      operator = await spawnOperator({
        kubeconfig: cluster.kubeconfigPath,
        identity: 'cluster-operator',
        leaseNamespace: NS,
        httpToken,
        args: ['--redis-cluster-nodes', redisCluster.seeds, '--no-leader-elect', '--resync-interval', '5s'],
        env: { REDIS_PASSWORD: redisCluster.password },
      });
      operators.push(operator);
      client = new Cluster(redisCluster.seeds.split(',').map((a) => ({ host: a.split(':')[0]!, port: Number(a.split(':')[1]) })), {
        redisOptions: { password: redisCluster.password, maxRetriesPerRequest: null },
        retryDelayOnFailover: 200,
      });
      client.on('error', () => undefined);
      queue = new Queue(CAPTURE_QUEUE, { connection: client, prefix: queuePrefix('cluster') });
      queue.on('error', () => undefined);
    });
    after(async () => {
      await queue?.close();
      client?.disconnect();
    });

    /** The primary serving a key's slot now. */
    const ownerOf = async (key: string): Promise<string> => {
      const slot = Number(await client.cluster('KEYSLOT', key));
      const owner = (await redisCluster.primaries()).find((p) => p.slots.some(([from, to]) => slot >= from && slot <= to));
      assert.ok(owner, `slot ${slot} is served`);
      return owner.address;
    };

    test('probes spread over the primaries reach Leaking; /readyz counts the primaries', async () => {
      const ready = await waitFor('ready', async () => {
        const r = await readyz(operator);
        return r.ready && r;
      }, 20_000);
      assert.deepEqual(ready.redis, { mode: 'cluster', primaries: 3 });
      for (const name of names) await probes.create(name, spec);
      const owners = new Set(await Promise.all(names.map((name) => ownerOf(`mlp:{${NS}/${name}}:targets`))));
      assert.ok(owners.size > 1, `the probes' keys are on ${owners.size} primaries`);
      for (const name of names) {
        const probe = await waitFor(`${name} Leaking`, async () => {
          const p = await probes.get(name);
          return p?.status?.verdict === 'Leaking' && p;
        }, 120_000, 1000).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
        assertHealthy(probe, (await storedCaptures(client, name)).length, name);
      }
      // Every key of a probe is on the primary of its hash tag.
      for (const name of names) {
        const owner = await ownerOf(`mlp:{${NS}/${name}}:targets`);
        for (const primary of await redisCluster.primaries()) {
          const node = new Redis({ host: primary.node.host, port: primary.node.port, password: redisCluster.password });
          try {
            const keys = await node.keys(`mlp:{${NS}/${name}}:*`);
            if (primary.address === owner) assert.ok(keys.length >= 4, `${name}: ${keys.length} keys on its primary`);
            else assert.deepEqual(keys, [], `${name}: no key on another primary`);
          } finally {
            node.disconnect();
          }
        }
      }
      assertNoSecrets(operator.output() + JSON.stringify(ready), [redisCluster.password]);
    });

    test('SIGKILL of the primary that holds the queue, in the middle of a round: its replica takes over, no capture twice, no round lost', async () => {
      const queueOwner = await ownerOf(`${queuePrefix('cluster')}:${CAPTURE_QUEUE}:meta`);
      const victim = (await redisCluster.primaries()).find((p) => p.address === queueOwner)!.node;
      const replica = await redisCluster.replicaOf(queueOwner);
      const promoted = `${replica.host}:${replica.port}`;
      const kill = await killDuringRound(queue, victim);
      const [failoverMs, { recoveryMs }] = await Promise.all([
        failoverTime(kill.killedAt, async () => (await redisCluster.primaries()).some((p) => p.address === promoted)),
        followFailover(client, names, kill).catch(async (err: Error) => assert.fail(`${err.message}\n${await redisCluster.describe()}\n${diagnostics()}`)),
      ]);
      const restarts = await watchdogRestarts(operator, httpToken);
      figures.push(`cluster: SIGKILL of the queue's primary: replica serves its slots after ${failoverMs} ms; first capture of a round taken after the kill at ${recoveryMs} ms (cluster-node-timeout 1000; stall-watchdog restarts: ${restarts})`);
      assert.equal(restarts, 0, `the worker followed the failover by itself, without the stall watchdog\n${diagnostics()}`);
      assertRecoveredAfterFailover(recoveryMs, failoverMs, 'cluster');
      const after = await redisCluster.primaries();
      assert.equal(after.length, 3);
      assert.ok(after.some((p) => p.address === promoted) && !after.some((p) => p.address === queueOwner), 'the replica replaced the primary');
      assert.equal(await ownerOf(`${queuePrefix('cluster')}:${CAPTURE_QUEUE}:meta`), promoted, 'the queue moved with its slot');
      for (const name of names) {
        const captures = await storedCaptures(client, name);
        assertSeriesWhole(captures, kill.killedAt, failoverMs, name);
        assertHealthy(await probes.get(name), captures.length, name);
      }
      assert.deepEqual((await readyz(operator)).redis, { mode: 'cluster', primaries: 3 });
    });

    test('deleting a probe removes every key of it from every primary, and only its keys', async () => {
      await probes.delete('spread-a');
      await waitFor('spread-a gone (finalizer removed)', async () => (await probes.get('spread-a')) === undefined, 30_000, 500);
      assert.equal(await queue.getJobScheduler(`${NS}/spread-a`), undefined, 'its scheduler is gone');
      for (const primary of await redisCluster.primaries()) {
        const node = new Redis({ host: primary.node.host, port: primary.node.port, password: redisCluster.password });
        try {
          assert.deepEqual(await node.keys(`mlp:{${NS}/spread-a}:*`), [], `no key of spread-a on ${primary.address}`);
        } finally {
          node.disconnect();
        }
      }
      assert.ok((await storedCaptures(client, 'spread-b')).length > 0, 'the other probes keep their series');
    });
  });

  /**
   * The operator's worker (startCaptureWorker) in this process, on `set`,
   * under a prefix of its own so the operator's worker does not take its
   * jobs; its jobs name a probe that does not exist, so a round is quick
   * (probe-gone).
   */
  const inProcessWorker = (set: RedisClusterSet, prefix: string, stallCheckMs?: number) => {
    const config = clusterConfig(set);
    const connection = redisConnection(config, 'worker');
    connection.on('error', () => undefined);
    const queueConnection = redisConnection(config, 'worker');
    queueConnection.on('error', () => undefined);
    const queue = new Queue(CAPTURE_QUEUE, { connection: queueConnection, prefix });
    queue.on('error', () => undefined);
    const metrics = new OperatorMetrics(false);
    const lines: string[] = [];
    const worker = startCaptureWorker(
      { connection, queue, prefix, concurrency: 2, ...(stallCheckMs ? { stallCheckMs } : {}) },
      {
        probes: new ProbeClient(kc),
        clusters: new ClusterRegistry(kc, { remoteNamespaces: new Set(), allowInsecureTls: false }),
        store: new SeriesStore(connection),
        knowledge: new BinaryKnowledgeCache(),
        metrics,
        log: jsonLogger({}, 'info', (line) => void lines.push(line)),
        limits: DEFAULT_WORKER_LIMITS,
      },
    );
    const data = { namespace: NS, name: 'no-such-probe', uid: 'u-1' };
    const add = async (jobId: string): Promise<void> => void (await queue.add(CAPTURE_JOB, data, { jobId }));
    /** The job's return value once it finished (probe-gone), else undefined. */
    const finished = async (id: string): Promise<string | undefined> => {
      const job = await queue.getJob(id);
      return job?.finishedOn ? (job.returnvalue as string) : undefined;
    };
    const close = async (): Promise<void> => {
      await worker.close(true);
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      connection.disconnect();
      queueConnection.disconnect();
    };
    return { worker, queue, metrics, lines, add, finished, close };
  };

  describe('cluster: BullMQ resets its blocking connection while the cluster is failed', () => {
    test('the worker takes the next job as soon as the cluster is whole again, by itself (no stall-watchdog restart)', async () => {
      const prefix = '{mapleak-reset}';
      const { worker, lines, add, finished, close } = inProcessWorker(bareCluster, prefix);
      const probe = new Redis({ host: bareCluster.nodes[0]!.host, port: bareCluster.nodes[0]!.port, password: bareCluster.password, maxRetriesPerRequest: 1 });
      probe.on('error', () => undefined);
      try {
        await add('before');
        assert.equal(await waitFor('the healthy worker runs a job', () => finished('before'), 20_000, 100), 'probe-gone');
        const slot = Number(await probe.cluster('KEYSLOT', `${prefix}:${CAPTURE_QUEUE}:meta`));
        const owner = (await bareCluster.primaries()).find((p) => p.slots.some(([from, to]) => slot >= from && slot <= to))!;
        const witness = bareCluster.nodes.find((n) => n !== owner.node)!;
        const state = async (): Promise<string> => {
          const client = new Redis({ host: witness.host, port: witness.port, password: bareCluster.password, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
          try {
            return /cluster_state:(\w+)/.exec((await client.call('CLUSTER', 'INFO')) as string)?.[1] ?? 'unknown';
          } finally {
            client.disconnect();
          }
        };
        // The worker idles in BZPOPMIN on the queue's primary; it dies, with no replica to take over.
        await owner.node.kill();
        await waitFor('the cluster to say cluster_state:fail', async () => (await state()) === 'fail', 15_000, 50);
        // BullMQ abandons a blocking read after its timeout (drainDelay, 5 s when idle) plus 1 s and
        // resets the blocking connection (disconnect, then connect()). Kept failed that long, at least
        // one reset runs while every node answers CLUSTER INFO with cluster_state:fail.
        await sleep(5000 + 1000 + 1000);
        await owner.node.restart();
        await waitFor('the cluster whole again', async () => (await state()) === 'ok', 15_000, 50);
        const wholeAt = Date.now();
        await add('after');
        // Bound: a blocking read still in flight (or queued behind one abandoned in the outage, which
        // ioredis re-sends once the slots are served) is abandoned by BullMQ after drainDelay + 1 s;
        // then one fetch (runRetryDelay 1 s after an error) takes the job. The watchdog would need 15 s.
        const boundMs = 5000 + 1000 + 1000 + SLACK_MS;
        assert.equal(await waitFor('the job added once the cluster is whole', () => finished('after'), STALL_BOUND_MS + 15_000, 100), 'probe-gone');
        const tookMs = Date.now() - wholeAt;
        figures.push(`failed cluster: job added once the cluster was whole again ran ${tookMs} ms later (bound ${boundMs} ms; stall-watchdog restarts: ${worker.restarts})`);
        assert.equal(worker.restarts, 0, `the stall watchdog had to recreate the worker: ${lines.join('')}`);
        assert.ok(tookMs <= boundMs, `the job ran ${tookMs} ms after the cluster was whole, at most ${boundMs} ms`);
      } finally {
        probe.disconnect();
        await close();
      }
    });
  });

  describe('stall watchdog: a worker that takes no job while jobs are overdue is recreated', () => {
    test('with its fetch loop stopped (stood in for by BullMQ pause: running, no fetch, no error, as in #3088), the next job runs after the stall bound, once recreated', async () => {
      const { worker, metrics, lines, add, finished, close } = inProcessWorker(redisCluster, '{mapleak-watchdog}', 250);
      try {
        await add('before');
        assert.equal(await waitFor('the healthy worker runs a job', () => finished('before'), 20_000, 100), 'probe-gone');
        const first = worker.current;
        // BullMQ's pause stops the fetch loop but not the blocking read already in flight: a job added
        // now is still taken by that read, after which the loop ends, as a wedged one would.
        await first.pause(true);
        await add('taken-by-the-last-read');
        assert.equal(await waitFor('the read in flight takes one more job', () => finished('taken-by-the-last-read'), 20_000, 100), 'probe-gone');
        const addedAt = Date.now();
        await add('wedged');
        assert.equal(await waitFor('the job, run by a recreated worker', () => finished('wedged'), STALL_BOUND_MS + 15_000, 100), 'probe-gone');
        const tookMs = Date.now() - addedAt;
        figures.push(`stall watchdog: a job added to a wedged worker ran ${tookMs} ms later (bound ${STALL_BOUND_MS} ms)`);
        assert.ok(tookMs >= STALL_BOUND_MS, `not before the bound: ${tookMs} ms`);
        assert.notEqual(worker.current, first, 'a new BullMQ Worker');
        assert.equal(worker.restarts, 1);
        assert.match(await metrics.registry.metrics(), /^mapleak_worker_restarts_total\{reason="stalled"\} 1$/m);
        const warned = lines.filter((line) => line.includes('recreating the BullMQ worker'));
        assert.equal(warned.length, 1, lines.join(''));
        const fields = JSON.parse(warned[0]!) as { level: string; overdueMs: number; boundMs: number };
        assert.equal(fields.level, 'warn');
        assert.ok(fields.overdueMs > STALL_BOUND_MS && fields.boundMs === STALL_BOUND_MS, warned[0]);
        // A healthy worker is left alone: another job runs at once, with no further restart.
        await add('after');
        assert.equal(await waitFor('the recreated worker runs the next job', () => finished('after'), 10_000, 100), 'probe-gone');
        assert.equal(worker.restarts, 1);
      } finally {
        await close();
      }
    });
  });
});

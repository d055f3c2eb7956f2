// Production Redis topologies on real processes: the operator (a separate
// process, as in a pod) against a primary + replica + 3 sentinels, and
// against a 3-primary Redis Cluster with a replica per primary; a real
// kube-apiserver and a real leaking Go pod. While a capture round runs, the
// sentinels' primary is SIGKILLed, and the cluster primary holding the queue
// is failed over to its replica (CLUSTER FAILOVER); the operator must follow
// the new primary without a restart, store every capture once, and lose no
// round beyond the failover.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { KubeConfig } from '@kubernetes/client-node';
import { Queue } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import type { MapLeakProbe } from '../../src/api/types.js';
import { CAPTURE_QUEUE, queuePrefix } from '../../src/queue/names.js';
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
}

/** Every capture stored for a probe, per pod, read the way the store lays keys out. */
async function storedCaptures(client: Redis | Cluster, probe: string): Promise<StoredCapture[]> {
  const uids = Object.keys(await client.hgetall(`mlp:{${NS}/${probe}}:targets`));
  const captures: StoredCapture[] = [];
  for (const uid of uids) {
    const flat = await client.zrange(`mlp:{${NS}/${probe}}:t:${uid}:series`, '0', '-1', 'WITHSCORES');
    for (let i = 0; i < flat.length; i += 2) captures.push({ id: flat[i] as string, time: Number(flat[i + 1]) });
  }
  return captures.sort((a, b) => a.time - b.time);
}

/** Kills `victim` while a capture job is being worked on; resolves to the kill time. */
async function killDuringRound(queue: Queue, victim: { kill(): Promise<void> }): Promise<number> {
  await waitFor('a capture round in flight', async () => (await queue.getActiveCount()) > 0, 30_000, 25);
  const killedAt = Date.now();
  await victim.kill();
  return killedAt;
}

/**
 * The failover as the operator lived it: the time from the kill to the first
 * capture stored after it (polled every 100 ms on a client that follows the
 * new primary too), then ROUNDS_AFTER more rounds.
 */
async function followFailover(client: Redis | Cluster, probes: string[], killedAt: number): Promise<{ recoveryMs: number }> {
  const recoveredAt = await waitFor(
    'the first capture stored after the kill',
    async () => {
      for (const probe of probes) if ((await storedCaptures(client, probe)).some((c) => c.time > killedAt)) return Date.now();
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

/**
 * No capture twice (distinct ids and capture times), and no scheduled round
 * lost: consecutive captures are at most one interval apart (plus a round's
 * own time), except across the kill, where the failover may add its time.
 */
function assertSeriesWhole(captures: StoredCapture[], killedAt: number, recoveryMs: number, what: string): void {
  assert.equal(new Set(captures.map((c) => c.id)).size, captures.length, `${what}: every capture id once (${JSON.stringify(captures)})`);
  assert.equal(new Set(captures.map((c) => c.time)).size, captures.length, `${what}: every capture time once`);
  const slack = 2500; // a round's own duration varies; a lost round adds a whole interval
  for (let i = 1; i < captures.length; i++) {
    const gap = captures[i]!.time - captures[i - 1]!.time;
    const acrossKill = captures[i - 1]!.time <= killedAt && captures[i]!.time > killedAt;
    const allowed = INTERVAL_MS + slack + (acrossKill ? recoveryMs : 0);
    assert.ok(gap <= allowed, `${what}: ${gap} ms between captures ${i - 1} and ${i}${acrossKill ? ' (across the kill)' : ''}, at most ${allowed} ms`);
  }
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
  const operators: OperatorProcess[] = [];
  const figures: string[] = [];

  before(async () => {
    [{ cluster, kc }, sentinel, redisCluster] = await Promise.all([startClusterWithCrd(CLUSTER), startSentinelSet({ downAfterMs: 1000 }), startRedisCluster({ primaries: 3, nodeTimeoutMs: 1000 })]);
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
    await Promise.all([sentinel?.stop(), redisCluster?.stop(), stopCluster(CLUSTER)]);
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
      const killedAt = await killDuringRound(queue, sentinel.primary);
      const { recoveryMs } = await followFailover(client, ['sentinel-a', 'sentinel-b'], killedAt).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
      figures.push(`sentinel: SIGKILL of the primary to the first capture stored after it: ${recoveryMs} ms (down-after-milliseconds 1000)`);
      assert.equal(await sentinel.currentMaster(), `127.0.0.1:${sentinel.replica.port}`, 'the sentinels promoted the replica');
      for (const name of ['sentinel-a', 'sentinel-b']) {
        const captures = await storedCaptures(client, name);
        assertSeriesWhole(captures, killedAt, recoveryMs, name);
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

    // A manual failover (the old primary stays up as a replica): with SIGKILL instead, 2 of 5 runs saw the
    // worker stop taking jobs for 40 s and more without an error; that case is open (see the README).
    test('failover of the primary that holds the queue, in the middle of a round: its replica takes over, no capture twice, no round lost', async () => {
      const queueOwner = await ownerOf(`${queuePrefix('cluster')}:${CAPTURE_QUEUE}:meta`);
      let promoted = '';
      const killedAt = await killDuringRound(queue, { kill: async () => void (promoted = await redisCluster.failover(queueOwner)) });
      const { recoveryMs } = await followFailover(client, names, killedAt).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
      figures.push(`cluster: CLUSTER FAILOVER of the queue's primary to the first capture stored after it: ${recoveryMs} ms`);
      const after = await redisCluster.primaries();
      assert.equal(after.length, 3);
      assert.ok(after.some((p) => p.address === promoted) && !after.some((p) => p.address === queueOwner), 'the replica replaced the primary');
      assert.equal(await ownerOf(`${queuePrefix('cluster')}:${CAPTURE_QUEUE}:meta`), promoted, 'the queue moved with its slot');
      for (const name of names) {
        const captures = await storedCaptures(client, name);
        assertSeriesWhole(captures, killedAt, recoveryMs, name);
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
});

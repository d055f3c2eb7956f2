import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoordinationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { CAPTURE_QUEUE } from '../../src/queue/names.js';
import { resumeApiserver, runPod, stopApiserver, stopCluster, type Cluster } from '../cluster/cluster.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { spawnOperator, type OperatorProcess } from '../support/operator-process.js';
import { startClusterWithCrd, TestProbes } from '../support/probes.js';
import { bearer, testReaderToken } from '../support/tokens.js';
import { waitFor } from '../support/wait.js';

const CLUSTER = 'shutdown';
const NS = 'default';
const LEASE = 'mapleakprobe-controller';
/** How long the outage is watched: one whole minute, the first (noisiest) one. */
const OUTAGE_WINDOW_MS = 60_000;
/** A handful of lines a minute: both dependencies' first failure and first repeat, leadership lost, a few rounds' own lines. */
const MAX_LINES_PER_MINUTE = 10;

interface LogLine {
  time: string;
  level: string;
  msg: string;
  [field: string]: unknown;
}

function logLines(op: OperatorProcess): LogLine[] {
  return op
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);
}

/** Sum of a counter's samples by one label, from a Prometheus text page. */
function samples(page: string, metric: string): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const match of page.matchAll(new RegExp(`^${metric}\\{([^}]*)\\} (\\S+)$`, 'gm'))) {
    const labels = Object.fromEntries([...(match[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    out.push({ labels, value: Number(match[2]) });
  }
  return out;
}

describe('operator shutdown: bounded whatever is unreachable, quiet while dependencies are gone', () => {
  let cluster: Cluster;
  let kc: KubeConfig;
  let redis: RedisServer;
  let queueRedis: Redis;
  let queue: Queue;
  let probes: TestProbes;
  let httpToken: string;
  let apiserverStopped = false;
  const operators: OperatorProcess[] = [];
  const diagnostics = (): string => operators.map((o) => `--- ${o.identity}\n${o.output().slice(-6000)}`).join('\n');
  const start = async (identity: string, args: string[]): Promise<OperatorProcess> => {
    const op = await spawnOperator({ kubeconfig: cluster.kubeconfigPath, redisUrl: redis.url, identity, leaseNamespace: NS, httpToken, args });
    operators.push(op);
    return op;
  };
  const metricsPage = async (op: OperatorProcess): Promise<string> => {
    const response = await fetch(`http://127.0.0.1:${op.port}/metrics`, { headers: bearer(httpToken), signal: AbortSignal.timeout(5000) });
    assert.equal(response.status, 200, 'metrics answer (the access review is cached from before the outage)');
    return response.text();
  };

  before(async () => {
    [{ cluster, kc }, redis] = await Promise.all([startClusterWithCrd(CLUSTER), startRedis()]);
    probes = new TestProbes(kc, NS);
    queueRedis = new Redis(redis.url, { maxRetriesPerRequest: null });
    queueRedis.on('error', () => undefined); // Redis is stopped below
    queue = new Queue(CAPTURE_QUEUE, { connection: queueRedis });
    queue.on('error', () => undefined);
    [httpToken] = await Promise.all([
      testReaderToken(kc),
      runPod(cluster, { name: 'leaky', labels: { app: 'shutdown' }, path: 'test/targets/leaky' }),
      // Answers nothing until the client gives up: each round lasts the probe's timeout.
      runPod(cluster, { name: 'slow', labels: { app: 'shutdown' }, path: 'test/targets/badpprof', args: ['-mode', 'slow'] }),
    ]);
  });

  after(async () => {
    for (const op of operators) await op.kill('SIGKILL');
    await queue?.close().catch(() => undefined);
    queueRedis?.disconnect();
    await redis?.stop();
    await stopCluster(CLUSTER);
  });

  test('SIGTERM with everything reachable: the running round finishes, the lease is released, exit code 0', async (t) => {
    const op = await start('graceful', ['--shutdown-timeout', '20s']);
    await waitFor('graceful to lead', async () => (await op.leader()) === 1, 30_000, 250);
    await probes.create('rounds', { selector: { matchLabels: { app: 'shutdown' } }, pprof: { timeout: '4s' } });
    // A round is under way: the slow pod holds it for its 4 s timeout.
    const active = await waitFor('a round in progress', async () => (await queue.getActive()).find((j) => j.data.name === 'rounds'), 30_000, 100).catch((err: Error) =>
      assert.fail(`${err.message}\n${diagnostics()}`),
    );
    const signalledAt = Date.now();
    op.signal('SIGTERM');
    const exit = await op.exited;
    const stopMs = exit.at - signalledAt;
    t.diagnostic(`graceful stop with a round running took ${stopMs} ms`);
    assert.equal(exit.code, 0, diagnostics());
    assert.ok(stopMs < 20_000, `stopped in ${stopMs} ms`);
    const job = await queue.getJob(active.id as string);
    assert.ok(job?.finishedOn, 'the running round was finished, not abandoned');
    assert.equal(job.failedReason, undefined);
    assert.equal(job.returnvalue, 'captured');
    const lease = await kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: LEASE, namespace: NS });
    assert.equal(lease.spec?.holderIdentity, undefined, 'the lease was released for the next leader');
    const stopped = logLines(op).find((l) => l.msg === 'operator stopped');
    assert.ok(stopped && typeof stopped.elapsedMs === 'number');
  });

  test('Redis and the API server gone: a handful of lines a minute, every error counted, SIGTERM exits within the deadline', async (t) => {
    const op = await start('outage', ['--shutdown-timeout', '5s', '--auth-cache-ttl', '10m', '--resync-interval', '5s']);
    await waitFor('outage to lead', async () => (await op.leader()) === 1, 30_000, 250);
    await waitFor('a round by this operator', async () => logLines(op).some((l) => l.msg === 'capture round done'), 30_000, 250).catch((err: Error) =>
      assert.fail(`${err.message}\n${diagnostics()}`),
    );
    const before = await metricsPage(op);
    assert.deepEqual(
      samples(before, 'mapleak_dependency_reachable').map((s) => [s.labels.dependency, s.value]).sort(),
      [
        ['kubernetes', 1],
        ['redis', 1],
      ],
    );
    // The API server goes first: rounds still run (Redis is there) and fail on it, quietly.
    const outageAt = Date.now();
    apiserverStopped = true;
    await stopApiserver(cluster);
    await waitFor(
      'a round failed on the missing API server, and counted',
      async () => samples(await metricsPage(op), 'mapleak_connection_errors_total').some((s) => s.labels.component === 'capture-round' && s.value > 0),
      30_000,
      500,
    ).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
    await redis.stop();
    await sleep(OUTAGE_WINDOW_MS);
    const during = logLines(op).filter((l) => Date.parse(l.time) >= outageAt && Date.parse(l.time) < outageAt + OUTAGE_WINDOW_MS);
    const byMessage = new Map<string, number>();
    for (const line of during) byMessage.set(line.msg, (byMessage.get(line.msg) ?? 0) + 1);
    t.diagnostic(`${during.length} log lines in the first minute of the outage: ${JSON.stringify(Object.fromEntries(byMessage))}`);
    assert.ok(during.length <= MAX_LINES_PER_MINUTE, `${during.length} lines in a minute:\n${during.map((l) => JSON.stringify(l)).join('\n')}`);
    assert.ok(during.some((l) => l.msg === 'redis unreachable'), diagnostics());
    assert.ok(during.some((l) => l.msg === 'kubernetes unreachable'), diagnostics());

    const page = await metricsPage(op);
    const errors = samples(page, 'mapleak_connection_errors_total');
    const total = errors.reduce((sum, s) => sum + s.value, 0);
    const components = new Set(errors.filter((s) => s.value > 0).map((s) => s.labels.component));
    t.diagnostic(`${total} connection errors counted: ${JSON.stringify(errors.map((s) => `${s.labels.component}/${s.labels.kind}=${s.value}`))}`);
    assert.ok(total > during.length * 3, `far more errors counted (${total}) than logged (${during.length})`);
    for (const component of ['store', 'leader-election', 'capture-round']) assert.ok(components.has(component), `errors of ${component} counted`);
    assert.ok(components.has('queue') || components.has('worker'), 'errors of the BullMQ connections counted');
    assert.ok(errors.every((s) => /^(E[A-Z_]+|UND_ERR_\w+|http-\w+|timeout|closed|other)$/.test(s.labels.kind ?? '')), 'kinds are a fixed set');
    assert.deepEqual(
      samples(page, 'mapleak_dependency_reachable').map((s) => [s.labels.dependency, s.value]).sort(),
      [
        ['kubernetes', 0],
        ['redis', 0],
      ],
    );

    const signalledAt = Date.now();
    op.signal('SIGTERM');
    const exit = await op.exited;
    const stopMs = exit.at - signalledAt;
    t.diagnostic(`stop with Redis and the API server gone took ${stopMs} ms (deadline 5000 ms)`);
    assert.ok(stopMs < 5000 + 1500, `exited ${stopMs} ms after SIGTERM`);
    assert.equal(exit.code, 1, 'the deadline forced the end');
    const forced = logLines(op).find((l) => l.msg === 'shutdown deadline passed: connections force-closed');
    assert.ok(forced, diagnostics());
    t.diagnostic(`not finished at the deadline: ${JSON.stringify(forced.unfinished)}`);
    assert.ok(Array.isArray(forced.unfinished) && forced.unfinished.length > 0, `says what did not finish: ${JSON.stringify(forced)}`);
    assert.equal(forced.redisReachable, false);
  });

  test('a second SIGTERM during a stop that cannot finish exits at once with 143', async (t) => {
    // The API server comes back (the operator must start and answer), Redis stays gone: the graceful part waits on it.
    if (apiserverStopped) await resumeApiserver(cluster);
    else await redis.stop();
    const op = await start('impatient', ['--shutdown-timeout', '60s']);
    op.signal('SIGTERM');
    await waitFor('the stop to begin', async () => logLines(op).some((l) => l.msg === 'operator stopping'), 5000, 50);
    await sleep(1500);
    assert.equal(await Promise.race([op.exited.then(() => 'exited'), sleep(0, 'running')]), 'running', 'the graceful part is still waiting on Redis');
    const secondAt = Date.now();
    op.signal('SIGTERM');
    const exit = await op.exited;
    t.diagnostic(`exited ${exit.at - secondAt} ms after the second SIGTERM`);
    assert.ok(exit.at - secondAt < 1000, `exited ${exit.at - secondAt} ms after the second signal`);
    assert.equal(exit.code, 128 + 15);
    assert.ok(logLines(op).some((l) => l.msg === 'second signal: exiting now, without finishing the stop'));
  });
});

// Failover soak (a tool, not part of the suite): many SIGKILLs of the primary
// that holds the queue, each on a fresh Redis Cluster (or sentinel set), with
// the operator's connection settings and BullMQ Worker settings, job
// schedulers as the controller makes them, and no stall watchdog. Per kill
// it prints the failover's own time (polled apart from the worker), when the
// worker took its first job after the kill, and how long after the
// failover's end that was; a worker that takes none within 30 s is wedged.
// The kill comes at a random moment of the schedule, so the blocking read in
// flight has any remaining timeout.
//
//   npm run build && node dist/test/redis/failover-soak.js --mode cluster --kills 20 --every 2000
//
// --ioredis-ready-check puts back the cluster ready check that
// src/queue/connection.ts turns off, to see the wedge it causes.
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue, Worker } from 'bullmq';
import { Cluster } from 'ioredis';
import { redisConnection, type RedisConfig } from '../../src/queue/connection.js';
import { CAPTURE_JOB, CAPTURE_QUEUE, queuePrefix } from '../../src/queue/names.js';
import { captureWorkerOptions } from '../../src/worker/worker.js';
import { startRedisCluster, startSentinelSet, type RedisNode } from '../cluster/redis.js';

const { values } = parseArgs({ options: { mode: { type: 'string', default: 'cluster' }, kills: { type: 'string', default: '10' }, every: { type: 'string', default: '2000' }, 'ioredis-ready-check': { type: 'boolean', default: false } } });
const mode = values.mode === 'sentinel' ? 'sentinel' : 'cluster';
const kills = Number(values.kills);
const everyMs = Number(values.every);
const PROBES = 4;
const WEDGED_AFTER_MS = 30_000;

interface Outcome {
  failoverMs: number;
  /** Kill to the first job taken after it; undefined: wedged. */
  recoveryMs?: number;
}

/** A topology with its primary to kill and a check that its replica has taken over. */
interface Target {
  config: RedisConfig;
  victim: RedisNode;
  promoted(): Promise<boolean>;
  stop(): Promise<void>;
}

async function startTarget(): Promise<Target> {
  if (mode === 'sentinel') {
    const set = await startSentinelSet({ downAfterMs: 1000 });
    const replica = `127.0.0.1:${set.replica.port}`;
    return {
      config: { mode: 'sentinel', sentinels: set.sentinels.map((s) => ({ host: s.host, port: s.port })), masterName: set.masterName, tls: false, password: set.password, sentinelPassword: set.sentinelPassword },
      victim: set.primary,
      promoted: async () => (await set.currentMaster()) === replica,
      stop: set.stop,
    };
  }
  const set = await startRedisCluster({ primaries: 3, nodeTimeoutMs: 1000 });
  const config: RedisConfig = { mode: 'cluster', nodes: set.seeds.split(',').map((a) => ({ host: a.split(':')[0]!, port: Number(a.split(':')[1]) })), tls: false, password: set.password };
  // The queue's keys share the prefix's hash tag: find the primary serving that slot.
  const probe = redisConnection(config, 'worker');
  probe.on('error', () => undefined);
  const slot = Number(await probe.call('CLUSTER', 'KEYSLOT', `${queuePrefix('cluster')}:${CAPTURE_QUEUE}:meta`));
  probe.disconnect();
  const owner = (await set.primaries()).find((p) => p.slots.some(([from, to]) => slot >= from && slot <= to))!;
  const replica = await set.replicaOf(owner.address);
  return {
    config,
    victim: owner.node,
    promoted: async () => (await set.primaries()).some((p) => p.address === `${replica.host}:${replica.port}`),
    stop: set.stop,
  };
}

async function oneKill(): Promise<Outcome> {
  const target = await startTarget();
  const prefix = queuePrefix(mode);
  const queueConnection = redisConnection(target.config, 'worker');
  const workerConnection = redisConnection(target.config, 'worker');
  for (const c of [queueConnection, workerConnection]) c.on('error', () => undefined);
  // BullMQ's blocking connection is a duplicate of this client, so it inherits the option.
  if (values['ioredis-ready-check'] && workerConnection instanceof Cluster) workerConnection.options.enableReadyCheck = true;
  const queue = new Queue(CAPTURE_QUEUE, { connection: queueConnection, prefix });
  queue.on('error', () => undefined);
  const taken: number[] = [];
  const worker = new Worker(
    CAPTURE_QUEUE,
    async () => {
      taken.push(Date.now());
      await sleep(200 + Math.random() * 400); // a round's own time
    },
    { ...captureWorkerOptions(4, prefix), connection: workerConnection },
  );
  worker.on('error', () => undefined);
  try {
    for (let i = 0; i < PROBES; i++) await queue.upsertJobScheduler(`soak/p${i}`, { every: everyMs }, { name: CAPTURE_JOB, data: { namespace: 'soak', name: `p${i}`, uid: `u${i}` } });
    while (taken.length < 2 * PROBES) await sleep(20);
    const seen = taken.length;
    while (taken.length === seen) await sleep(5);
    await sleep(Math.random() * everyMs);
    const killedAt = Date.now();
    await target.victim.kill();
    let failoverMs = 0;
    while (!(await target.promoted().catch(() => false))) await sleep(50);
    failoverMs = Date.now() - killedAt;
    while (!taken.some((t) => t > killedAt) && Date.now() - killedAt < WEDGED_AFTER_MS) await sleep(20);
    const first = taken.find((t) => t > killedAt);
    return { failoverMs, ...(first ? { recoveryMs: first - killedAt } : {}) };
  } finally {
    await Promise.race([worker.close(true), sleep(3000)]);
    await Promise.race([queue.close(), sleep(3000)]);
    queueConnection.disconnect();
    workerConnection.disconnect();
    await target.stop();
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const range = (xs: number[]): string => (xs.length ? `${Math.min(...xs)}-${Math.max(...xs)} ms (median ${median(xs)})` : 'none');

const outcomes: Outcome[] = [];
for (let i = 1; i <= kills; i++) {
  const outcome = await oneKill();
  outcomes.push(outcome);
  const beyond = outcome.recoveryMs === undefined ? undefined : outcome.recoveryMs - outcome.failoverMs;
  console.log(`kill ${i}/${kills} (${mode}): failover ${outcome.failoverMs} ms; ${outcome.recoveryMs === undefined ? `WEDGED: no job taken within ${WEDGED_AFTER_MS} ms` : `first job taken ${outcome.recoveryMs} ms after the kill, ${beyond} ms after the failover`}`);
}
const recovered = outcomes.filter((o): o is Required<Outcome> => o.recoveryMs !== undefined);
console.log(
  `${mode}${values['ioredis-ready-check'] ? ' (with the ioredis ready check)' : ''}, every ${everyMs} ms: ${kills} kills, ${kills - recovered.length} wedged; failover ${range(outcomes.map((o) => o.failoverMs))}; ` +
    `first job after the kill ${range(recovered.map((o) => o.recoveryMs))}; after the failover's end ${range(recovered.map((o) => o.recoveryMs - o.failoverMs))}`,
);
process.exit(kills - recovered.length === 0 ? 0 : 1);

/**
 * Per-namespace shares of worker slots (src/worker/namespace-slots.ts) on a
 * real Redis: two NamespaceSlots with clients of their own stand for two
 * worker replicas, and a child process holding leases stands for a worker
 * that is killed.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { DelayedError, Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { jsonLogger } from '../../src/observability/log.js';
import { OperatorMetrics } from '../../src/observability/metrics.js';
import type { CaptureJobData } from '../../src/queue/names.js';
import { DeferredRounds } from '../../src/worker/deferred-rounds.js';
import { defaultRoundsPerNamespace, NamespaceSlots } from '../../src/worker/namespace-slots.js';
import { oldestOverdueMs } from '../../src/worker/worker.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { repoPath } from '../support/paths.js';
import { waitFor } from '../support/wait.js';

describe('namespace slots: a share of the worker slots per namespace, over all replicas', () => {
  let redis: RedisServer;
  const clients: Redis[] = [];
  const client = (): Redis => {
    const c = new Redis(redis.url, { maxRetriesPerRequest: null });
    clients.push(c);
    return c;
  };

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const c of clients) c.disconnect();
    await redis?.stop();
  });

  test('the default share is half of a worker’s slots, rounded up', () => {
    assert.deepEqual([1, 2, 3, 4, 8].map(defaultRoundsPerNamespace), [1, 1, 2, 2, 4]);
  });

  test("two replicas together never run more than the namespace's share; another namespace is not counted against it", async () => {
    const one = new NamespaceSlots({ client: client(), perNamespace: 2 });
    const two = new NamespaceSlots({ client: client(), perNamespace: 2 });
    try {
      const first = await one.acquire('team-a', 'job-1');
      const second = await two.acquire('team-a', 'job-2');
      assert.ok(first && second, 'the share is 2');
      assert.equal(await one.acquire('team-a', 'job-3'), undefined, 'a third round of team-a on replica one waits');
      assert.equal(await two.acquire('team-a', 'job-4'), undefined, 'and on replica two');
      assert.ok(await two.acquire('team-b', 'job-5'), "team-b's round runs meanwhile");
      assert.equal(await one.active('team-a'), 2);
      // The same round asking again (a retried fetch) keeps its one slot.
      assert.ok(await one.acquire('team-a', 'job-1'), 'a holder asking again keeps its lease');
      assert.equal(await one.active('team-a'), 2);
      await first.release();
      assert.equal(await one.active('team-a'), 1, 'released at once, not at lease expiry');
      assert.ok(await two.acquire('team-a', 'job-3'), 'the freed slot is taken from the other replica');
      assert.equal(await two.acquire('team-a', 'job-4'), undefined);
    } finally {
      one.close();
      two.close();
    }
  });

  test('a grant that comes after the caller gave up is given back, never held', async () => {
    const admin = client();
    const slots = new NamespaceSlots({ client: client(), perNamespace: 1 });
    try {
      // Redis holds every write for 600 ms: the caller waits 100.
      await admin.call('CLIENT', 'PAUSE', '600', 'WRITE');
      await assert.rejects(slots.acquire('team-e', 'late', 100), /no answer from Redis within 100 ms/);
      await new Promise((resolve) => setTimeout(resolve, 900));
      assert.equal(await slots.active('team-e'), 0, 'the late grant was taken back');
      assert.ok(await slots.acquire('team-e', 'next'), 'the share is whole');
    } finally {
      slots.close();
    }
  });

  test("the stall watchdog reads a put-back job's new time, not its creation plus its last delay", async () => {
    const queue = new Queue('overdue-check', { connection: client() });
    try {
      const added = await queue.add('round', {});
      const createdAt = added.timestamp;
      // Taken 2 s after it was added, and put back for 3 s, as a deferred round is.
      await new Promise((resolve) => setTimeout(resolve, 2000));
      let putBackAt = 0;
      const worker = new Worker(
        'overdue-check',
        async (job: Job, token?: string) => {
          putBackAt = Date.now();
          await job.moveToDelayed(putBackAt + 3000, token ?? '');
          throw new DelayedError();
        },
        { connection: client() },
      );
      while (putBackAt === 0) await new Promise((resolve) => setTimeout(resolve, 50));
      await worker.close();
      const stale = await queue.getJob(added.id ?? '');
      assert.equal(stale?.attemptsMade, 0, 'not an attempt');
      // Its timestamp plus its delay (3 s) is long past by now + 2 s; its due time is not.
      const check = putBackAt + 2000;
      assert.ok(createdAt + (stale?.delay ?? 0) < check, 'the stale reading would call it overdue');
      assert.equal(await oldestOverdueMs(queue, check), 0);
      assert.ok(Math.abs((await oldestOverdueMs(queue, putBackAt + 4000)) - 1000) <= 50, 'overdue from its new time on');
    } finally {
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
    }
  });

  test('a deferral whose job lock was lost meanwhile costs no attempt: the stalled check gives the job back, and its next deferral holds', async () => {
    const queue = new Queue<CaptureJobData>('lost-lock', { connection: client() });
    const redisClient = client();
    const metrics = new OperatorMetrics(false);
    const logged: string[] = [];
    // Not called here: RoundsDeferred is written only for a round that waited a whole interval.
    const probes = { updateStatus: () => Promise.reject(new Error('no probe status in this test')) };
    const fairness = new DeferredRounds({ probes, metrics, log: jsonLogger({}, 'debug', (line) => logged.push(line)) }, 1);
    const data: CaptureJobData = { namespace: 'team-a', name: 'held', uid: 'u1' };
    const errors: string[] = [];
    let starts = 0;
    try {
      // As the scheduler adds them: three attempts with backoff, so a failed one would wait delayed with attemptsMade 1.
      const added = await queue.add('round', data, { attempts: 3, backoff: { type: 'exponential', delay: 2000 } });
      const worker = new Worker<CaptureJobData, 'superseded'>(
        'lost-lock',
        async (job, token) => {
          // The first time, the lock lapses before the job is put back (an event loop stalled past lockDuration).
          if (++starts === 1) await redisClient.del(`${queue.qualifiedName}:${job.id}:lock`);
          return fairness.defer(job, token);
        },
        { connection: client(), stalledInterval: 500, maxStalledCount: 1 },
      );
      worker.on('error', (err) => errors.push(err.message));
      const put = await waitFor('the job put back after its second start', async () => {
        const job = await queue.getJob(added.id ?? '');
        return starts >= 2 && (await job?.getState()) === 'delayed' ? job : undefined;
      }, 15_000);
      await worker.close();
      assert.ok(errors.some((message) => /Missing lock for job/.test(message)), `the first put-back was refused for the lost lock: ${errors.join('; ')}`);
      assert.equal(put.attemptsMade, 0, 'not an attempt, though the first deferral failed');
      assert.equal(put.failedReason, undefined);
      assert.equal(put.stalledCounter, 1, 'given back by the stalled check');
      assert.equal(put.attemptsStarted, 2);
      assert.match(await metrics.registry.metrics(), /^mapleak_rounds_deferred_total\{namespace="team-a"\} 1$/m);
    } finally {
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
    }
  });

  test("a round whose worker was killed in it is run to its end: its retry, finding the dead worker's lease still in the share, waits for it instead of being superseded; rounds that never started still are", async () => {
    const EVERY_MS = 1000;
    // The dead worker's job lock (2 s) lapses well before its slot lease (8 s): their timers are their own, as in the operator.
    const LOCK_MS = 2000;
    const LEASE_MS = 8000;
    const namespace = 'team-f';
    const queue = new Queue<CaptureJobData>('killed-round', { connection: client() });
    const data: CaptureJobData = { namespace, name: 'probe', uid: 'u1' };
    const module = pathToFileURL(repoPath('dist', 'src', 'worker', 'namespace-slots.js')).href;
    // A worker as worker.ts runs one: it takes a slot for the round, then is killed in the middle of it.
    const script = `
      import { Worker } from 'bullmq';
      import { Redis } from 'ioredis';
      import { NamespaceSlots } from ${JSON.stringify(module)};
      const slots = new NamespaceSlots({ client: new Redis(${JSON.stringify(redis.url)}), perNamespace: 1, leaseMs: ${LEASE_MS} });
      new Worker('killed-round', async (job) => {
        const lease = await slots.acquire(job.data.namespace, job.id);
        console.log(JSON.stringify({ id: job.id, lease: Boolean(lease) }));
        await new Promise(() => {});
      }, { connection: new Redis(${JSON.stringify(redis.url)}, { maxRetriesPerRequest: null }), lockDuration: ${LOCK_MS}, stalledInterval: 500 });
    `;
    const metrics = new OperatorMetrics(false);
    // Not reached for the retried round (it is never marked skipped); a superseded one's condition write just fails here.
    const probes = { updateStatus: () => Promise.reject(new Error('no probe status in this test')) };
    const fairness = new DeferredRounds({ probes, metrics, log: jsonLogger({}, 'debug', () => undefined) }, 1);
    const slots = new NamespaceSlots({ client: client(), perNamespace: 1, leaseMs: LEASE_MS });
    const starts: { id: string; stalledCounter: number; granted: boolean; at: number }[] = [];
    let child: ChildProcess | undefined;
    let worker: Worker<CaptureJobData, string> | undefined;
    try {
      await queue.upsertJobScheduler(`${namespace}/probe`, { every: EVERY_MS }, { name: 'round', data });
      child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: repoPath(), stdio: ['ignore', 'pipe', 'inherit'] });
      const [line] = (await once(child.stdout as NodeJS.ReadableStream, 'data')) as [Buffer];
      const taken = JSON.parse(line.toString().trim()) as { id: string; lease: boolean };
      assert.ok(taken.lease, 'the killed round held its slot');
      child.kill('SIGKILL');
      await once(child, 'exit');
      const killedAt = Date.now();
      // The survivor's processor is worker.ts's: a slot first, else the job is put back or superseded.
      worker = new Worker<CaptureJobData, string>(
        'killed-round',
        async (job, token) => {
          const lease = await slots.acquire(job.data.namespace, job.id ?? '');
          starts.push({ id: job.id ?? '', stalledCounter: job.stalledCounter, granted: lease !== undefined, at: Date.now() });
          if (!lease) return fairness.defer(job, token);
          try {
            return 'ran';
          } finally {
            await lease.release();
          }
        },
        { connection: client(), stalledInterval: 500 },
      );
      worker.on('error', () => undefined);
      const done = await waitFor('the killed round to finish', async () => {
        const job = await queue.getJob(taken.id);
        return job?.finishedOn ? job : undefined;
      }, 30_000, 100);
      const retries = starts.filter((s) => s.id === taken.id);
      const superseded = (await queue.getCompleted()).filter((job) => job.returnvalue === 'superseded');
      const facts = JSON.stringify({ returnvalue: done.returnvalue, failedReason: done.failedReason, retries: retries.map((r) => ({ ...r, at: r.at - killedAt })) });
      assert.equal(done.stalledCounter, 1, `given back by the stalled check: ${facts}`);
      assert.equal(retries[0]?.granted, false, `its retry came while the dead worker's lease still filled the share: ${facts}`);
      assert.equal(done.returnvalue, 'ran', `run to its end, not superseded: ${facts}`);
      assert.equal(retries.filter((r) => r.granted).length, 1, `run once: ${facts}`);
      assert.ok(superseded.length >= 1, 'rounds that never started and waited past the next one were dropped for it');
      assert.ok(superseded.every((job) => job.stalledCounter === 0));
    } finally {
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await worker?.close(true);
      slots.close();
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
    }
  });

  test("a live worker keeps its slots past the lease; a killed worker's come back once its leases lapse", async () => {
    const LEASE_MS = 1500;
    const module = pathToFileURL(repoPath('dist', 'src', 'worker', 'namespace-slots.js')).href;
    // A worker process that takes both of team-c's slots and then only renews them.
    const script = `
      import { Redis } from 'ioredis';
      import { NamespaceSlots } from ${JSON.stringify(module)};
      const slots = new NamespaceSlots({ client: new Redis(${JSON.stringify(redis.url)}), perNamespace: 2, leaseMs: ${LEASE_MS} });
      const held = [await slots.acquire('team-c', 'a'), await slots.acquire('team-c', 'b')];
      console.log(held.every(Boolean) ? 'held' : 'refused');
      setInterval(() => {}, 1000);
    `;
    const child: ChildProcess = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: repoPath(), stdio: ['ignore', 'pipe', 'inherit'] });
    const survivor = new NamespaceSlots({ client: client(), perNamespace: 2, leaseMs: LEASE_MS });
    try {
      const [line] = (await once(child.stdout as NodeJS.ReadableStream, 'data')) as [Buffer];
      assert.equal(line.toString().trim(), 'held');
      // Three lease lifetimes: the child renews every third of one.
      await new Promise((resolve) => setTimeout(resolve, 3 * LEASE_MS));
      assert.equal(await survivor.acquire('team-c', 'c'), undefined, 'the live worker still holds both slots');
      const killedAt = Date.now();
      child.kill('SIGKILL');
      await once(child, 'exit');
      while (!(await survivor.acquire('team-c', 'c'))) {
        assert.ok(Date.now() - killedAt < LEASE_MS + 2000, 'the dead worker’s slots lapse within about one lease');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const waited = Date.now() - killedAt;
      assert.ok(waited <= LEASE_MS + 500, `slot back ${waited} ms after the kill (lease ${LEASE_MS} ms)`);
      assert.ok(await survivor.acquire('team-c', 'd'), 'both of them');
    } finally {
      survivor.close();
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});

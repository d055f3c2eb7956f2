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
import { defaultRoundsPerNamespace, NamespaceSlots, SLOT_LEASE_MS } from '../../src/worker/namespace-slots.js';
import { oldestOverdueMs, runInNamespaceShare } from '../../src/worker/worker.js';
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

  test("a round whose worker was killed in it is run to its end at once: its retry takes over the lease the dead worker left for it, which still fills the share for every other round", async () => {
    const EVERY_MS = 1000;
    // The dead worker's job lock (2 s) lapses long before its slot lease (the operator's 30 s): their timers are their own.
    const LOCK_MS = 2000;
    const LEASE_MS = SLOT_LEASE_MS;
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
    // A superseded round's condition write just fails here.
    const probes = { updateStatus: () => Promise.reject(new Error('no probe status in this test')) };
    const fairness = new DeferredRounds({ probes, metrics, log: jsonLogger({}, 'debug', () => undefined) }, 1);
    const tookOver: number[] = [];
    const slots = new NamespaceSlots({ client: client(), perNamespace: 1, leaseMs: LEASE_MS, onTakeOver: (_, count) => tookOver.push(count) });
    const starts: { id: string; stalledCounter: number; ran: boolean; at: number }[] = [];
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
      // Fenced: only the same job takes the dead lease over. Another job, resumed or not, waits for it.
      assert.equal(await slots.acquire(namespace, 'another-job', Number.POSITIVE_INFINITY, { resumed: true }), undefined, "a resumed round of another job does not take the dead worker's lease");
      assert.equal(await slots.acquire(namespace, 'a-new-job'), undefined, 'nor does a new round');
      // The survivor's processor is worker.ts's own: a slot first, else the job is put back or superseded.
      worker = new Worker<CaptureJobData, string>(
        'killed-round',
        async (job, token) =>
          runInNamespaceShare(job, token, slots, fairness, async () => {
            starts.push({ id: job.id ?? '', stalledCounter: job.stalledCounter, ran: true, at: Date.now() });
            return 'ran';
          }),
        { connection: client(), stalledInterval: 500 },
      );
      worker.on('error', () => undefined);
      // Well before the dead lease lapses (30 s): a retry that waited it out fails here.
      const done = await waitFor('the killed round to finish', async () => {
        const job = await queue.getJob(taken.id);
        return job?.finishedOn ? job : undefined;
      }, LEASE_MS / 2, 100);
      const retries = starts.filter((s) => s.id === taken.id);
      const facts = JSON.stringify({ returnvalue: done.returnvalue, failedReason: done.failedReason, retries: retries.map((r) => ({ ...r, at: r.at - killedAt })), tookOver });
      assert.equal(done.stalledCounter, 1, `given back by the stalled check: ${facts}`);
      assert.equal(done.returnvalue, 'ran', `run to its end, not superseded: ${facts}`);
      assert.equal(retries.length, 1, `run once: ${facts}`);
      const startedAfterMs = (retries[0]?.at ?? Number.POSITIVE_INFINITY) - killedAt;
      assert.ok(startedAfterMs < LOCK_MS + 3000, `the retry ran ${startedAfterMs} ms after the kill: within seconds of the job lock's lapse (${LOCK_MS} ms), not the lease's (${LEASE_MS} ms): ${facts}`);
      assert.deepEqual(tookOver, [1], `it took over the one lease the dead worker left: ${facts}`);
      // Every other round that ran, ran after the retry had taken the lease over (and given it back).
      const before = starts.filter((s) => s.id !== taken.id && s.at < (retries[0]?.at ?? 0));
      assert.deepEqual(before, [], `no other round got the dead worker's slot: ${facts}`);
      assert.equal(await slots.active(namespace), 0, 'the share is whole again once the retry ends');
    } finally {
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await worker?.close(true);
      slots.close();
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
    }
  });

  test("a lease taken over by its job's new worker stays taken: the worker that lost the job does not renew it back, and its release frees nothing of the new worker's", async () => {
    const LEASE_MS = 900;
    const lost = new NamespaceSlots({ client: client(), perNamespace: 2, leaseMs: LEASE_MS });
    const next = new NamespaceSlots({ client: client(), perNamespace: 2, leaseMs: LEASE_MS });
    try {
      // A worker whose event loop stalled past its job lock still holds a lease for the job; another runs a round of another job.
      const stale = await lost.acquire('team-g', 'repeat:probe:1000');
      const other = await lost.acquire('team-g', 'repeat:other:1000');
      assert.ok(stale && other);
      assert.equal(await next.acquire('team-g', 'repeat:probe:1000'), undefined, 'a job that did not come back from the stalled check takes nothing over');
      assert.equal(await next.acquire('team-g', 'probe:1000', Number.POSITIVE_INFINITY, { resumed: true }), undefined, 'a job id that only ends like it takes nothing over');
      const resumed = await next.acquire('team-g', 'repeat:probe:1000', Number.POSITIVE_INFINITY, { resumed: true });
      assert.ok(resumed, "the job's retry takes over its own lease, and only it: the other job's lease stays");
      assert.equal(await next.active('team-g'), 2);
      // Three renewals of each: the stale holder's lease is not put back beside the new one.
      await new Promise((resolve) => setTimeout(resolve, LEASE_MS + 300));
      assert.equal(await next.active('team-g'), 2, 'one lease per running job: the new worker\'s and the other job\'s, both renewed');
      assert.equal(await next.acquire('team-g', 'a-third-job'), undefined, 'the share is full');
      await stale.release();
      assert.equal(await next.active('team-g'), 2, "the stale holder's release does not free the new worker's slot");
      await resumed.release();
      assert.equal(await next.active('team-g'), 1);
    } finally {
      lost.close();
      next.close();
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

import { Queue, Worker, type Job, type WorkerOptions } from 'bullmq';
import { Cluster } from 'ioredis';
import type { RedisClient } from '../queue/connection.js';
import { isConnectionError, type ConnectionErrorReporter } from '../observability/connection-errors.js';
import { CAPTURE_QUEUE, type CaptureJobData } from '../queue/names.js';
import { runCaptureRound, type CaptureRoundDeps, type RoundOutcome } from './capture-round.js';
import type { TriggerWatcher } from './trigger-watch.js';
import { asTenant } from './decode-gate.js';
import { NamespaceSlots, type SlotLease } from './namespace-slots.js';
import { DeferredRounds, resumedRound } from './deferred-rounds.js';

export interface CaptureWorkerOptions {
  connection: RedisClient;
  /** BullMQ key prefix (queuePrefix(mode): a hash tag on a Redis Cluster). */
  prefix?: string;
  /** Probes processed at once by this process. */
  concurrency: number;
  /** How often metric series of deleted probes are looked for (default 60 s). */
  metricsSweepMs?: number;
  /** Connection errors go here (logged with backoff, counted) instead of one line each. */
  connectionErrors?: ConnectionErrorReporter;
  /** Follows the pods of probes with spec.triggers between rounds (closed with the worker). */
  triggers?: TriggerWatcher;
  /**
   * Reads the queue for the stall watchdog: best a client of its own (the
   * operator's queue), so a wedged worker connection cannot blind it.
   */
  queue?: Queue;
  /** How often the stall watchdog looks (default a third of the stall bound). */
  stallCheckMs?: number;
  /**
   * Rounds one namespace may run at once over every worker on this Redis
   * (--max-active-rounds-per-namespace; the operator's default is
   * defaultRoundsPerNamespace(concurrency)). Unset: no share, first come,
   * first served.
   */
  maxActiveRoundsPerNamespace?: number;
  /** Lifetime of a round's slot lease (default SLOT_LEASE_MS); tests shorten it. */
  slotLeaseMs?: number;
}

/** What a job ends with: the round's outcome, or `superseded` (it waited for its namespace's share until the probe's next round was due, and was dropped for it). */
export type JobOutcome = RoundOutcome | 'superseded';

/** The worker as the operator holds it: the BullMQ Worker inside may be replaced by the stall watchdog. */
export interface CaptureWorker {
  /** The BullMQ Worker running now. */
  readonly current: Worker<CaptureJobData, JobOutcome>;
  /** Times the watchdog recreated the BullMQ Worker. */
  readonly restarts: number;
  close(force?: boolean): Promise<void>;
}

const LOCK_DURATION_MS = 30_000;
/** Longest wait for Redis to grant or take back a slot lease (a round's own Redis calls wait as long as they must). */
const SLOT_CALL_TIMEOUT_MS = 5000;
const STALLED_INTERVAL_MS = 15_000;

/**
 * How long jobs may be overdue while this worker, with a free slot, takes
 * none, before the watchdog calls its fetch loop wedged. A healthy idle
 * worker wakes at least every drainDelay (5 s) plus BullMQ's own 1 s
 * blocking-read watchdog, and a failover costs runRetryDelay (1 s) per
 * retry; BullMQ itself gives a job's worker stalledInterval before it
 * looks at the job's lock. So stalledInterval: three missed wake-ups, and
 * well under lockDuration + stalledInterval (45 s), when BullMQ would give a
 * dead worker's job to another one.
 */
export const STALL_BOUND_MS = STALLED_INTERVAL_MS;

/**
 * The BullMQ side of a worker. A job whose worker died is picked up again
 * once its lock expires (stalled job); its capture id is derived from the
 * job id, so the retry overwrites instead of duplicating. A watchdog
 * recreates the BullMQ Worker when jobs are overdue and it takes none: a last
 * resort, as BullMQ workers can stay "running" with a wedged fetch loop
 * (taskforcesh/bullmq #648, #2466, #3088). The wedge seen here after a
 * cluster primary's SIGKILL (a connect() ioredis never settles) is avoided
 * at its cause in src/queue/connection.ts.
 */
export function startCaptureWorker(options: CaptureWorkerOptions, deps: CaptureRoundDeps): CaptureWorker {
  // Probes this process exports series for: a deleted probe's scheduler is gone,
  // so no job will tell this worker; the sweep does.
  const exported = new Map<string, { namespace: string; name: string; uid: string }>();
  const forget = (namespace: string, name: string): void => {
    exported.delete(`${namespace}/${name}`);
    deps.metrics.forgetProbe(namespace, name);
  };
  const roundDeps: CaptureRoundDeps = {
    ...deps,
    onProbeMetrics: (namespace, name, uid) => {
      exported.set(`${namespace}/${name}`, { namespace, name, uid });
      deps.onProbeMetrics?.(namespace, name, uid);
    },
    ...(options.triggers ? { onTargets: options.triggers.track.bind(options.triggers) } : {}),
  };
  let active = 0;
  let lastTaken = Date.now();
  const slots = options.maxActiveRoundsPerNamespace
    ? new NamespaceSlots({
        client: options.connection,
        perNamespace: options.maxActiveRoundsPerNamespace,
        ...(options.slotLeaseMs ? { leaseMs: options.slotLeaseMs } : {}),
        onTakeOver: (namespace, count) => deps.log.info('a resumed round took over the slot lease its dead worker left', { namespace, count }),
      })
    : undefined;
  const fairness = slots ? new DeferredRounds(deps, slots.perNamespace) : undefined;
  const run = async (job: Job<CaptureJobData>): Promise<RoundOutcome> => {
    // The decode gate serves namespaces in turn: it reads whose work this is from here.
    const outcome = await asTenant(job.data.namespace, () => runCaptureRound({ id: job.id ?? `${job.name}-${job.timestamp}`, data: job.data }, roundDeps));
    if (outcome === 'probe-gone') forget(job.data.namespace, job.data.name);
    if (outcome === 'probe-gone' || outcome === 'suspended') options.triggers?.forget(job.data.namespace, job.data.name);
    return outcome;
  };
  const processor = async (job: Job<CaptureJobData>, token?: string): Promise<JobOutcome> => {
    active++;
    lastTaken = Date.now();
    try {
      if (!slots || !fairness) return await run(job);
      return await runInNamespaceShare(job, token, slots, fairness, run);
    } finally {
      active--;
    }
  };
  const workerOptions = captureWorkerOptions(options.concurrency, options.prefix);
  const reporter = options.connectionErrors;
  const wire = (w: Worker<CaptureJobData, JobOutcome>): Worker<CaptureJobData, JobOutcome> => {
    // A round fails on a connection error only when the API server is away (Redis calls wait for Redis):
    // with the API server gone every probe's every round would log a line.
    w.on('failed', (job, err) => {
      if (reporter && isConnectionError(err)) reporter.failure('kubernetes', 'capture-round', err);
      else deps.log.warn('capture job failed', { job: job?.id, probe: job ? `${job.data.namespace}/${job.data.name}` : undefined, error: err.message });
    });
    w.on('completed', () => {
      reporter?.success('kubernetes', 'capture-round');
      // Completing a job is a write to Redis: a full store has room again.
      reporter?.writesSucceeded();
    });
    w.on('error', (err) => {
      if (reporter && isConnectionError(err)) reporter.failure('redis', 'worker', err);
      else deps.log.error('worker error', { error: err.message });
    });
    return w;
  };
  let worker = wire(new Worker<CaptureJobData, JobOutcome>(CAPTURE_QUEUE, processor, { ...workerOptions, connection: options.connection }));
  // A recreated Worker gets a fresh client too: the wedged part may be either of its connections.
  let ownConnection: RedisClient | undefined;
  let restarts = 0;
  let closing = false;
  const sweep = setInterval(() => {
    void (async () => {
      for (const { namespace, name, uid } of [...exported.values()]) {
        try {
          const probe = await deps.probes.get(namespace, name);
          if (!probe || probe.metadata.uid !== uid) forget(namespace, name);
        } catch {
          // API trouble: try again next sweep.
        }
      }
    })();
  }, options.metricsSweepMs ?? 60_000);
  sweep.unref();
  // BullMQ's blocking connection is a duplicate of this one: back together.
  if (reporter) options.connection.on('ready', () => reporter.success('redis', 'worker'));

  const restart = async (overdueMs: number): Promise<void> => {
    restarts++;
    deps.metrics.workerRestarts.inc({ reason: 'stalled' });
    const old = worker;
    deps.log.warn('worker took no job while jobs are overdue; recreating the BullMQ worker', {
      overdueMs,
      idleMs: Date.now() - lastTaken,
      boundMs: STALL_BOUND_MS,
      running: old.isRunning(),
      blockingClient: blockingClientStatus(old),
      restarts,
    });
    const oldConnection = ownConnection;
    // Force: a wedged worker's graceful close waits on the very command that hangs. A round still
    // running keeps going; if its lock lapses BullMQ runs it again, and the capture id (from the
    // job id) makes that an overwrite, not a duplicate.
    await Promise.race([old.close(true).catch(() => undefined), delay(5000)]);
    oldConnection?.disconnect();
    if (closing) return;
    const fresh = duplicate(options.connection);
    fresh.on('error', () => undefined);
    if (reporter) fresh.on('ready', () => reporter.success('redis', 'worker'));
    ownConnection = fresh;
    lastTaken = Date.now();
    worker = wire(new Worker<CaptureJobData, JobOutcome>(CAPTURE_QUEUE, processor, { ...workerOptions, connection: fresh }));
  };

  const queue = options.queue ?? new Queue(CAPTURE_QUEUE, { connection: options.connection, ...(options.prefix ? { prefix: options.prefix } : {}) });
  const ownsQueue = !options.queue;
  if (ownsQueue) queue.on('error', () => undefined);
  let checking = false;
  const watchdog = setInterval(() => {
    if (checking || closing || active >= options.concurrency) return;
    checking = true;
    void (async () => {
      try {
        const overdueMs = await oldestOverdueMs(queue, Date.now());
        if (overdueMs > STALL_BOUND_MS && Date.now() - lastTaken > STALL_BOUND_MS && active < options.concurrency && !closing) await restart(overdueMs);
      } catch {
        // Redis away: nothing can be fetched anyway; the connection-error reporter says so.
      } finally {
        checking = false;
      }
    })();
  }, options.stallCheckMs ?? Math.round(STALL_BOUND_MS / 3));
  watchdog.unref();

  return {
    get current() {
      return worker;
    },
    get restarts() {
      return restarts;
    },
    async close(force = false) {
      closing = true;
      clearInterval(watchdog);
      clearInterval(sweep);
      options.triggers?.close();
      try {
        await worker.close(force);
      } finally {
        // After the running rounds: a graceful stop keeps renewing their leases until each round releases its own.
        slots?.close();
        if (ownsQueue) await queue.close().catch(() => undefined);
        ownConnection?.disconnect();
      }
    },
  };
}

/**
 * Runs a job's round within its namespace's share of the worker slots: a
 * lease first (a resumed round takes over the one its dead worker left),
 * else the job is put back or superseded (DeferredRounds). The worker's
 * processor, exported for the tests that kill a worker in a round.
 */
export async function runInNamespaceShare<T>(
  job: Job<CaptureJobData>,
  token: string | undefined,
  slots: NamespaceSlots,
  fairness: Pick<DeferredRounds, 'defer' | 'leaseFailed'>,
  run: (job: Job<CaptureJobData>) => Promise<T>,
): Promise<T | 'superseded'> {
  let lease: SlotLease | undefined;
  try {
    // Bounded: a Redis that does not answer must not hold the job (and a slot) until it does.
    lease = await slots.acquire(job.data.namespace, job.id ?? `${job.name}-${job.timestamp}`, SLOT_CALL_TIMEOUT_MS, { resumed: resumedRound(job) });
  } catch (err) {
    // Redis refused the lease (maxmemory, a failover): the round runs unshared rather than not at all; its own writes report the store.
    fairness.leaseFailed(err);
    return await run(job);
  }
  if (!lease) return await fairness.defer(job, token);
  try {
    return await run(job);
  } finally {
    // A release that does not get through lapses with the lease.
    await within(lease.release(), SLOT_CALL_TIMEOUT_MS, 'slot release').catch(() => undefined);
  }
}

/** The BullMQ Worker's settings: one source for the operator's worker and the failover soak (test/redis/failover-soak.ts). */
export function captureWorkerOptions(concurrency: number, prefix?: string): Omit<WorkerOptions, 'connection'> {
  return {
    ...(prefix ? { prefix } : {}),
    concurrency,
    lockDuration: LOCK_DURATION_MS,
    // After a Redis error (a failover) BullMQ waits this long before fetching again; its 15 s
    // default would cost rounds long after the new primary is up.
    runRetryDelay: 1000,
    maxStalledCount: 1,
    stalledInterval: STALLED_INTERVAL_MS,
  };
}

/**
 * How long the most overdue job has waited for a worker: the oldest waiting
 * job since it became due (its timestamp plus its delay), or a delayed job
 * past its time (promoting those is the worker's job too). 0 when none. A
 * delayed job is due at its score in the delayed set (BullMQ keeps the due
 * time × 0x1000 plus a counter there): its timestamp and delay say nothing
 * once a deferral (worker.ts, the namespace share) has put it back.
 */
export async function oldestOverdueMs(queue: Queue, now: number): Promise<number> {
  // The queue runs on the ioredis client the operator gave it (BullMQ types its clients more widely).
  const client = (await queue.backend.client) as unknown as RedisClient;
  const [waiting, soonest] = await Promise.all([queue.getJobs(['waiting', 'prioritized'], 0, 0, true), client.zrange(queue.keys.delayed as string, '0', '0', 'WITHSCORES')]);
  let overdue = 0;
  for (const job of waiting) if (job) overdue = Math.max(overdue, now - (job.timestamp + (job.delay ?? 0)));
  const score = soonest[1];
  if (score !== undefined) overdue = Math.max(overdue, now - Math.floor(Number(score) / 0x1000));
  return overdue;
}

/**
 * The ioredis status of BullMQ's blocking client, for the stall warning:
 * BullMQ keeps it private, so this reads its internals and says "unknown"
 * when a BullMQ version lays them out otherwise.
 */
function blockingClientStatus(worker: Worker): string {
  const internals = worker as unknown as { backend?: { blockingConnection?: { _client?: { status?: unknown } } } };
  const status = internals.backend?.blockingConnection?._client?.status;
  return typeof status === 'string' ? status : 'unknown';
}

/** A new client with the same settings (and, for a cluster, the same seed nodes). */
function duplicate(client: RedisClient): RedisClient {
  // Two branches for the type checker: the two duplicate() signatures do not unify.
  return client instanceof Cluster ? client.duplicate() : client.duplicate();
}

/** `promise`, or a rejection after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer from Redis within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

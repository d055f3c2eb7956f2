import { createHash } from 'node:crypto';
import type { JobSchedulerJson, JobType, Queue } from 'bullmq';
import { durationMs } from '../api/duration.js';
import type { MapLeakProbe } from '../api/types.js';
import { CAPTURE_JOB, schedulerId, type CaptureJobData } from './names.js';

export interface DesiredScheduler {
  id: string;
  every: number;
  offset: number;
  data: CaptureJobData;
}

/** The job scheduler a probe should have; the jitter is a stable per-probe offset. */
export function desiredScheduler(probe: MapLeakProbe): DesiredScheduler {
  const every = durationMs(probe.spec.schedule.interval);
  const jitter = Math.min(durationMs(probe.spec.schedule.jitter ?? '0s'), every - 1);
  const offset = jitter > 0 ? Number.parseInt(createHash('sha256').update(probe.metadata.uid).digest('hex').slice(0, 8), 16) % jitter : 0;
  return {
    id: schedulerId(probe),
    every,
    offset,
    data: {
      namespace: probe.metadata.namespace,
      name: probe.metadata.name,
      uid: probe.metadata.uid,
    },
  };
}

/** Whether a scheduler read from Redis already is what the probe wants. */
export function schedulerMatches(existing: Pick<JobSchedulerJson<CaptureJobData>, 'every' | 'offset' | 'template'>, desired: DesiredScheduler): boolean {
  // Without an offset of ours BullMQ picks one (aligning to the upsert time): any will do then.
  return (
    existing.every === desired.every &&
    (desired.offset === 0 || existing.offset === desired.offset) &&
    JSON.stringify(existing.template?.data) === JSON.stringify(desired.data)
  );
}

export type SchedulerChange = 'created' | 'updated' | 'repaired' | 'unchanged';

/** Job states in which a scheduler's next job is still to run. */
const PENDING = new Set(['delayed', 'waiting', 'prioritized', 'active', 'waiting-children']);

/**
 * Whether a scheduler's next job exists. BullMQ adds a scheduler's next
 * job when it starts the current one; a Redis failover can lose that write
 * (replication is asynchronous), and the scheduler then never fires again
 * although it looks as wanted. Its next job id is `repeat:<id>:<next>`.
 */
export async function schedulerHasNextJob(queue: Queue<CaptureJobData>, scheduler: Pick<JobSchedulerJson<CaptureJobData>, 'key' | 'next'>): Promise<boolean> {
  if (!scheduler.next) return false;
  return PENDING.has(await queue.getJobState(`repeat:${scheduler.key}:${scheduler.next}`));
}

/**
 * Ids of schedulers without a next job (see schedulerHasNextJob), for the
 * resync to send their probes through reconcile: one read of every pending
 * job id, whatever the number of schedulers. Read the schedulers first: a
 * next job that ran in between is a false alarm, which reconcile clears.
 */
export async function stalledSchedulers(queue: Queue<CaptureJobData>, schedulers: readonly Pick<JobSchedulerJson<CaptureJobData>, 'key' | 'next'>[]): Promise<Set<string>> {
  if (schedulers.length === 0) return new Set();
  const pending = new Set(await queue.getRanges([...PENDING] as JobType[], 0, -1));
  return new Set(schedulers.filter((s) => !s.next || !pending.has(`repeat:${s.key}:${s.next}`)).map((s) => s.key));
}

/** Level-based: creates or updates the scheduler only when it differs from what the probe wants, or lost its next job. */
export async function ensureScheduler(queue: Queue<CaptureJobData>, desired: DesiredScheduler): Promise<SchedulerChange> {
  const existing = await queue.getJobScheduler(desired.id);
  const matches = existing !== undefined && schedulerMatches(existing, desired);
  if (matches && (await schedulerHasNextJob(queue, existing))) return 'unchanged';
  await queue.upsertJobScheduler(
    desired.id,
    { every: desired.every, ...(desired.offset > 0 ? { offset: desired.offset } : {}) },
    {
      name: CAPTURE_JOB,
      data: desired.data,
      opts: {
        attempts: 3,
        backoff: { type: 'exponential', delay: 2000 },
        removeOnComplete: { count: 100 },
        removeOnFail: { count: 500 },
      },
    },
  );
  return matches ? 'repaired' : existing ? 'updated' : 'created';
}

export async function removeScheduler(queue: Queue<CaptureJobData>, id: string): Promise<boolean> {
  return queue.removeJobScheduler(id);
}

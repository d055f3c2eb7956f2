import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { CAPTURE_QUEUE, type CaptureJobData } from '../queue/names.js';
import { runCaptureRound, type CaptureRoundDeps, type RoundOutcome } from './capture-round.js';

export interface CaptureWorkerOptions {
  connection: Redis;
  /** Probes processed at once by this process. */
  concurrency: number;
}

/**
 * The BullMQ side of a worker. A job whose worker died is picked up again
 * once its lock expires (stalled job); its capture id is derived from the
 * job id, so the retry overwrites instead of duplicating.
 */
export function startCaptureWorker(options: CaptureWorkerOptions, deps: CaptureRoundDeps): Worker<CaptureJobData, RoundOutcome> {
  const worker = new Worker<CaptureJobData, RoundOutcome>(
    CAPTURE_QUEUE,
    (job: Job<CaptureJobData>) => runCaptureRound({ id: job.id ?? `${job.name}-${job.timestamp}`, data: job.data }, deps),
    {
      connection: options.connection,
      concurrency: options.concurrency,
      lockDuration: 30_000,
      maxStalledCount: 1,
      stalledInterval: 15_000,
    },
  );
  worker.on('failed', (job, err) => deps.log.warn('capture job failed', { job: job?.id, probe: job ? `${job.data.namespace}/${job.data.name}` : undefined, error: err.message }));
  worker.on('error', (err) => deps.log.error('worker error', { error: err.message }));
  return worker;
}

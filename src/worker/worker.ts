import { Worker, type Job } from 'bullmq';
import type { RedisClient } from '../queue/connection.js';
import { CAPTURE_QUEUE, type CaptureJobData } from '../queue/names.js';
import { runCaptureRound, type CaptureRoundDeps, type RoundOutcome } from './capture-round.js';

export interface CaptureWorkerOptions {
  connection: RedisClient;
  /** BullMQ key prefix (queuePrefix(mode): a hash tag on a Redis Cluster). */
  prefix?: string;
  /** Probes processed at once by this process. */
  concurrency: number;
  /** How often metric series of deleted probes are looked for (default 60 s). */
  metricsSweepMs?: number;
}

/**
 * The BullMQ side of a worker. A job whose worker died is picked up again
 * once its lock expires (stalled job); its capture id is derived from the
 * job id, so the retry overwrites instead of duplicating.
 */
export function startCaptureWorker(options: CaptureWorkerOptions, deps: CaptureRoundDeps): Worker<CaptureJobData, RoundOutcome> {
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
  };
  const worker = new Worker<CaptureJobData, RoundOutcome>(
    CAPTURE_QUEUE,
    async (job: Job<CaptureJobData>) => {
      const outcome = await runCaptureRound({ id: job.id ?? `${job.name}-${job.timestamp}`, data: job.data }, roundDeps);
      if (outcome === 'probe-gone') forget(job.data.namespace, job.data.name);
      return outcome;
    },
    {
      connection: options.connection,
      ...(options.prefix ? { prefix: options.prefix } : {}),
      concurrency: options.concurrency,
      lockDuration: 30_000,
      // After a Redis error (a failover) BullMQ waits this long before fetching again; its 15 s
      // default would cost rounds long after the new primary is up.
      runRetryDelay: 1000,
      maxStalledCount: 1,
      stalledInterval: 15_000,
    },
  );
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
  worker.on('closed', () => clearInterval(sweep));
  worker.on('failed', (job, err) => deps.log.warn('capture job failed', { job: job?.id, probe: job ? `${job.data.namespace}/${job.data.name}` : undefined, error: err.message }));
  worker.on('error', (err) => deps.log.error('worker error', { error: err.message }));
  return worker;
}

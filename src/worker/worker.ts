import { Worker, type Job } from 'bullmq';
import type { RedisClient } from '../queue/connection.js';
import { isConnectionError, type ConnectionErrorReporter } from '../observability/connection-errors.js';
import { CAPTURE_QUEUE, type CaptureJobData } from '../queue/names.js';
import { runCaptureRound, type CaptureRoundDeps, type RoundOutcome } from './capture-round.js';
import type { TriggerWatcher } from './trigger-watch.js';

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
    ...(options.triggers ? { onTargets: options.triggers.track.bind(options.triggers) } : {}),
  };
  const worker = new Worker<CaptureJobData, RoundOutcome>(
    CAPTURE_QUEUE,
    async (job: Job<CaptureJobData>) => {
      const outcome = await runCaptureRound({ id: job.id ?? `${job.name}-${job.timestamp}`, data: job.data }, roundDeps);
      if (outcome === 'probe-gone') forget(job.data.namespace, job.data.name);
      if (outcome === 'probe-gone' || outcome === 'suspended') options.triggers?.forget(job.data.namespace, job.data.name);
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
  worker.on('closed', () => {
    clearInterval(sweep);
    options.triggers?.close();
  });
  const reporter = options.connectionErrors;
  // A round fails on a connection error only when the API server is away (Redis calls wait for Redis):
  // with the API server gone every probe's every round would log a line.
  worker.on('failed', (job, err) => {
    if (reporter && isConnectionError(err)) reporter.failure('kubernetes', 'capture-round', err);
    else deps.log.warn('capture job failed', { job: job?.id, probe: job ? `${job.data.namespace}/${job.data.name}` : undefined, error: err.message });
  });
  worker.on('completed', () => reporter?.success('kubernetes', 'capture-round'));
  worker.on('error', (err) => {
    if (reporter && isConnectionError(err)) reporter.failure('redis', 'worker', err);
    else deps.log.error('worker error', { error: err.message });
  });
  // BullMQ's blocking connection is a duplicate of this one: back together.
  if (reporter) options.connection.on('ready', () => reporter.success('redis', 'worker'));
  return worker;
}

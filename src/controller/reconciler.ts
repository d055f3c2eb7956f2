import type { Queue } from 'bullmq';
import type { ProbeClient } from '../api/client.js';
import { durationMs } from '../api/duration.js';
import { FINALIZER, type MapLeakProbe } from '../api/types.js';
import type { Logger } from '../observability/log.js';
import type { OperatorMetrics } from '../observability/metrics.js';
import type { CaptureJobData } from '../queue/names.js';
import { desiredScheduler, ensureScheduler, removeScheduler } from '../queue/schedulers.js';
import { findCondition, setCondition } from '../status/conditions.js';
import type { SeriesStore } from '../store/series-store.js';

export interface ReconcilerDeps {
  probes: ProbeClient;
  queue: Queue<CaptureJobData>;
  store: SeriesStore;
  metrics: OperatorMetrics;
  log: Logger;
  now?: () => Date;
  /** The controller's watch cache by key: a probe found there needs no GET (one that is not is confirmed with a GET). */
  cached?: (key: string) => MapLeakProbe | undefined;
}

export type ReconcileOutcome = 'deleted' | 'finalized' | 'suspended' | 'scheduled' | 'invalid';

/**
 * Level-based and idempotent: whatever happened before, make the BullMQ job
 * scheduler match the probe (present while it exists and is not suspended,
 * with its interval and jitter), and clean up through the finalizer.
 */
export async function reconcileProbe(key: string, deps: ReconcilerDeps): Promise<ReconcileOutcome> {
  const [namespace, name] = key.split('/') as [string, string];
  const now = deps.now ?? (() => new Date());
  const probe = deps.cached?.(key) ?? (await deps.probes.get(namespace, name));

  if (!probe) {
    await cleanUp(key, deps);
    return 'deleted';
  }
  if (probe.metadata.deletionTimestamp) {
    await cleanUp(key, deps);
    const finalizers = probe.metadata.finalizers ?? [];
    if (finalizers.includes(FINALIZER)) await deps.probes.setFinalizers(probe, finalizers.filter((f) => f !== FINALIZER));
    deps.log.info('probe deleted: scheduler and series removed', { probe: key });
    return 'finalized';
  }
  let current = probe;
  if (!(probe.metadata.finalizers ?? []).includes(FINALIZER)) {
    // Go on with the patched object rather than wait for its watch event:
    // a burst of new probes would otherwise each need two trips through the queue.
    current = await deps.probes.setFinalizers(probe, [...(probe.metadata.finalizers ?? []), FINALIZER]);
  }
  return schedule(key, current, deps, now);
}

async function schedule(key: string, probe: MapLeakProbe, deps: ReconcilerDeps, now: () => Date): Promise<ReconcileOutcome> {
  let everyMs: number;
  try {
    everyMs = durationMs(probe.spec.schedule.interval);
  } catch (err) {
    await removeScheduler(deps.queue, key);
    await writeReady(deps, probe, { status: 'False', reason: 'InvalidSpec', message: (err as Error).message }, now(), undefined);
    return 'invalid';
  }

  if (probe.spec.suspend) {
    const removed = await removeScheduler(deps.queue, key);
    if (removed) deps.log.info('probe suspended: scheduler removed', { probe: key });
    await writeReady(deps, probe, { status: 'False', reason: 'Suspended', message: 'spec.suspend is true: no captures are scheduled.' }, now(), null);
    return 'suspended';
  }

  const change = await ensureScheduler(deps.queue, desiredScheduler(probe));
  if (change !== 'unchanged') deps.log.info(`scheduler ${change}`, { probe: key, everyMs, generation: probe.metadata.generation });
  const scheduler = await deps.queue.getJobScheduler(key);
  const next = scheduler?.next ? new Date(scheduler.next).toISOString() : undefined;
  await writeReady(
    deps,
    probe,
    { status: 'True', reason: 'Scheduled', message: `Capturing every ${probe.spec.schedule.interval}, keeping ${probe.spec.schedule.window} captures per target.` },
    now(),
    change === 'unchanged' ? undefined : (next ?? null),
  );
  return 'scheduled';
}

async function cleanUp(key: string, deps: ReconcilerDeps): Promise<void> {
  await removeScheduler(deps.queue, key);
  await deps.store.forgetProbe(key);
  const [namespace, name] = key.split('/') as [string, string];
  deps.metrics.forgetProbe(namespace, name);
}

/**
 * Writes observedGeneration and the Ready condition, only when they change
 * (a status write is itself a watch event; writing the same thing again
 * would loop). `next`: a new nextCaptureTime, null to clear it, undefined
 * to leave it.
 */
async function writeReady(
  deps: ReconcilerDeps,
  probe: MapLeakProbe,
  ready: { status: 'True' | 'False'; reason: string; message: string },
  at: Date,
  next: string | null | undefined,
): Promise<void> {
  const current = findCondition(probe.status?.conditions, 'Ready');
  const generation = probe.metadata.generation;
  const unchanged =
    current?.status === ready.status &&
    current.reason === ready.reason &&
    current.message === ready.message &&
    current.observedGeneration === generation &&
    probe.status?.observedGeneration === generation &&
    next === undefined;
  if (unchanged) return;
  await deps.probes.updateStatus(probe.metadata.namespace, probe.metadata.name, (latest) => {
    if (latest.metadata.uid !== probe.metadata.uid) return undefined;
    const conditions = setCondition(latest.status?.conditions, { type: 'Ready', ...ready }, latest.metadata.generation, at);
    return {
      observedGeneration: latest.metadata.generation,
      conditions,
      ...(next !== undefined ? { nextCaptureTime: next } : {}),
    };
  });
}

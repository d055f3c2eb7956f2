import type { Queue } from 'bullmq';
import type { ProbeClient } from '../api/client.js';
import { DEFAULT_CEILINGS, effectiveSettings, formatDurationMs, type Ceilings, type EffectiveSettings } from '../api/ceilings.js';
import { durationMs } from '../api/duration.js';
import { FINALIZER, type MapLeakProbe } from '../api/types.js';
import type { Logger } from '../observability/log.js';
import type { OperatorMetrics } from '../observability/metrics.js';
import type { CaptureJobData } from '../queue/names.js';
import { desiredScheduler, ensureScheduler, removeScheduler } from '../queue/schedulers.js';
import { findCondition, setCondition, type ConditionUpdate } from '../status/conditions.js';
import type { SeriesStore } from '../store/series-store.js';
import { hasExpiredIncidents, incidentsWithinRetention } from '../analysis/incident.js';

export interface ReconcilerDeps {
  probes: ProbeClient;
  queue: Queue<CaptureJobData>;
  store: SeriesStore;
  metrics: OperatorMetrics;
  log: Logger;
  /** The admin's ceilings (default DEFAULT_CEILINGS): interval floor, window ceiling, probes per namespace. */
  ceilings?: Ceilings;
  /** The probes of a namespace, including the one with uid `including` (for the per-namespace ceiling); without it that ceiling is not applied. */
  namespaceProbes?: (namespace: string, including: string) => Promise<MapLeakProbe[]>;
  now?: () => Date;
  /** The controller's watch cache by key: a probe found there needs no GET (one that is not is confirmed with a GET). */
  cached?: (key: string) => MapLeakProbe | undefined;
}

export type ReconcileOutcome = 'deleted' | 'finalized' | 'suspended' | 'scheduled' | 'invalid' | 'limited';

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
    // A probe deleted while no controller watched (its finalizer removed by hand), or one whose deletion's clean-up was lost: the resync queues its scheduler's key.
    if (await cleanUp(key, deps)) deps.log.info('removed scheduler of a probe that no longer exists', { probe: key });
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
  const ceilings = deps.ceilings ?? DEFAULT_CEILINGS;
  let settings: EffectiveSettings;
  try {
    settings = effectiveSettings(probe.spec, ceilings);
  } catch {
    await removeScheduler(deps.queue, key);
    await writeReady(deps, probe, { status: 'False', reason: 'InvalidSpec', message: 'spec.schedule.interval or spec.pprof.timeout is not a valid duration' }, now(), undefined, undefined);
    return 'invalid';
  }
  const ceilingCondition: ConditionUpdate =
    settings.lowered.length > 0
      ? { type: 'CeilingsApplied', status: 'True', reason: 'CeilingsApplied', message: `${settings.lowered.join('; ')}.` }
      : { type: 'CeilingsApplied', status: 'False', reason: 'WithinCeilings', message: 'The spec is within the operator\'s ceilings.' };

  if (probe.spec.suspend) {
    const removed = await removeScheduler(deps.queue, key);
    if (removed) deps.log.info('probe suspended: scheduler removed', { probe: key });
    await writeReady(deps, probe, { status: 'False', reason: 'Suspended', message: 'spec.suspend is true: no captures are scheduled.' }, now(), null, ceilingCondition);
    return 'suspended';
  }

  if (deps.namespaceProbes && (await overNamespaceLimit(probe, deps.namespaceProbes, ceilings.maxProbesPerNamespace))) {
    const removed = await removeScheduler(deps.queue, key);
    if (removed) deps.log.info('probe over the per-namespace ceiling: scheduler removed', { probe: key });
    const message = `Namespace ${probe.metadata.namespace} has more than ${ceilings.maxProbesPerNamespace} probes (operator ceiling); the oldest ${ceilings.maxProbesPerNamespace} are captured, this one is not.`;
    await writeReady(deps, probe, { status: 'False', reason: 'NamespaceProbeLimit', message }, now(), null, ceilingCondition);
    return 'limited';
  }

  // The scheduler runs at the effective interval, never faster than the floor.
  const interval = settings.intervalMs === durationMs(probe.spec.schedule.interval) ? probe.spec.schedule.interval : formatDurationMs(settings.intervalMs);
  const effective: MapLeakProbe = { ...probe, spec: { ...probe.spec, schedule: { ...probe.spec.schedule, interval } } };
  const change = await ensureScheduler(deps.queue, desiredScheduler(effective));
  if (change !== 'unchanged') deps.log.info(`scheduler ${change}`, { probe: key, everyMs: settings.intervalMs, generation: probe.metadata.generation });
  const scheduler = await deps.queue.getJobScheduler(key);
  const next = scheduler?.next ? new Date(scheduler.next).toISOString() : undefined;
  await writeReady(
    deps,
    probe,
    { status: 'True', reason: 'Scheduled', message: `Capturing every ${interval}, keeping ${settings.window} captures per target.` },
    now(),
    change === 'unchanged' ? undefined : (next ?? null),
    ceilingCondition,
  );
  return 'scheduled';
}

/** Over the ceiling when `maxProbes` or more live probes of its namespace are older (creation time, then name). */
async function overNamespaceLimit(probe: MapLeakProbe, namespaceProbes: NonNullable<ReconcilerDeps['namespaceProbes']>, maxProbes: number): Promise<boolean> {
  const order = (p: MapLeakProbe): string => `${p.metadata.creationTimestamp ?? ''}\u0000${p.metadata.name}`;
  const mine = order(probe);
  let older = 0;
  for (const other of await namespaceProbes(probe.metadata.namespace, probe.metadata.uid)) {
    if (other.metadata.uid === probe.metadata.uid || other.metadata.deletionTimestamp) continue;
    if (order(other) < mine) older++;
  }
  return older >= maxProbes;
}

/** Removes the key's scheduler and its gone probe's keys; true when there was a scheduler. */
async function cleanUp(key: string, deps: ReconcilerDeps): Promise<boolean> {
  const removed = await removeScheduler(deps.queue, key);
  await forgetGoneProbe(key, deps);
  const [namespace, name] = key.split('/') as [string, string];
  deps.metrics.forgetProbe(namespace, name);
  return removed;
}

/**
 * A gone probe's keys, fenced as a round's writes are: deleted only when the
 * probe object that owns them is gone by the API server's word (404, another
 * uid under the name, or being deleted), so a clean-up seen late (a stale
 * cache, a 404 just before the name was taken again) leaves the new probe's
 * series, incidents and said-once keys alone.
 */
export async function forgetGoneProbe(key: string, deps: Pick<ReconcilerDeps, 'probes' | 'store'>): Promise<number> {
  const [namespace, name] = key.split('/') as [string, string];
  return deps.store.forgetGoneProbe(key, async (ownerUid) => {
    const now = await deps.probes.get(namespace, name);
    return !now || now.metadata.uid !== ownerUid || now.metadata.deletionTimestamp !== undefined;
  });
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
  ceilings: ConditionUpdate | undefined,
): Promise<void> {
  const same = (update: Omit<ConditionUpdate, 'type'> | undefined, type: string): boolean => {
    if (!update) return true;
    const current = findCondition(probe.status?.conditions, type);
    return current?.status === update.status && current.reason === update.reason && current.message === update.message && current.observedGeneration === probe.metadata.generation;
  };
  const retentionMs = (deps.ceilings ?? DEFAULT_CEILINGS).incidentRetentionMs;
  const unchanged = same(ready, 'Ready') && same(ceilings, 'CeilingsApplied') && probe.status?.observedGeneration === probe.metadata.generation && next === undefined && !hasExpiredIncidents(probe, at, retentionMs);
  if (unchanged) return;
  await deps.probes.updateStatus(probe.metadata.namespace, probe.metadata.name, (latest) => {
    if (latest.metadata.uid !== probe.metadata.uid) return undefined;
    let conditions = setCondition(latest.status?.conditions, { type: 'Ready', ...ready }, latest.metadata.generation, at);
    if (ceilings) conditions = setCondition(conditions, ceilings, latest.metadata.generation, at);
    const incidents = latest.status?.incidents;
    return {
      ...(incidents && hasExpiredIncidents(latest, at, retentionMs) ? { incidents: incidentsWithinRetention(incidents, at, retentionMs) } : {}),
      observedGeneration: latest.metadata.generation,
      conditions,
      ...(next !== undefined ? { nextCaptureTime: next } : {}),
    };
  });
}

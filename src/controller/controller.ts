import type { KubeConfig } from '@kubernetes/client-node';
import type { Queue } from 'bullmq';
import type { ProbeClient } from '../api/client.js';
import { selectorMatches } from '../api/selector.js';
import { FINALIZER, GROUP, PLURAL, VERSION, probeKey, type Condition, type MapLeakProbe } from '../api/types.js';
import type { ConnectionErrorReporter } from '../observability/connection-errors.js';
import type { Logger } from '../observability/log.js';
import type { OperatorMetrics } from '../observability/metrics.js';
import { CAPTURE_JOB, type CaptureJobData } from '../queue/names.js';
import { desiredScheduler, schedulerMatches, stalledSchedulers } from '../queue/schedulers.js';
import type { SeriesStore } from '../store/series-store.js';
import { reconcileProbe } from './reconciler.js';
import { SupervisedInformer, type ObjectChange, type RawObject, type SupervisedInformerOptions } from './supervised-informer.js';
import { WorkQueue } from './work-queue.js';
import { hasExpiredIncidents } from '../analysis/incident.js';
import { DEFAULT_CEILINGS, effectiveSettings, type Ceilings } from '../api/ceilings.js';
import { endNote, podEnd, type PodEnd } from '../clusters/pods.js';
import { withDeadline } from '../clusters/deadline.js';
import { fencedProbe, seriesTtlSeconds } from '../store/series-store.js';
import { findCondition, setCondition } from '../status/conditions.js';
import { STORE_FULL_MESSAGE } from '../store/summary-caps.js';

export interface ControllerOptions {
  /** Re-check every probe this often, whatever the watch says. */
  resyncMs: number;
  /** Restart a watch when nothing (not even a bookmark) arrived for this long. */
  watchdogMs: number;
  /** Rotate watches server-side this often (timeoutSeconds). */
  watchTimeoutSeconds: number;
  /** Pod events for one probe within this delay make one extra round. */
  podTriggerDelayMs: number;
  /** Probes reconciled at once: each reconcile waits mostly on the API server and Redis. */
  reconcileLanes: number;
}

export const DEFAULT_CONTROLLER_OPTIONS: ControllerOptions = { resyncMs: 60_000, watchdogMs: 5 * 60_000, watchTimeoutSeconds: 240, podTriggerDelayMs: 1000, reconcileLanes: 16 };

/**
 * What the controller keeps of a probe: what the reconciler reads, without
 * managedFields, annotations, the worker's findings or the worker's
 * conditions (whose messages quote the selector and the failing pods).
 */
export type CachedProbe = MapLeakProbe;

/** The conditions the controller writes and reads back (reconciler.ts); the others are the worker's. */
const CONTROLLER_CONDITIONS: ReadonlySet<string> = new Set(['Ready', 'CeilingsApplied']);

/** What the controller keeps of a pod: enough to tell when it becomes a target or stops being one, and how it ended. */
export interface CachedPod {
  /**
   * Absent when the pod carries more labels than the controller keeps
   * (MAX_POD_LABELS, MAX_POD_LABEL_CHARACTERS): it then starts no
   * pod-event round and notes no end; the worker's scheduled rounds list
   * and capture it as any pod.
   */
  labels?: Readonly<Record<string, string>>;
  /** `ready`: Running and Ready, not being deleted: what a capture round takes. */
  state: 'ready' | 'not-ready' | 'deleting';
  /** Set once a container has terminated (outside a deletion) or the pod was evicted: what a round needs to make an incident of it after the pod is gone. */
  end?: PodEnd;
}

export function slimProbe(raw: RawObject): CachedProbe {
  const probe = raw as unknown as MapLeakProbe;
  // creationTimestamp orders probes for the per-namespace ceiling (oldest first).
  const { name, namespace, uid, generation, resourceVersion, creationTimestamp, deletionTimestamp, finalizers } = probe.metadata;
  const status = probe.status;
  return {
    apiVersion: probe.apiVersion,
    kind: probe.kind,
    metadata: { name, namespace, uid, generation, resourceVersion, creationTimestamp, deletionTimestamp, finalizers },
    spec: probe.spec,
    // Of the incidents only the oldest (the list is newest first): whether one is past the retention is all a resync asks.
    ...(status
      ? {
          status: {
            observedGeneration: status.observedGeneration,
            ...(status.conditions ? { conditions: status.conditions.filter((c) => CONTROLLER_CONDITIONS.has(c.type)) } : {}),
            ...(status.incidents?.length ? { incidents: status.incidents.slice(-1) } : {}),
          },
        }
      : {}),
  } as CachedProbe;
}

export function slimPod(raw: RawObject): CachedPod {
  const pod = raw as { metadata?: { labels?: Record<string, string>; deletionTimestamp?: string; uid?: string }; spec?: { containers?: { name?: unknown }[] }; status?: { phase?: string; conditions?: { type?: string; status?: string }[]; containerStatuses?: unknown[] } };
  const ready = pod.status?.phase === 'Running' && (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
  const end = podEnd(pod);
  const labels = keptLabels(pod.metadata?.labels ?? {});
  return { ...(labels ? { labels } : {}), state: pod.metadata?.deletionTimestamp ? 'deleting' : ready ? 'ready' : 'not-ready', ...(end ? { end } : {}) };
}

/**
 * Every pod of the cluster is watched, and anyone who may create a pod
 * anywhere sizes its labels (Kubernetes bounds each label, not their
 * number: ~7,000 fit in one object). The controller keeps them up to what
 * the largest selector the CRD admits can name (96 keys: 64 matchLabels and
 * 32 expressions; 8,192 characters of keys and values).
 */
export const MAX_POD_LABELS = 96;
export const MAX_POD_LABEL_CHARACTERS = 8192;

function keptLabels(labels: Readonly<Record<string, string>>): Readonly<Record<string, string>> | undefined {
  let count = 0;
  let characters = 0;
  for (const key in labels) {
    count++;
    characters += key.length + String(labels[key]).length;
    if (count > MAX_POD_LABELS || characters > MAX_POD_LABEL_CHARACTERS) return undefined;
  }
  return labels;
}

/**
 * What the reconciler acts on: a change elsewhere (the worker's findings,
 * Capturing and Degraded conditions, nextCaptureTime) needs no reconcile.
 */
function reconcileFingerprint(probe: CachedProbe): string {
  const ready: Condition | undefined = probe.status?.conditions?.find((c) => c.type === 'Ready');
  return JSON.stringify([
    probe.metadata.uid,
    probe.metadata.generation,
    probe.metadata.deletionTimestamp ?? null,
    (probe.metadata.finalizers ?? []).includes(FINALIZER),
    probe.status?.observedGeneration ?? null,
    ready ? [ready.status, ready.reason, ready.message, ready.observedGeneration] : null,
  ]);
}

function sameLabels(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

/** Longest a scrape waits for one namespace's ledger total. */
const STORED_BYTES_READ_MS = 1000;

/**
 * Watches MapLeakProbes and the pods they select, each with a supervised
 * list+watch that keeps only what the controller reads. Probe changes that
 * matter reconcile the probe's job scheduler; a selected pod becoming Ready
 * or going away triggers one extra capture round at once, so targets follow
 * the pods without waiting an interval.
 */
export class ProbeController {
  private readonly work = new WorkQueue();
  private readonly probes: SupervisedInformer<CachedProbe>;
  private readonly pods: SupervisedInformer<CachedPod>;
  private running?: Promise<void>;
  private resyncTimer?: NodeJS.Timeout;
  /** Ends this controller's export of mapleak_namespace_stored_bytes. */
  private endStoredBytes?: () => void;
  /** Set by stop(): a start() still waiting (on Redis, say) must not go on to act. */
  private stopped = false;

  constructor(
    kc: KubeConfig,
    private readonly deps: { probes: ProbeClient; queue: Queue<CaptureJobData>; store: SeriesStore; metrics: OperatorMetrics; log: Logger; connectionErrors?: ConnectionErrorReporter; ceilings?: Ceilings },
    private readonly options: ControllerOptions = DEFAULT_CONTROLLER_OPTIONS,
  ) {
    const common = { kc, watchTimeoutSeconds: options.watchTimeoutSeconds, watchdogMs: options.watchdogMs, log: deps.log };
    const reporting = (component: string): Pick<SupervisedInformerOptions<unknown>, 'connectionErrors'> => (deps.connectionErrors ? { connectionErrors: { reporter: deps.connectionErrors, component } } : {});
    this.probes = new SupervisedInformer<CachedProbe>({
      ...common,
      ...reporting('probe-watch'),
      path: `/apis/${GROUP}/${VERSION}/${PLURAL}`,
      slim: slimProbe,
      onChange: (change) => this.probeChanged(change),
    });
    this.pods = new SupervisedInformer<CachedPod>({
      ...common,
      ...reporting('pod-watch'),
      path: '/api/v1/pods',
      slim: slimPod,
      onChange: (change) => void this.podChanged(change),
    });
  }

  /** True once both watches have listed; readiness waits for it. */
  get synced(): boolean {
    return this.probes.synced && this.pods.synced;
  }

  async start(): Promise<void> {
    this.running = this.work.run(
      async (key) => {
        const outcome = await reconcileProbe(key, { ...this.deps, cached: (k) => this.probes.get(k) });
        this.deps.metrics.reconciles.inc({ outcome });
      },
      (key, err) => {
        this.deps.metrics.reconcileErrors.inc();
        this.deps.log.warn('reconcile failed; retrying with backoff', { probe: key, error: (err as Error).message });
      },
      this.options.reconcileLanes,
    );
    await Promise.all([this.probes.start(), this.pods.start()]);
    if (this.stopped) return;
    await this.resync();
    if (this.stopped) return;
    this.resyncTimer = setInterval(() => void this.resync(), this.options.resyncMs);
    this.endStoredBytes = this.deps.metrics.namespaceStoredBytesFrom(() => this.namespaceStoredBytes());
  }

  /**
   * For mapleak_namespace_stored_bytes, at each scrape: the ledger total of
   * every namespace the watch cache has probes in (so the series are as
   * many as those namespaces, and a namespace's goes with its last probe).
   * A ledger that does not answer within a second is left out of that
   * scrape (its last value stays): a scrape never waits on a slow Redis.
   */
  private async namespaceStoredBytes(): Promise<Map<string, number | undefined>> {
    const namespaces = new Set(this.probes.list().map((probe) => probe.metadata.namespace));
    const bytes = new Map<string, number | undefined>();
    await Promise.all(
      [...namespaces].map(async (namespace) => {
        bytes.set(namespace, await withDeadline(this.deps.store.namespaceBytes(namespace), STORED_BYTES_READ_MS).catch(() => undefined));
      }),
    );
    return bytes;
  }

  /**
   * Level-based repair, in bulk: one read of every scheduler in Redis against
   * the watch cache. A probe whose scheduler is missing or differs, or whose
   * status does not yet show its generation, goes back through reconcile;
   * so does a scheduler the cache has no probe for, whose removal is
   * reconcile's (the probe gone by the API server's word). Through the work
   * queue, not here: a key is never reconciled in two lanes at once, and a
   * probe re-created under the name while its orphan is being removed
   * marks the key to run again, so the new probe gets its scheduler back at
   * once. Removed here, between the check and the removal a reconcile of
   * the new probe could have made the scheduler that the removal then took,
   * until the next resync.
   */
  async resync(): Promise<void> {
    try {
      await this.reportStoreFull();
      const schedulers = new Map<string, Awaited<ReturnType<Queue<CaptureJobData>['getJobSchedulers']>>[number]>();
      for (const scheduler of await this.deps.queue.getJobSchedulers()) {
        const id = scheduler.key ?? scheduler.id;
        if (id) schedulers.set(id, scheduler);
      }
      // A failover may have lost a scheduler's next job: such a probe is not settled either.
      const stalled = await stalledSchedulers(this.deps.queue, [...schedulers.values()]);
      for (const probe of this.probes.list()) {
        const key = probeKey(probe);
        if (stalled.has(key) || !this.settled(probe, schedulers.get(key))) this.work.add(key);
      }
      // The cache is only a full picture once listed; reconcile confirms an orphan with the API server before it goes.
      if (!this.probes.synced) return;
      for (const id of schedulers.keys()) {
        // Not a probe's (no namespace/name): not ours to remove.
        if (!this.probes.get(id) && id.includes('/')) this.work.add(id);
      }
    } catch (err) {
      this.deps.log.warn('resync failed', { error: (err as Error).message });
    }
  }

  /**
   * While Redis refuses writes no round can start or keep anything, so no
   * worker can say so: every probe's status says it here (Degraded and
   * Capturing, reason StoreFull) until a round succeeds again.
   */
  private async reportStoreFull(): Promise<void> {
    const refusal = await this.deps.store.writeRefusal();
    if (!refusal) {
      this.deps.connectionErrors?.writesSucceeded();
      return;
    }
    this.deps.connectionErrors?.failure('redis', 'controller', refusal);
    const at = new Date();
    for (const probe of this.probes.list()) {
      if (probe.metadata.deletionTimestamp) continue;
      await this.deps.probes.updateStatus(probe.metadata.namespace, probe.metadata.name, (current) => {
        if (current.metadata.uid !== probe.metadata.uid || findCondition(current.status?.conditions, 'Degraded')?.reason === 'StoreFull') return undefined;
        let conditions = current.status?.conditions;
        for (const type of ['Degraded', 'Capturing'] as const) {
          conditions = setCondition(conditions, { type, status: type === 'Degraded' ? 'True' : 'False', reason: 'StoreFull', message: STORE_FULL_MESSAGE }, current.metadata.generation, at);
        }
        return { conditions: conditions ?? [] };
      });
    }
  }

  /** Whether reconcile would change nothing: scheduler as wanted (or absent while suspended), finalizer on, status at this generation. */
  private settled(probe: CachedProbe, scheduler: Parameters<typeof schedulerMatches>[0] | undefined): boolean {
    if (probe.metadata.deletionTimestamp || !(probe.metadata.finalizers ?? []).includes(FINALIZER)) return false;
    const generation = probe.metadata.generation;
    const ready = probe.status?.conditions?.find((c) => c.type === 'Ready');
    if (!ready || probe.status?.observedGeneration !== generation || ready.observedGeneration !== generation) return false;
    // Incidents past the retention leave the status even when no round runs (suspended, limited, invalid): reconcile prunes them.
    if (hasExpiredIncidents(probe, new Date(), (this.deps.ceilings ?? DEFAULT_CEILINGS).incidentRetentionMs)) return false;
    if (probe.spec.suspend) return scheduler === undefined && ready.reason === 'Suspended';
    try {
      return scheduler !== undefined && ready.reason === 'Scheduled' && schedulerMatches(scheduler, desiredScheduler(probe));
    } catch {
      // An interval that does not parse: reconcile says so in the status.
      return ready.reason === 'InvalidSpec' && scheduler === undefined;
    }
  }

  private probeChanged({ key, current, previous, initial }: ObjectChange<CachedProbe>): void {
    if (initial || !current || !previous || reconcileFingerprint(current) !== reconcileFingerprint(previous)) this.work.add(key);
  }

  private async podChanged({ key, current, previous, initial }: ObjectChange<CachedPod>): Promise<void> {
    // Noted before the round below is queued, so that round finds it even if the pod is gone by then.
    if (current?.end && current.labels && JSON.stringify(current.end) !== JSON.stringify(previous?.end)) await this.noteEnd(key, current.labels, current.end);
    // The initial list is not news: the scheduled rounds cover existing pods.
    if (initial) return;
    const was = previous?.state === 'ready' ? previous.labels : undefined;
    const is = current?.state === 'ready' ? current.labels : undefined;
    // Only a pod becoming capturable, ceasing to be, or changing labels while capturable changes the targets.
    if (!was && !is) return;
    if (was && is && sameLabels(was, is)) return;
    const namespace = key.slice(0, key.indexOf('/'));
    for (const probe of this.probes.list()) {
      if (probe.spec.cluster || probe.spec.suspend || probe.metadata.deletionTimestamp) continue;
      if (probe.metadata.namespace !== namespace) continue;
      if (!((was && selectorMatches(probe.spec.selector, was)) || (is && selectorMatches(probe.spec.selector, is)))) continue;
      try {
        await this.deps.queue.add(
          CAPTURE_JOB,
          { namespace: probe.metadata.namespace, name: probe.metadata.name, uid: probe.metadata.uid },
          {
            // A burst of pod events is one round a moment later; an event during
            // a round queues exactly one more, so none is lost.
            delay: this.options.podTriggerDelayMs,
            deduplication: { id: `targets-${probeKey(probe).replace('/', '-')}`, reschedule: true, keepLastIfActive: true },
            attempts: 1,
            removeOnComplete: { count: 100 },
            removeOnFail: { count: 100 },
          },
        );
      } catch (err) {
        this.deps.log.warn('could not trigger a round for a pod change', { probe: probeKey(probe), error: (err as Error).message });
      }
    }
  }

  /**
   * Tells every probe that selects the pod how its container ended (the
   * store keeps it until the probe's next round takes it): a pod deleted
   * right after an OOM kill or an eviction is gone before that round lists
   * anything, and its captures are the ones most worth keeping.
   */
  private async noteEnd(key: string, labels: Readonly<Record<string, string>>, end: PodEnd): Promise<void> {
    const namespace = key.slice(0, key.indexOf('/'));
    const ceilings = this.deps.ceilings ?? DEFAULT_CEILINGS;
    for (const probe of this.probes.list()) {
      if (probe.spec.cluster || probe.metadata.deletionTimestamp || probe.metadata.namespace !== namespace || !selectorMatches(probe.spec.selector, labels)) continue;
      const note = endNote(end, probe.spec.container ?? end.firstContainer);
      if (!note) continue;
      let ttlSeconds = 86_400;
      try {
        const settings = effectiveSettings(probe.spec, ceilings);
        ttlSeconds = seriesTtlSeconds(settings.window, settings.intervalMs);
      } catch {
        // An invalid spec runs no rounds; the note just expires.
      }
      try {
        await this.deps.store.noteEnded(fencedProbe(probe), end.podUid, note, ttlSeconds);
      } catch (err) {
        this.deps.log.warn('could not note a container end', { probe: probeKey(probe), error: (err as Error).message });
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.resyncTimer);
    this.endStoredBytes?.();
    this.work.stop();
    await Promise.all([this.probes.stop(), this.pods.stop()]);
    await this.running;
  }
}

import { CoreV1Api, type KubeConfig, type KubernetesObject, type V1Pod } from '@kubernetes/client-node';
import type { Queue } from 'bullmq';
import type { ProbeClient } from '../api/client.js';
import { selectorMatches } from '../api/selector.js';
import { GROUP, PLURAL, VERSION, probeKey, type MapLeakProbe } from '../api/types.js';
import type { Logger } from '../observability/log.js';
import type { OperatorMetrics } from '../observability/metrics.js';
import { CAPTURE_JOB, type CaptureJobData } from '../queue/names.js';
import { removeScheduler } from '../queue/schedulers.js';
import type { SeriesStore } from '../store/series-store.js';
import { reconcileProbe } from './reconciler.js';
import { SupervisedInformer } from './supervised-informer.js';
import { WorkQueue } from './work-queue.js';

export interface ControllerOptions {
  /** Re-reconcile every probe this often, whatever the watch says. */
  resyncMs: number;
  /** Restart a watch when nothing (not even a resync list) arrived for this long. */
  watchdogMs: number;
  /** Rotate watches server-side this often (timeoutSeconds). */
  watchTimeoutSeconds: number;
  /** Pod events for one probe within this delay make one extra round. */
  podTriggerDelayMs: number;
  /** Probes reconciled at once. */
  reconcileLanes: number;
}

export const DEFAULT_CONTROLLER_OPTIONS: ControllerOptions = { resyncMs: 60_000, watchdogMs: 5 * 60_000, watchTimeoutSeconds: 240, podTriggerDelayMs: 1000, reconcileLanes: 4 };

type Probe = MapLeakProbe & KubernetesObject;

/**
 * Watches MapLeakProbes and the pods they select, each with a supervised
 * informer. Probe changes reconcile the probe's job scheduler; a selected
 * pod becoming Ready or going away triggers one extra capture round at
 * once, so targets follow the pods without waiting an interval.
 */
export class ProbeController {
  private readonly work = new WorkQueue();
  private readonly probes: SupervisedInformer<Probe>;
  private readonly pods: SupervisedInformer<V1Pod & KubernetesObject>;
  private running?: Promise<void>;
  private resyncTimer?: NodeJS.Timeout;
  /** pod uid → whether it was last seen ready, to tell a change that matters from status noise. */
  private readonly podStates = new Map<string, 'ready' | 'not-ready'>();

  constructor(
    kc: KubeConfig,
    private readonly deps: { probes: ProbeClient; queue: Queue<CaptureJobData>; store: SeriesStore; metrics: OperatorMetrics; log: Logger },
    private readonly options: ControllerOptions = DEFAULT_CONTROLLER_OPTIONS,
  ) {
    const common = { kc, watchTimeoutSeconds: options.watchTimeoutSeconds, watchdogMs: options.watchdogMs, log: deps.log };
    this.probes = new SupervisedInformer<Probe>({
      ...common,
      path: `/apis/${GROUP}/${VERSION}/${PLURAL}`,
      list: async () => {
        const list = await deps.probes.list();
        return { apiVersion: `${GROUP}/${VERSION}`, kind: 'MapLeakProbeList', items: list.items as Probe[], metadata: { resourceVersion: list.resourceVersion } };
      },
      onChange: (probe) => this.work.add(probeKey(probe)),
    });
    const core = kc.makeApiClient(CoreV1Api);
    this.pods = new SupervisedInformer<V1Pod & KubernetesObject>({
      ...common,
      path: '/api/v1/pods',
      list: async () => (await core.listPodForAllNamespaces()) as never,
      onChange: (pod) => void this.podChanged(pod),
    });
  }

  /** True once both watches have listed; readiness waits for it. */
  get synced(): boolean {
    return this.probes.synced && this.pods.synced;
  }

  async start(): Promise<void> {
    this.running = this.work.run(
      async (key) => {
        const outcome = await reconcileProbe(key, this.deps);
        this.deps.metrics.reconciles.inc({ outcome });
      },
      (key, err) => {
        this.deps.metrics.reconcileErrors.inc();
        this.deps.log.warn('reconcile failed; retrying with backoff', { probe: key, error: (err as Error).message });
      },
      this.options.reconcileLanes,
    );
    await Promise.all([this.probes.start(), this.pods.start()]);
    // An informer does not re-fire `add` for objects it already had: resync.
    await this.resync();
    this.resyncTimer = setInterval(() => void this.resync(), this.options.resyncMs);
  }

  /** Every known probe back through reconcile; schedulers of probes that no longer exist are removed. */
  async resync(): Promise<void> {
    try {
      const { items } = await this.deps.probes.list();
      this.probes.touch();
      const keys = new Set(items.map(probeKey));
      for (const key of keys) this.work.add(key);
      for (const scheduler of await this.deps.queue.getJobSchedulers()) {
        const id = scheduler.key ?? scheduler.id;
        if (id && !keys.has(id)) {
          await removeScheduler(this.deps.queue, id);
          await this.deps.store.forgetProbe(id);
          this.deps.log.info('removed scheduler of a probe that no longer exists', { probe: id });
        }
      }
    } catch (err) {
      this.deps.log.warn('resync failed', { error: (err as Error).message });
    }
  }

  private async podChanged(pod: V1Pod): Promise<void> {
    // The initial list is not news: the scheduled rounds cover existing pods.
    const initial = !this.pods.synced;
    const uid = pod.metadata?.uid ?? '';
    const ready =
      !pod.metadata?.deletionTimestamp && pod.status?.phase === 'Running' && (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
    const state = pod.metadata?.deletionTimestamp ? 'gone' : ready ? 'ready' : 'not-ready';
    const previous = this.podStates.get(uid);
    if (state === 'gone') this.podStates.delete(uid);
    else this.podStates.set(uid, state);
    // Only a pod becoming capturable, or ceasing to be, changes the targets.
    if (initial || previous === state || (state !== 'ready' && previous !== 'ready')) return;
    for (const probe of this.probes.list()) {
      if (probe.spec.cluster || probe.spec.suspend || probe.metadata.deletionTimestamp) continue;
      if (probe.metadata.namespace !== pod.metadata?.namespace) continue;
      if (!selectorMatches(probe.spec.selector, pod.metadata?.labels)) continue;
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

  async stop(): Promise<void> {
    clearInterval(this.resyncTimer);
    this.work.stop();
    await Promise.all([this.probes.stop(), this.pods.stop()]);
    await this.running;
  }
}

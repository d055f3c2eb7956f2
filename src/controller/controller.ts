import { makeInformer, type Informer, type KubeConfig, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';
import type { Queue } from 'bullmq';
import type { ProbeClient } from '../api/client.js';
import { GROUP, PLURAL, VERSION, probeKey, type MapLeakProbe } from '../api/types.js';
import type { Logger } from '../observability/log.js';
import type { OperatorMetrics } from '../observability/metrics.js';
import type { CaptureJobData } from '../queue/names.js';
import { removeScheduler } from '../queue/schedulers.js';
import type { SeriesStore } from '../store/series-store.js';
import { reconcileProbe } from './reconciler.js';
import { WorkQueue } from './work-queue.js';

export interface ControllerOptions {
  /** Re-reconcile every probe this often, whatever the watch says. */
  resyncMs: number;
  /** Restart the watch when nothing (not even a resync list) arrived for this long. */
  watchdogMs: number;
  /** Rotate watches server-side this often (timeoutSeconds). */
  watchTimeoutSeconds: number;
}

export const DEFAULT_CONTROLLER_OPTIONS: ControllerOptions = { resyncMs: 60_000, watchdogMs: 5 * 60_000, watchTimeoutSeconds: 240 };

/**
 * Watches MapLeakProbes (a supervised informer: restarted with backoff after
 * errors and after silent stalls) and reconciles each one's job scheduler.
 */
export class ProbeController {
  private informer?: Informer<MapLeakProbe & KubernetesObject> & ObjectCache<MapLeakProbe & KubernetesObject>;
  private readonly work = new WorkQueue();
  private running?: Promise<void>;
  private resyncTimer?: NodeJS.Timeout;
  private watchdogTimer?: NodeJS.Timeout;
  private lastEventAt = Date.now();
  private restartDelayMs = 1000;
  private stopped = false;
  synced = false;

  constructor(
    private readonly kc: KubeConfig,
    private readonly deps: { probes: ProbeClient; queue: Queue<CaptureJobData>; store: SeriesStore; metrics: OperatorMetrics; log: Logger },
    private readonly options: ControllerOptions = DEFAULT_CONTROLLER_OPTIONS,
  ) {}

  async start(): Promise<void> {
    this.stopped = false;
    this.running = this.work.run(
      async (key) => {
        const outcome = await reconcileProbe(key, this.deps);
        this.deps.metrics.reconciles.inc({ outcome });
      },
      (key, err) => {
        this.deps.metrics.reconcileErrors.inc();
        this.deps.log.warn('reconcile failed; retrying with backoff', { probe: key, error: (err as Error).message });
      },
    );
    await this.startInformer();
    this.resyncTimer = setInterval(() => void this.resync(), this.options.resyncMs);
    this.watchdogTimer = setInterval(() => {
      if (Date.now() - this.lastEventAt > this.options.watchdogMs) {
        this.deps.log.warn('probe watch silent too long; restarting it');
        void this.restartInformer();
      }
    }, Math.min(this.options.watchdogMs, 30_000));
  }

  private async startInformer(): Promise<void> {
    const path = `/apis/${GROUP}/${VERSION}/${PLURAL}`;
    const informer = makeInformer<MapLeakProbe & KubernetesObject>(this.kc, `${path}?timeoutSeconds=${this.options.watchTimeoutSeconds}`, async () => {
      const list = await this.deps.probes.list();
      this.lastEventAt = Date.now();
      return { apiVersion: `${GROUP}/${VERSION}`, kind: 'MapLeakProbeList', items: list.items as (MapLeakProbe & KubernetesObject)[], metadata: { resourceVersion: list.resourceVersion } };
    });
    const enqueue = (probe: MapLeakProbe): void => {
      this.lastEventAt = Date.now();
      this.work.add(probeKey(probe));
    };
    informer.on('add', enqueue);
    informer.on('update', enqueue);
    informer.on('delete', enqueue);
    informer.on('connect', () => {
      this.lastEventAt = Date.now();
      this.restartDelayMs = 1000;
    });
    informer.on('error', (err) => {
      if (this.stopped) return;
      this.synced = false;
      this.deps.log.warn('probe watch failed; restarting', { error: (err as Error | undefined)?.message, inMs: this.restartDelayMs });
      setTimeout(() => void this.restartInformer(), this.restartDelayMs);
      this.restartDelayMs = Math.min(this.restartDelayMs * 2, 30_000);
    });
    this.informer = informer;
    await informer.start();
    this.synced = true;
    // An informer does not re-fire `add` for objects it already had: resync.
    await this.resync();
  }

  private async restartInformer(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.informer?.stop();
    } catch {
      // already stopped
    }
    try {
      await this.startInformer();
    } catch (err) {
      this.deps.log.warn('probe watch could not start; retrying', { error: (err as Error).message, inMs: this.restartDelayMs });
      setTimeout(() => void this.restartInformer(), this.restartDelayMs);
      this.restartDelayMs = Math.min(this.restartDelayMs * 2, 30_000);
    }
  }

  /** Every known probe back through reconcile; schedulers of probes that no longer exist are removed. */
  async resync(): Promise<void> {
    try {
      const { items } = await this.deps.probes.list();
      this.lastEventAt = Date.now();
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

  get queueLength(): number {
    return this.work.length;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.synced = false;
    clearInterval(this.resyncTimer);
    clearInterval(this.watchdogTimer);
    this.work.stop();
    try {
      await this.informer?.stop();
    } catch {
      // already stopped
    }
    await this.running;
  }
}

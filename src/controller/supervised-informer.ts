import { makeInformer, type Informer, type KubeConfig, type KubernetesListObject, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';
import type { Logger } from '../observability/log.js';

export interface SupervisedInformerOptions<T extends KubernetesObject> {
  kc: KubeConfig;
  /** Watch path, e.g. /api/v1/pods. */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  /** Rotate watches server-side this often. */
  watchTimeoutSeconds: number;
  /** Restart when nothing arrived for this long (a silently stalled watch). */
  watchdogMs: number;
  onChange: (object: T) => void;
  log: Logger;
}

/**
 * An informer that does not stay dead: restarted with exponential backoff
 * after errors, and after a silence longer than the watchdog allows.
 */
export class SupervisedInformer<T extends KubernetesObject> {
  private informer?: Informer<T> & ObjectCache<T>;
  private watchdog?: NodeJS.Timeout;
  private lastEventAt = Date.now();
  private restartDelayMs = 1000;
  private stopped = true;
  synced = false;

  constructor(private readonly options: SupervisedInformerOptions<T>) {}

  async start(): Promise<void> {
    this.stopped = false;
    await this.startOnce();
    const { watchdogMs } = this.options;
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastEventAt > watchdogMs) {
        this.options.log.warn('watch silent too long; restarting it', { path: this.options.path });
        this.lastEventAt = Date.now();
        void this.restart();
      }
    }, Math.min(watchdogMs, 30_000));
  }

  /** Something was heard from the API server (e.g. a resync list): not stalled. */
  touch(): void {
    this.lastEventAt = Date.now();
  }

  list(): readonly T[] {
    return this.informer?.list() ?? [];
  }

  private async startOnce(): Promise<void> {
    const { kc, path, list, watchTimeoutSeconds, onChange, log } = this.options;
    const informer = makeInformer<T>(kc, `${path}?timeoutSeconds=${watchTimeoutSeconds}`, async () => {
      const result = await list();
      this.touch();
      return result;
    });
    const changed = (object: T): void => {
      this.touch();
      onChange(object);
    };
    informer.on('add', changed);
    informer.on('update', changed);
    informer.on('delete', changed);
    informer.on('connect', () => {
      this.touch();
      this.restartDelayMs = 1000;
    });
    informer.on('error', (err) => {
      if (this.stopped) return;
      this.synced = false;
      log.warn('watch failed; restarting', { path, error: (err as Error | undefined)?.message, inMs: this.restartDelayMs });
      this.scheduleRestart();
    });
    this.informer = informer;
    await informer.start();
    this.synced = true;
  }

  private scheduleRestart(): void {
    setTimeout(() => void this.restart(), this.restartDelayMs);
    this.restartDelayMs = Math.min(this.restartDelayMs * 2, 30_000);
  }

  private async restart(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.informer?.stop();
    } catch {
      // already stopped
    }
    try {
      await this.startOnce();
    } catch (err) {
      this.options.log.warn('watch could not start; retrying', { path: this.options.path, error: (err as Error).message, inMs: this.restartDelayMs });
      this.scheduleRestart();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.synced = false;
    clearInterval(this.watchdog);
    try {
      await this.informer?.stop();
    } catch {
      // already stopped
    }
  }
}

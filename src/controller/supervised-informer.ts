import { Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { kubeHttp } from '../clusters/kube-http.js';
import type { ConnectionErrorReporter } from '../observability/connection-errors.js';
import type { Logger } from '../observability/log.js';

/** One object as the API server sends it in lists and watch events: read only through `slim`. */
export type RawObject = KubernetesObject & { metadata?: { name?: string; namespace?: string; resourceVersion?: string } };

export interface ObjectChange<S> {
  /** `namespace/name` (or `name` for cluster-scoped objects). */
  key: string;
  /** Absent when the object is gone. */
  current?: S;
  /** Absent when the object is new to the cache. */
  previous?: S;
  /** From the first list of this informer's life: the state the controller starts from, not news. */
  initial: boolean;
}

export interface SupervisedInformerOptions<S> {
  kc: KubeConfig;
  /** Collection path, e.g. /api/v1/pods. */
  path: string;
  /** What the cache keeps of each object: only the fields the controller reads. */
  slim: (object: RawObject) => S;
  /** Rotate watches server-side this often. */
  watchTimeoutSeconds: number;
  /** Restart when nothing arrived for this long (a silently stalled watch). */
  watchdogMs: number;
  /** Objects per list page: bounds the memory a relist of a big cluster takes at once. */
  pageSize?: number;
  onChange: (change: ObjectChange<S>) => void;
  log: Logger;
  /** Failed lists and watches go here, as `component` (logged with backoff), instead of one line each. */
  connectionErrors?: { reporter: ConnectionErrorReporter; component: string };
}

/**
 * Objects per list page. A page of 100 pods (~0.5 MB of JSON) is parsed and
 * slimmed within V8's young generation; pages of 500 were promoted to the
 * old generation and grew the heap the process keeps after its first list.
 */
const DEFAULT_PAGE_SIZE = 100;
/** Largest list page accepted, and how long one may take. */
const PAGE_LIMITS = { maxBytes: 256 * 1024 * 1024, timeoutMs: 60_000 };

interface Entry<S> {
  resourceVersion: string;
  value: S;
}

/**
 * A list+watch that keeps a slim record per object (whatever `slim` returns,
 * never the whole object) and does not stay dead: client-node 1.4 informers
 * cache whole objects and stop on any error but 410, so this one is built on
 * the library's Watch alone. Lists are paginated; a watch that ends is
 * resumed from the last resourceVersion (bookmarks keep it fresh); 410 Gone
 * or any error relists with exponential backoff, firing changes for what
 * differs from the cache; a silence longer than the watchdog restarts it.
 */
export class SupervisedInformer<S> {
  private readonly cache = new Map<string, Entry<S>>();
  private watchdog?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  private abort?: AbortController;
  private lastEventAt = Date.now();
  private restartDelayMs = 1000;
  private resourceVersion = '';
  /** Each list+watch cycle has a number: callbacks of an older one are ignored. */
  private generation = 0;
  private listedOnce = false;
  private stopped = true;
  synced = false;

  constructor(private readonly options: SupervisedInformerOptions<S>) {}

  /** Resolves once the first list is in the cache (or failed: then it keeps retrying). */
  async start(): Promise<void> {
    this.stopped = false;
    const { watchdogMs } = this.options;
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastEventAt > watchdogMs) {
        this.options.log.warn('watch silent too long; restarting it', { path: this.options.path });
        this.lastEventAt = Date.now();
        this.resourceVersion = '';
        void this.cycle();
      }
    }, Math.min(watchdogMs, 30_000));
    await this.cycle();
  }

  /** Something was heard from the API server: not stalled. */
  touch(): void {
    this.lastEventAt = Date.now();
  }

  get(key: string): S | undefined {
    return this.cache.get(key)?.value;
  }

  list(): S[] {
    return Array.from(this.cache.values(), (entry) => entry.value);
  }

  keys(): IterableIterator<string> {
    return this.cache.keys();
  }

  get size(): number {
    return this.cache.size;
  }

  /** Lists when there is no resourceVersion to resume from, then watches; failures schedule the next attempt. */
  private async cycle(): Promise<void> {
    if (this.stopped) return;
    const generation = ++this.generation;
    clearTimeout(this.retryTimer);
    this.abort?.abort();
    this.abort = undefined;
    try {
      if (!this.resourceVersion) {
        this.synced = false;
        await this.relist(generation);
        if (generation !== this.generation) return;
        this.synced = true;
      }
      await this.watch(generation);
    } catch (err) {
      if (generation !== this.generation || this.stopped) return;
      this.fail(err);
    }
  }

  private async relist(generation: number): Promise<void> {
    const { kc, path, slim, pageSize = DEFAULT_PAGE_SIZE } = this.options;
    const http = await kubeHttp(kc);
    try {
      const fresh = new Map<string, Entry<S>>();
      let resourceVersion = '';
      let token = '';
      do {
        const query = new URLSearchParams({ limit: String(pageSize) });
        if (token) query.set('continue', token);
        const page = JSON.parse((await http.get(`${path}?${query}`, PAGE_LIMITS)).toString('utf8')) as {
          items?: RawObject[];
          metadata?: { resourceVersion?: string; continue?: string };
        };
        if (generation !== this.generation) return;
        this.touch();
        for (const item of page.items ?? []) fresh.set(keyOf(item), { resourceVersion: item.metadata?.resourceVersion ?? '', value: slim(item) });
        resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
        token = page.metadata?.continue ?? '';
      } while (token);
      const initial = !this.listedOnce;
      for (const [key, entry] of this.cache) {
        if (!fresh.has(key)) {
          this.cache.delete(key);
          this.options.onChange({ key, previous: entry.value, initial });
        }
      }
      for (const [key, entry] of fresh) {
        const previous = this.cache.get(key);
        if (previous?.resourceVersion === entry.resourceVersion) continue;
        this.cache.set(key, entry);
        this.options.onChange({ key, current: entry.value, ...(previous ? { previous: previous.value } : {}), initial });
      }
      this.listedOnce = true;
      this.resourceVersion = resourceVersion;
    } finally {
      http.agent.destroy();
    }
  }

  private async watch(generation: number): Promise<void> {
    const { kc, path, slim, watchTimeoutSeconds, onChange } = this.options;
    const handle = (type: string, object: RawObject): void => {
      if (generation !== this.generation) return;
      this.touch();
      if (type === 'ERROR') {
        // 410 Gone: the resourceVersion is too old; relist when this watch ends.
        if ((object as { code?: number }).code === 410) this.resourceVersion = '';
        return;
      }
      const resourceVersion = object.metadata?.resourceVersion ?? '';
      if (type === 'BOOKMARK') {
        this.resourceVersion = resourceVersion || this.resourceVersion;
        return;
      }
      const key = keyOf(object);
      const previous = this.cache.get(key)?.value;
      if (type === 'DELETED') {
        this.cache.delete(key);
        onChange({ key, ...(previous !== undefined ? { previous } : {}), current: undefined, initial: false });
      } else if (type === 'ADDED' || type === 'MODIFIED') {
        const current = slim(object);
        this.cache.set(key, { resourceVersion, value: current });
        onChange({ key, current, ...(previous !== undefined ? { previous } : {}), initial: false });
      }
      if (resourceVersion) this.resourceVersion = resourceVersion;
    };
    const done = (err: unknown): void => {
      if (generation !== this.generation || this.stopped) return;
      if (err && (err as { name?: string }).name === 'AbortError') return;
      if (err) {
        const code = (err as { statusCode?: number; code?: number }).statusCode ?? (err as { code?: number }).code;
        if (code === 410) this.resourceVersion = '';
        else return this.fail(err);
      }
      // The server ended the watch (timeoutSeconds) or the resourceVersion expired: go on.
      void this.cycle();
    };
    const abort = await new Watch(kc).watch(path, { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: watchTimeoutSeconds }, handle, done);
    if (generation !== this.generation || this.stopped) {
      abort.abort();
      return;
    }
    this.abort = abort;
    this.touch();
    this.restartDelayMs = 1000;
    this.options.connectionErrors?.reporter.success('kubernetes', this.options.connectionErrors.component);
  }

  private fail(err: unknown): void {
    this.synced = false;
    this.resourceVersion = '';
    this.abort?.abort();
    const errors = this.options.connectionErrors;
    if (errors) errors.reporter.failure('kubernetes', errors.component, { code: (err as { code?: unknown }).code, statusCode: (err as { statusCode?: unknown }).statusCode, name: (err as { name?: unknown }).name, message: describe(err) });
    else this.options.log.warn('watch failed; restarting', { path: this.options.path, error: describe(err), inMs: this.restartDelayMs });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.cycle(), this.restartDelayMs);
    this.restartDelayMs = Math.min(this.restartDelayMs * 2, 30_000);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.synced = false;
    this.generation++;
    clearInterval(this.watchdog);
    clearTimeout(this.retryTimer);
    this.abort?.abort();
    this.abort = undefined;
  }
}

function keyOf(object: RawObject): string {
  const { namespace, name = '' } = object.metadata ?? {};
  return namespace ? `${namespace}/${name}` : name;
}

/** A status code or error code, never a body: a list or watch error could carry anything. */
function describe(err: unknown): string {
  const e = err as { statusCode?: number; code?: number | string; reason?: string; message?: string };
  if (e.statusCode) return `HTTP ${e.statusCode}`;
  return (e.reason ?? e.message ?? String(err)).slice(0, 200);
}

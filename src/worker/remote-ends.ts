import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { DEFAULT_CEILINGS, type Ceilings } from '../api/ceilings.js';
import { endNote, podEnd, POD_LIST_BYTES_PER_POD } from '../clusters/pods.js';
import type { TargetCluster } from '../clusters/registry.js';
import { errorCode } from '../observability/error-code.js';
import type { Logger } from '../observability/log.js';
import type { FencedProbe, SeriesStore } from '../store/series-store.js';

/**
 * Sees how remote (spec.cluster) pods end between rounds. On the operator's
 * own cluster the controller's pod watch notes a container's end (an OOM
 * kill, a non-zero exit, an eviction) before the pod is deleted; remote pods
 * are only listed by rounds, so a pod deleted right after its OOM kill was
 * gone, with its incident, before the next round looked. After each round
 * of a remote probe this watches the pods it listed, from that list's
 * resourceVersion, and notes their ends in the store the same way (fenced
 * by the round's probe object), for the next round to take.
 *
 * Bounded, since the API server is the tenant's: one watch per probe (a
 * round replaces the one before), ended after `maxWatchMs`, at most
 * `maxWatches` per worker (the oldest ends first; 0: none), at most
 * `maxBytes` read per watch (the admin's flags, remoteEndLimits), an event longer than a pod list allows per pod skipped, and
 * notes only for the pods that round listed, at most one per pod and end.
 * A watch that fails is not retried: the next round lists Failed pods and
 * starts a new one.
 */
export interface RemoteEndLimits {
  /** Watches at once on this worker. */
  maxWatches: number;
  /** Longest a watch stays open (a round of the probe normally replaces it sooner). */
  maxWatchMs: number;
  /** Bytes one watch reads before it ends. */
  maxBytes: number;
}

/** The limits the admin set (--max-remote-pod-watches, --max-remote-pod-watch-time, --max-remote-pod-watch-bytes). */
export function remoteEndLimits(ceilings: Pick<Ceilings, 'maxRemotePodWatches' | 'maxRemotePodWatchMs' | 'maxRemotePodWatchBytes'>): RemoteEndLimits {
  return { maxWatches: ceilings.maxRemotePodWatches, maxWatchMs: ceilings.maxRemotePodWatchMs, maxBytes: ceilings.maxRemotePodWatchBytes };
}

/** The operator's flag defaults (DEFAULT_CEILINGS; the chart sets its own). */
export const DEFAULT_REMOTE_END_LIMITS: RemoteEndLimits = remoteEndLimits(DEFAULT_CEILINGS);

export interface WatchedRemotePod {
  uid: string;
  /** The container the probe follows in it. */
  container: string;
}

interface Watch {
  abort: AbortController;
  done: Promise<void>;
}

export class RemoteEndWatcher {
  private readonly watches = new Map<string, Watch>();
  private closed = false;

  constructor(
    private readonly deps: { store: Pick<SeriesStore, 'noteEnded'>; log: Logger; limits?: RemoteEndLimits },
  ) {}

  private get limits(): RemoteEndLimits {
    return this.deps.limits ?? DEFAULT_REMOTE_END_LIMITS;
  }

  /** Watches currently open. */
  get size(): number {
    return this.watches.size;
  }

  /**
   * After a round of a remote probe listed `pods` (at `resourceVersion`):
   * note their ends until `untilMs` from now (bounded by maxWatchMs),
   * ending the watch an earlier round of the probe started.
   */
  watch(key: FencedProbe, cluster: TargetCluster, selector: string, resourceVersion: string | undefined, pods: readonly WatchedRemotePod[], options: { forMs: number; ttlSeconds: number }): void {
    this.stop(key.key);
    if (this.closed || !resourceVersion || pods.length === 0 || this.limits.maxWatches === 0) return;
    while (this.watches.size >= this.limits.maxWatches) {
      const oldest = this.watches.keys().next().value;
      if (oldest === undefined) break;
      this.stop(oldest);
    }
    const abort = new AbortController();
    const watch: Watch = { abort, done: Promise.resolve() };
    this.watches.set(key.key, watch);
    const forMs = Math.max(1000, Math.min(options.forMs, this.limits.maxWatchMs));
    watch.done = this.run(key, cluster, selector, resourceVersion, new Map(pods.map((p) => [p.uid, p.container])), forMs, options.ttlSeconds, abort.signal)
      .catch((err: unknown) => this.deps.log.debug('remote pod watch ended', { probe: key.key, error: errorCode(err) ?? 'error' }))
      .finally(() => {
        if (this.watches.get(key.key) === watch) this.watches.delete(key.key);
      });
  }

  /** The probe is gone or no longer remote: stop watching for it. */
  stop(probeKey: string): void {
    const watch = this.watches.get(probeKey);
    if (!watch) return;
    watch.abort.abort();
    this.watches.delete(probeKey);
  }

  async close(): Promise<void> {
    this.closed = true;
    const open = [...this.watches.values()];
    for (const watch of open) watch.abort.abort();
    this.watches.clear();
    await Promise.all(open.map((w) => w.done));
  }

  private run(key: FencedProbe, cluster: TargetCluster, selector: string, resourceVersion: string, followed: Map<string, string>, forMs: number, ttlSeconds: number, signal: AbortSignal): Promise<void> {
    const { http } = cluster;
    // No phase filter: the change to Failed, and the deletion, are what it is for.
    const params = new URLSearchParams({ watch: 'true', labelSelector: selector, resourceVersion, timeoutSeconds: String(Math.ceil(forMs / 1000)), allowWatchBookmarks: 'true' });
    const url = `${http.server}/api/v1/namespaces/${encodeURIComponent(cluster.namespace)}/pods?${params}`;
    const noted = new Map<string, string>();
    const maxLine = POD_LIST_BYTES_PER_POD;
    // Its own connection, with the cluster's TLS identity and dial guard (--remote-cluster-cidrs): a watch held
    // open must not take a socket from the cluster's pool (8 for a remote one), which pod lists and captures share.
    const agent = http.dedicatedAgent();
    return new Promise<void>((resolve, reject) => {
      // The server's timeoutSeconds should end it first; a server that ignores it is cut off a second later.
      const timer = setTimeout(() => finish(), forMs + 1000);
      timer.unref();
      let settled = false;
      const finish = (err?: unknown): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        request.destroy();
        agent.destroy();
        if (err) reject(err);
        else resolve();
      };
      const onAbort = (): void => finish();
      signal.addEventListener('abort', onAbort);
      const request = https.get(url, { agent, headers: http.headers }, (response: IncomingMessage) => {
        if (response.statusCode !== 200) {
          response.resume();
          finish(Object.assign(new Error('watch refused'), { code: `HTTP_${response.statusCode ?? 0}` }));
          return;
        }
        let bytes = 0;
        let pending = '';
        let skipping = false;
        const writes: Promise<unknown>[] = [];
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          bytes += Buffer.byteLength(chunk);
          if (bytes > this.limits.maxBytes) {
            finish(Object.assign(new Error('watch byte limit'), { code: 'MAX_BYTES' }));
            return;
          }
          const lines = (pending + chunk).split('\n');
          pending = lines.pop() ?? '';
          for (const line of lines) {
            if (skipping) {
              skipping = false;
              continue;
            }
            const write = line.length <= maxLine ? this.onEvent(key, line, followed, noted, ttlSeconds) : undefined;
            if (write) writes.push(write);
          }
          if (pending.length > maxLine) {
            pending = '';
            skipping = true;
          }
        });
        response.on('end', () => void Promise.all(writes).then(() => finish(), finish));
        response.on('error', finish);
      });
      request.on('error', (err) => finish(signal.aborted ? undefined : err));
    });
  }

  /** One watch event: the note of a followed pod's end, when it shows one not noted yet. */
  private onEvent(key: FencedProbe, line: string, followed: ReadonlyMap<string, string>, noted: Map<string, string>, ttlSeconds: number): Promise<unknown> | undefined {
    let event: unknown;
    try {
      event = JSON.parse(line);
    } catch {
      return undefined;
    }
    if (typeof event !== 'object' || event === null) return undefined;
    const { type, object } = event as { type?: unknown; object?: unknown };
    if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') return undefined;
    const end = podEnd(object);
    const container = end ? followed.get(end.podUid) : undefined;
    const note = end && container ? endNote(end, container) : undefined;
    if (!note) return undefined;
    const json = JSON.stringify(note);
    if (noted.get(note.podUid) === json) return undefined;
    noted.set(note.podUid, json);
    return this.deps.store.noteEnded(key, note.podUid, note, ttlSeconds).catch((err: unknown) => {
      this.deps.log.warn('could not note a remote container end', { probe: key.key, error: errorCode(err) ?? 'error' });
    });
  }
}

import { createHash } from 'node:crypto';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { parseGcTrace } from '../analysis/gctrace.js';
import { disarm, INITIAL_TRIGGER_STATE, observeCycle, type PodTriggerState, type TriggerDecision, type TriggerThresholds } from '../analysis/triggers.js';
import { durationMs } from '../api/duration.js';
import type { MapLeakProbe } from '../api/types.js';
import type { TargetCluster } from '../clusters/registry.js';
import type { Logger } from '../observability/log.js';
import type { OperatorMetrics } from '../observability/metrics.js';
import { TRIGGERED_JOB, type CaptureJobData, type TriggerJobData } from '../queue/names.js';

/**
 * Follows the gctrace lines of the pods of probes with spec.triggers, as
 * they are written (`pods/log?follow=true`), and queues a one-off capture
 * round when a pod's live heap crosses a threshold. The decision is
 * src/analysis/triggers.ts; this is the I/O around it.
 *
 * - The pods come from the rounds this worker runs (track() after each
 *   round's pod list); a probe no round refreshed for three intervals is
 *   dropped (deleted, or its rounds go to other workers now).
 * - A follow holds no lock and shares nothing with rounds but the event
 *   loop; each is bounded: line length, bytes per connection, an idle
 *   timeout, and the number of follows per worker (the admin's ceiling).
 * - Rate limit per probe across every worker: the round is a BullMQ job
 *   with a deduplication id per probe and a ttl of minInterval, so two
 *   workers (or two pods) crossing within minInterval queue one round.
 * - A follow that fails (API server away, 5xx) backs off quietly and
 *   resumes where it was (sinceTime); one the server ends normally is
 *   reopened after the admin's poll period; a pod that is gone (404) is
 *   dropped until a round lists it again.
 */

export interface TriggerWatchLimits {
  /** Pod logs followed at once by this worker (--max-trigger-follows). */
  maxFollows: number;
  /** Shortest time between two openings of one follow (--trigger-poll-interval). */
  pollMs: number;
  /** Shortest spec.triggers.minInterval (--min-trigger-interval). */
  minIntervalMs: number;
  /** A longer line is skipped (gctrace lines are about 150 bytes). */
  maxLineBytes: number;
  /** A connection is ended after this many bytes, and reopened at the next second of the log (a flood is skipped, not read again). */
  maxBytesPerConnection: number;
  /**
   * No byte for this long: the connection is presumed half-open and
   * reopened. The Go runtime forces a GC at least every 2 minutes
   * (runtime.forcegcperiod), so a gctrace pod is never silent longer.
   */
  idleMs: number;
  /** Longest backoff after failures. */
  maxBackoffMs: number;
  /** A crossing logged longer ago than this never fires (see TriggerContext.maxLagMs). */
  maxLagMs: number;
}

export const DEFAULT_TRIGGER_WATCH_LIMITS: TriggerWatchLimits = {
  maxFollows: 100,
  pollMs: 2_000,
  minIntervalMs: 10_000,
  maxLineBytes: 4096,
  maxBytesPerConnection: 4 * 1024 * 1024,
  idleMs: 150_000,
  maxBackoffMs: 60_000,
  maxLagMs: 30_000,
};

/** The queue's add, as the watcher uses it (a BullMQ Queue<CaptureJobData>). */
export interface TriggerQueue {
  add(name: string, data: CaptureJobData, opts: { jobId: string; deduplication: { id: string; ttl: number }; lifo: boolean; attempts: number; removeOnComplete: { count: number }; removeOnFail: { count: number } }): Promise<{ id?: string | undefined }>;
}

export interface TriggerWatchDeps {
  queue: TriggerQueue;
  log: Logger;
  metrics?: Pick<OperatorMetrics, 'triggerFollows' | 'triggers'>;
  limits: TriggerWatchLimits;
  /** Records an Event on the probe (pods skipped for a trigger are said once). */
  event?: (probe: MapLeakProbe, type: 'Normal' | 'Warning', reason: string, message: string) => Promise<void>;
  /** True the first time `what` is asked for on this probe across every worker (the store's SET NX); without it, once per process. */
  firstTime?: (probe: MapLeakProbe, what: string) => Promise<boolean>;
  now?: () => number;
}

/** A selected pod as a round listed it. */
export interface WatchedPod {
  name: string;
  namespace: string;
  uid: string;
  container: string;
  memoryLimitBytes?: number;
}

interface ProbeEntry {
  probe: MapLeakProbe;
  cluster: TargetCluster;
  thresholds: TriggerThresholds;
  expiresAt: number;
  lastTriggeredAtMs?: number;
  follows: Map<string, Follow>;
}

interface Follow {
  pod: WatchedPod;
  state: PodTriggerState;
  abort: AbortController;
  /** The timestamp of the last line read: where a reopened follow starts (the server reads it to the second). */
  sinceTime?: string;
}

export class TriggerWatcher {
  private readonly probes = new Map<string, ProbeEntry>();
  private readonly now: () => number;
  private readonly skippedPods = new Set<string>();
  private readonly overCeiling = new Set<string>();
  private readonly sweep: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly deps: TriggerWatchDeps) {
    this.now = deps.now ?? Date.now;
    this.sweep = setInterval(() => this.dropExpired(), 10_000);
    deps.metrics?.triggerFollows.set(0);
    this.sweep.unref();
  }

  /** Pod logs followed right now. */
  get followCount(): number {
    let n = 0;
    for (const entry of this.probes.values()) n += entry.follows.size;
    return n;
  }

  /** After a round listed a probe's pods: follow those pods (and only those) while the probe has triggers. */
  track(probe: MapLeakProbe, cluster: TargetCluster, pods: readonly WatchedPod[], timing: { intervalMs: number; minIntervalMs: number }): void {
    const key = `${probe.metadata.namespace}/${probe.metadata.name}`;
    const triggers = probe.spec.triggers;
    if (this.closed || !triggers || probe.spec.suspend || !probe.spec.gctrace.enabled) {
      this.forget(probe.metadata.namespace, probe.metadata.name);
      return;
    }
    let entry = this.probes.get(key);
    if (entry && entry.probe.metadata.uid !== probe.metadata.uid) {
      this.forget(probe.metadata.namespace, probe.metadata.name);
      entry = undefined;
    }
    const thresholds: TriggerThresholds = {
      ...(triggers.liveHeapBytes !== undefined ? { liveHeapBytes: triggers.liveHeapBytes } : {}),
      ...(triggers.memoryLimitFraction !== undefined ? { memoryLimitFraction: triggers.memoryLimitFraction } : {}),
      ...(triggers.growthBytesPerMinute !== undefined ? { growthBytesPerMinute: triggers.growthBytesPerMinute } : {}),
      growthWindowMs: durationMs(triggers.growthWindow ?? '2m'),
      minIntervalMs: Math.max(timing.minIntervalMs, this.deps.limits.minIntervalMs),
    };
    const statusTriggered = probe.status?.lastTriggeredTime ? Date.parse(probe.status.lastTriggeredTime) : undefined;
    const lastTriggeredAtMs = Math.max(entry?.lastTriggeredAtMs ?? -Infinity, statusTriggered ?? -Infinity);
    const next: ProbeEntry = {
      probe,
      cluster,
      thresholds,
      // Three intervals without a round here: the probe is gone, or its rounds run on other workers.
      expiresAt: this.now() + 3 * timing.intervalMs + 30_000,
      ...(Number.isFinite(lastTriggeredAtMs) ? { lastTriggeredAtMs } : {}),
      follows: entry?.follows ?? new Map(),
    };
    this.probes.set(key, next);

    const wanted = new Map(pods.map((p) => [p.uid, p]));
    for (const [uid, follow] of next.follows) {
      if (!wanted.has(uid)) this.stopFollow(next, uid, follow);
    }
    for (const pod of pods) {
      const existing = next.follows.get(pod.uid);
      if (existing) {
        existing.pod = pod;
      } else {
        if (this.followCount >= this.deps.limits.maxFollows) {
          if (!this.overCeiling.has(key)) {
            this.overCeiling.add(key);
            this.deps.log.warn('memory triggers: follow ceiling reached, pods not watched between rounds', { probe: key, maxFollows: this.deps.limits.maxFollows });
          }
          break;
        }
        this.startFollow(next, key, pod);
      }
      if (thresholds.memoryLimitFraction !== undefined && pod.memoryLimitBytes === undefined) this.sayOnceNoLimit(probe, pod);
    }
  }

  /** The probe is gone or suspended: stop following its pods. */
  forget(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    const entry = this.probes.get(key);
    if (!entry) return;
    for (const [uid, follow] of entry.follows) this.stopFollow(entry, uid, follow);
    this.probes.delete(key);
    this.overCeiling.delete(key);
  }

  close(): void {
    this.closed = true;
    clearInterval(this.sweep);
    for (const entry of [...this.probes.values()]) this.forget(entry.probe.metadata.namespace, entry.probe.metadata.name);
  }

  private dropExpired(): void {
    const now = this.now();
    for (const entry of [...this.probes.values()]) if (entry.expiresAt < now) this.forget(entry.probe.metadata.namespace, entry.probe.metadata.name);
  }

  private stopFollow(entry: ProbeEntry, uid: string, follow: Follow): void {
    follow.abort.abort();
    entry.follows.delete(uid);
    this.deps.metrics?.triggerFollows.set(this.followCount);
  }

  private sayOnceNoLimit(probe: MapLeakProbe, pod: WatchedPod): void {
    if (this.skippedPods.has(pod.uid)) return;
    if (this.skippedPods.size > 10_000) this.skippedPods.clear();
    this.skippedPods.add(pod.uid);
    const message = `pod ${pod.name}: container ${pod.container} has no memory limit, so spec.triggers.memoryLimitFraction does not apply to it (the other triggers do)`;
    void (async () => {
      if (this.deps.firstTime && !(await this.deps.firstTime(probe, `trigger-skipped:${probe.metadata.uid}:${pod.uid}`))) return;
      this.deps.log.info('memory trigger skipped', { probe: `${probe.metadata.namespace}/${probe.metadata.name}`, pod: pod.name, trigger: 'memoryLimitFraction' });
      await this.deps.event?.(probe, 'Normal', 'TriggerSkipped', message);
    })().catch(() => undefined);
  }

  private startFollow(entry: ProbeEntry, key: string, pod: WatchedPod): void {
    const follow: Follow = { pod, state: INITIAL_TRIGGER_STATE, abort: new AbortController() };
    entry.follows.set(pod.uid, follow);
    this.deps.metrics?.triggerFollows.set(this.followCount);
    void this.runFollow(key, follow).catch((err: unknown) => {
      this.deps.log.error('trigger follow ended unexpectedly', { probe: key, pod: pod.name, error: err instanceof Error ? err.message : String(err) });
    });
  }

  /** Opens the follow again and again until it is stopped or its pod is gone. */
  private async runFollow(key: string, follow: Follow): Promise<void> {
    const log = this.deps.log.child({ probe: key, pod: follow.pod.name });
    let failures = 0;
    while (!follow.abort.signal.aborted) {
      const entry = this.probes.get(key);
      if (!entry || entry.follows.get(follow.pod.uid) !== follow) return;
      const openedAt = this.now();
      const outcome = await this.followOnce(entry, key, follow).catch((err: unknown) => ({ failed: err instanceof Error ? err.message : String(err), status: 0, hadData: false }));
      if (follow.abort.signal.aborted) return;
      if ('gone' in outcome) {
        log.debug('trigger follow: pod or container gone', { status: outcome.status });
        entry.follows.delete(follow.pod.uid);
        this.deps.metrics?.triggerFollows.set(this.followCount);
        return;
      }
      let waitMs: number;
      if ('failed' in outcome) {
        // A connection that had read lines broke: the first failure of a new streak.
        failures = outcome.hadData ? 1 : failures + 1;
        waitMs = Math.min(this.deps.limits.maxBackoffMs, this.deps.limits.pollMs * 2 ** Math.min(failures - 1, 10));
        // Quietly: an API server that is away is not news every few seconds.
        (failures === 1 ? log.info : log.debug).call(log, 'trigger follow failed, backing off', { status: outcome.status, error: outcome.failed, retryInMs: waitMs });
      } else {
        failures = 0;
        waitMs = Math.max(0, this.deps.limits.pollMs - (this.now() - openedAt));
      }
      await sleep(waitMs * (0.8 + 0.4 * Math.random()), follow.abort.signal);
    }
  }

  /** One connection: reads lines until the server ends it, a bound ends it, or the follow is stopped. */
  private followOnce(entry: ProbeEntry, key: string, follow: Follow): Promise<{ ended: true } | { gone: true; status: number } | { failed: string; status: number; hadData?: boolean }> {
    const { pod } = follow;
    const params = new URLSearchParams({ container: pod.container, follow: 'true', timestamps: 'true' });
    // Resume after the last line read; the first opening needs only the growth window's history.
    if (follow.sinceTime) params.set('sinceTime', follow.sinceTime);
    else params.set('sinceSeconds', String(Math.ceil(entry.thresholds.growthWindowMs / 1000)));
    const http = entry.cluster.http;
    const url = `${http.server}/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods/${encodeURIComponent(pod.name)}/log?${params}`;
    const limits = this.deps.limits;
    return new Promise((resolve) => {
      let settled = false;
      let hadData = false;
      const finish = (value: { ended: true } | { gone: true; status: number } | { failed: string; status: number; hadData?: boolean }): void => {
        if (settled) return;
        settled = true;
        clearTimeout(idle);
        follow.abort.signal.removeEventListener('abort', onAbort);
        request.destroy();
        resolve(value);
      };
      const onAbort = (): void => finish({ ended: true });
      let idle = setTimeout(() => finish({ failed: 'no data within the idle timeout', status: 0 }), limits.idleMs);
      const request = https.get(url, { agent: http.agent, headers: http.headers }, (response: IncomingMessage) => {
        const status = response.statusCode ?? 0;
        if (status !== 200) {
          response.resume();
          // 404: the pod is gone; 400: its container is not running (yet, or any more).
          finish(status === 404 || status === 400 ? { gone: true, status } : { failed: `HTTP ${status}`, status });
          return;
        }
        void this.readLines(response, entry, key, follow, () => {
          hadData = true;
          clearTimeout(idle);
          idle = setTimeout(() => finish({ failed: 'no data within the idle timeout', status: 0 }), limits.idleMs);
        }).then(
          () => finish({ ended: true }),
          (err: unknown) => finish({ failed: err instanceof Error ? err.message : String(err), status: 0, hadData }),
        );
      });
      request.on('error', (err) => finish({ failed: err.message, status: 0, hadData }));
      follow.abort.signal.addEventListener('abort', onAbort);
    });
  }

  private async readLines(response: IncomingMessage, entry: ProbeEntry, key: string, follow: Follow, onData: () => void): Promise<void> {
    const limits = this.deps.limits;
    let pending = '';
    let skipping = false;
    let bytes = 0;
    response.setEncoding('utf8');
    for await (const chunk of response as AsyncIterable<string>) {
      onData();
      bytes += Buffer.byteLength(chunk);
      const parts = (pending + chunk).split('\n');
      pending = parts.pop() ?? '';
      for (const line of parts) {
        if (skipping) {
          // The rest of an over-long line.
          skipping = false;
          continue;
        }
        if (line.length <= limits.maxLineBytes) await this.onLine(line, entry, key, follow);
      }
      if (pending.length > limits.maxLineBytes) {
        pending = '';
        skipping = true;
      }
      // Bounded: reopened from the last line read.
      if (follow.abort.signal.aborted) return;
      if (bytes >= limits.maxBytesPerConnection) {
        // sinceTime is read to the second: resuming inside a second that held more than the cap would read
        // the same bytes again and again. Skip the rest of that second (a log flood; the next GC line comes).
        const lastMs = follow.sinceTime ? Date.parse(follow.sinceTime) : Number.NaN;
        if (Number.isFinite(lastMs)) follow.sinceTime = new Date(Math.floor(lastMs / 1000) * 1000 + 1000).toISOString();
        return;
      }
    }
  }

  private async onLine(line: string, entry: ProbeEntry, key: string, follow: Follow): Promise<void> {
    const space = line.indexOf(' ');
    if (space <= 0) return;
    const stamp = line.slice(0, space);
    const loggedAtMs = Date.parse(stamp);
    if (!Number.isFinite(loggedAtMs)) return;
    follow.sinceTime = stamp;
    const [cycle] = parseGcTrace(line.slice(space + 1)).cycles;
    if (!cycle) return;
    const current = this.probes.get(key) ?? entry;
    const { state, decision } = observeCycle(follow.state, { cycle, loggedAtMs }, {
      thresholds: current.thresholds,
      ...(follow.pod.memoryLimitBytes !== undefined ? { memoryLimitBytes: follow.pod.memoryLimitBytes } : {}),
      ...(current.lastTriggeredAtMs !== undefined ? { lastTriggeredAtMs: current.lastTriggeredAtMs } : {}),
      nowMs: this.now(),
      maxLagMs: this.deps.limits.maxLagMs,
    });
    follow.state = state;
    if (decision.fire) follow.state = await this.fire(current, key, follow, decision);
  }

  /** Queues the triggered round; the state after it (disarmed when this crossing got its round). */
  private async fire(entry: ProbeEntry, key: string, follow: Follow, decision: Extract<TriggerDecision, { fire: true }>): Promise<PodTriggerState> {
    const { probe } = entry;
    const firedAt = this.now();
    const trigger: TriggerJobData = {
      reason: decision.reason,
      pod: follow.pod.name,
      liveHeapBytes: decision.liveHeapBytes,
      thresholdBytes: decision.thresholdBytes,
      ...(decision.memoryLimitBytes !== undefined ? { memoryLimitBytes: decision.memoryLimitBytes } : {}),
      ...(decision.growthBytesPerMinute !== undefined ? { growthBytesPerMinute: decision.growthBytesPerMinute } : {}),
      gcCycle: decision.cycle,
      observedTime: new Date(decision.loggedAtMs).toISOString(),
      firedTime: new Date(firedAt).toISOString(),
    };
    // The same crossing seen by two workers is the same job; any other within minInterval is deduplicated.
    const jobId = `trigger-${createHash('sha256').update(`${probe.metadata.uid}|${follow.pod.uid}|${decision.cycle}|${decision.loggedAtMs}`).digest('hex').slice(0, 24)}`;
    try {
      const job = await this.deps.queue.add(
        TRIGGERED_JOB,
        { namespace: probe.metadata.namespace, name: probe.metadata.name, uid: probe.metadata.uid, trigger },
        {
          jobId,
          deduplication: { id: `trigger-${probe.metadata.uid}`, ttl: entry.thresholds.minIntervalMs },
          // Ahead of scheduled rounds waiting in the queue.
          lifo: true,
          attempts: 1,
          removeOnComplete: { count: 100 },
          removeOnFail: { count: 100 },
        },
      );
      if (job.id === jobId) {
        this.deps.metrics?.triggers.inc({ reason: decision.reason, result: 'queued' });
        entry.lastTriggeredAtMs = firedAt;
        this.deps.log.info('memory trigger fired', { probe: key, pod: follow.pod.name, reason: decision.reason, liveHeapBytes: decision.liveHeapBytes, thresholdBytes: decision.thresholdBytes, gcCycle: decision.cycle, job: jobId });
        return disarm(follow.state, decision.reasons);
      }
      // Another crossing (another pod, another worker) got this probe's round within minInterval:
      // stay armed, and ask again a little later rather than at every cycle.
      entry.lastTriggeredAtMs = Math.max(entry.lastTriggeredAtMs ?? 0, firedAt - entry.thresholds.minIntervalMs + Math.min(5_000, entry.thresholds.minIntervalMs));
      this.deps.metrics?.triggers.inc({ reason: decision.reason, result: 'deduplicated' });
      this.deps.log.debug('memory trigger rate-limited (deduplicated)', { probe: key, pod: follow.pod.name, reason: decision.reason });
    } catch (err) {
      this.deps.metrics?.triggers.inc({ reason: decision.reason, result: 'failed' });
      this.deps.log.warn('memory trigger could not queue its round', { probe: key, pod: follow.pod.name, error: err instanceof Error ? err.message : String(err) });
    }
    return follow.state;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

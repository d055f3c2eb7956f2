import { createHash } from 'node:crypto';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { parseGcTrace } from '../analysis/gctrace.js';
import { disarm, INITIAL_TRIGGER_STATE, observeCycle, type PodTriggerState, type TriggerDecision, type TriggerThresholds } from '../analysis/triggers.js';
import type { ProbeClient } from '../api/client.js';
import { durationMs } from '../api/duration.js';
import type { MapLeakProbe } from '../api/types.js';
import { rfc3339 } from '../clusters/log-timestamp.js';
import type { TargetCluster } from '../clusters/registry.js';
import { errorCode } from '../observability/error-code.js';
import type { Logger } from '../observability/log.js';
import type { OperatorMetrics } from '../observability/metrics.js';
import { TRIGGERED_JOB, type CaptureJobData, type TriggerJobData } from '../queue/names.js';
import { setCondition } from '../status/conditions.js';

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
 * - That ceiling is shared fairly (max-min): first between namespaces,
 *   then between a namespace's probes, so one tenant selecting many pods
 *   cannot take every follow. A probe left with fewer follows than pods
 *   says so in its status (TriggersLimited).
 * - A triggered round goes ahead of scheduled rounds waiting in the queue
 *   (lifo) at most once per namespace per --min-trigger-interval; others
 *   queue behind them, so a tenant's forged crossings cannot starve the
 *   other tenants' schedules.
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
  /**
   * Writes the probe's TriggersLimited condition: True with operator text
   * while some selected pods get no follow, False once they all do again.
   */
  condition?: (probe: MapLeakProbe, update: { type: 'TriggersLimited'; status: 'True' | 'False'; reason: string; message: string }) => Promise<void>;
  /**
   * True the first time `what` is asked for on this probe across every
   * worker (the store's SET NX, fenced by the probe object: one that no
   * longer owns its name's keys says nothing); without it, once per process.
   */
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
  /** The pods the last round listed, in its order: what the follows are drawn from. */
  wanted: WatchedPod[];
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
  /** The TriggersLimited message last written per probe ('' for False). */
  private readonly limitedSaid = new Map<string, string>();
  /** When a triggered round of a namespace last went ahead of the queue. */
  private readonly lastJumpAt = new Map<string, number>();
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
      wanted: [...pods],
      follows: entry?.follows ?? new Map(),
    };
    this.probes.set(key, next);
    for (const pod of pods) {
      const existing = next.follows.get(pod.uid);
      if (existing) existing.pod = pod;
      if (thresholds.memoryLimitFraction !== undefined && pod.memoryLimitBytes === undefined) this.sayOnceNoLimit(probe, pod);
    }
    this.rebalance();
  }

  /**
   * Gives every probe its fair share of the follow ceiling (max-min between
   * namespaces, then between a namespace's probes) and follows that many of
   * its pods, keeping the follows it has. Stops before it starts, so the
   * ceiling holds at every moment.
   */
  private rebalance(): void {
    const entries = [...this.probes.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const namespaces = [...new Set(entries.map(([, e]) => e.probe.metadata.namespace))];
    const inNamespace = namespaces.map((ns) => entries.filter(([, e]) => e.probe.metadata.namespace === ns));
    const namespaceShares = fairShares(inNamespace.map((list) => list.reduce((n, [, e]) => n + e.wanted.length, 0)), this.deps.limits.maxFollows);
    const shares = new Map<string, number>();
    inNamespace.forEach((list, i) => {
      const probeShares = fairShares(list.map(([, e]) => e.wanted.length), namespaceShares[i] ?? 0);
      list.forEach(([key], j) => shares.set(key, probeShares[j] ?? 0));
    });
    const chosen = new Map<string, WatchedPod[]>();
    for (const [key, entry] of entries) {
      const share = shares.get(key) ?? 0;
      // The pods already followed first (no reconnect for nothing), then the rest in the round's order.
      const pods = [...entry.wanted.filter((p) => entry.follows.has(p.uid)), ...entry.wanted.filter((p) => !entry.follows.has(p.uid))].slice(0, share);
      chosen.set(key, pods);
      const keep = new Set(pods.map((p) => p.uid));
      for (const [uid, follow] of entry.follows) if (!keep.has(uid)) this.stopFollow(entry, uid, follow);
    }
    for (const [key, entry] of entries) {
      for (const pod of chosen.get(key) ?? []) if (!entry.follows.has(pod.uid)) this.startFollow(entry, key, pod);
      this.sayLimited(key, entry, shares.get(key) ?? 0);
    }
  }

  /** The probe's TriggersLimited condition, written when what it says changes. */
  private sayLimited(key: string, entry: ProbeEntry, followed: number): void {
    const wanted = entry.wanted.length;
    const limited = followed < wanted;
    const said = this.limitedSaid.get(key) ?? (entry.probe.status?.conditions?.some((c) => c.type === 'TriggersLimited' && c.status === 'True') ? 'unknown' : '');
    const maxFollows = this.deps.limits.maxFollows;
    const message = limited
      ? `Memory triggers follow ${followed} of the ${wanted} selected pods on this worker: it follows at most ${maxFollows} pod logs (operator ceiling), shared fairly between namespaces and probes. The other pods are captured by scheduled rounds only.`
      : '';
    if (message === said) return;
    this.limitedSaid.set(key, message);
    if (limited && !this.overCeiling.has(key)) {
      this.overCeiling.add(key);
      this.deps.log.warn('memory triggers: follow ceiling reached, pods not watched between rounds', { probe: key, followed, wanted, maxFollows });
    }
    if (!limited) this.overCeiling.delete(key);
    const update = limited
      ? { type: 'TriggersLimited' as const, status: 'True' as const, reason: 'FollowCeiling', message }
      : { type: 'TriggersLimited' as const, status: 'False' as const, reason: 'AllPodsFollowed', message: 'Memory triggers follow every selected pod.' };
    void this.deps.condition?.(entry.probe, update).catch(() => this.limitedSaid.delete(key));
  }

  /** The probe is gone or suspended: stop following its pods. */
  forget(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    const entry = this.probes.get(key);
    if (!entry) return;
    for (const [uid, follow] of entry.follows) this.stopFollow(entry, uid, follow);
    this.probes.delete(key);
    this.overCeiling.delete(key);
    this.limitedSaid.delete(key);
    // Its places go to the probes that wanted more.
    if (!this.closed) this.rebalance();
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
    // Per probe object: a probe re-created under the name says it again, and a deleted one's memo is not the new one's.
    const said = `${probe.metadata.uid}:${pod.uid}`;
    if (this.skippedPods.has(said)) return;
    if (this.skippedPods.size > 10_000) this.skippedPods.clear();
    this.skippedPods.add(said);
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
      this.deps.log.error('trigger follow ended unexpectedly', { probe: key, pod: pod.name, error: failureOf(err) });
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
      const outcome = await this.followOnce(entry, key, follow).catch((err: unknown) => ({ failed: failureOf(err), status: 0, hadData: false }));
      if (follow.abort.signal.aborted) return;
      if ('gone' in outcome) {
        log.debug('trigger follow: pod or container gone', { status: outcome.status });
        entry.follows.delete(follow.pod.uid);
        // Not followed again until a round lists it; its place goes to another pod.
        entry.wanted = entry.wanted.filter((p) => p.uid !== follow.pod.uid);
        this.deps.metrics?.triggerFollows.set(this.followCount);
        this.rebalance();
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
      // The follows' own pool: a held-open log never takes a socket the cluster's pod lists and captures need.
      const request = https.get(url, { agent: http.followAgent, headers: http.headers }, (response: IncomingMessage) => {
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
          (err: unknown) => finish({ failed: failureOf(err), status: 0, hadData }),
        );
      });
      request.on('error', (err) => finish({ failed: failureOf(err), status: 0, hadData }));
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
    // Kept as sinceTime for the next opening: a time, never what else a tenant's log server put first.
    const stamp = rfc3339(line.slice(0, space));
    if (!stamp) return;
    const loggedAtMs = Date.parse(stamp);
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
    // Ahead of the scheduled rounds waiting in the queue, at most once per namespace per minimum trigger interval.
    const namespace = probe.metadata.namespace;
    const lifo = firedAt - (this.lastJumpAt.get(namespace) ?? -Infinity) >= this.deps.limits.minIntervalMs;
    const jobId = `trigger-${createHash('sha256').update(`${probe.metadata.uid}|${follow.pod.uid}|${decision.cycle}|${decision.loggedAtMs}`).digest('hex').slice(0, 24)}`;
    try {
      const job = await this.deps.queue.add(
        TRIGGERED_JOB,
        { namespace: probe.metadata.namespace, name: probe.metadata.name, uid: probe.metadata.uid, trigger },
        {
          jobId,
          deduplication: { id: `trigger-${probe.metadata.uid}`, ttl: entry.thresholds.minIntervalMs },
          lifo,
          attempts: 1,
          removeOnComplete: { count: 100 },
          removeOnFail: { count: 100 },
        },
      );
      if (job.id === jobId) {
        this.deps.metrics?.triggers.inc({ reason: decision.reason, result: 'queued' });
        if (lifo) this.lastJumpAt.set(namespace, firedAt);
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
      // The operator's own Redis answered (OOM, READONLY): its words, not a tenant's.
      this.deps.log.warn('memory trigger could not queue its round', { probe: key, pod: follow.pod.name, error: err instanceof Error ? err.message : String(err) });
    }
    return follow.state;
  }
}

/** TriggerWatchDeps.condition through the probe's status (read-modify-write, so the round's own writes are kept). */
export function triggerConditionWriter(probes: Pick<ProbeClient, 'updateStatus'>): NonNullable<TriggerWatchDeps['condition']> {
  return async (probe, update) => {
    await probes.updateStatus(probe.metadata.namespace, probe.metadata.name, (current) =>
      current.metadata.uid === probe.metadata.uid ? { conditions: setCondition(current.status?.conditions, update, current.metadata.generation, new Date()) } : undefined,
    );
  };
}

/**
 * Max-min fair shares of `capacity` between `wants`: nobody gets more than
 * it wants, and what one leaves goes to the others; a remainder goes to the
 * first in order.
 */
export function fairShares(wants: readonly number[], capacity: number): number[] {
  const shares = wants.map(() => 0);
  let left = Math.max(0, Math.floor(capacity));
  let open = wants.flatMap((want, i) => (want > 0 ? [i] : []));
  while (left > 0 && open.length > 0) {
    const each = Math.max(1, Math.floor(left / open.length));
    for (const i of open) {
      const give = Math.min(each, (wants[i] ?? 0) - (shares[i] ?? 0), left);
      shares[i] = (shares[i] ?? 0) + give;
      left -= give;
      if (left === 0) break;
    }
    open = open.filter((i) => (shares[i] ?? 0) < (wants[i] ?? 0));
  }
  return shares;
}

/**
 * A failed follow as the log says it: the error's code (ECONNRESET,
 * ERR_TLS_CERT_ALTNAME_INVALID) or its class, never its message. The API
 * server may be a tenant's (spec.cluster), and Node's TLS messages quote
 * the peer's certificate.
 */
function failureOf(err: unknown): string {
  return errorCode(err) ?? (err instanceof Error ? `${err.name} (no code)` : 'error (no code)');
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

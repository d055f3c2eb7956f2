import { linearSlope, type GcCycle } from './gctrace.js';

/**
 * Memory triggers: whether one pod's newest gctrace cycle should start a
 * capture outside the schedule, and why. Pure: cycles, thresholds and
 * clock in, a decision and the next state out; following logs, queueing
 * and rate limiting across workers belong to src/worker/trigger-watch.ts.
 *
 * A trigger fires when its measure crosses its threshold, not while it
 * stays above it: once fired it is disarmed until the measure is below the
 * threshold again (a heap held above the line gets one capture, the
 * schedule does the rest). A crossing that the per-probe rate limit holds
 * back stays armed, so it fires when the limit allows if the heap is still
 * above. A heap that flaps around the threshold thus fires at most once per
 * minInterval.
 */

export type TriggerReason = 'LiveHeapBytes' | 'MemoryLimitFraction' | 'GrowthRate';

/** The order in which reasons are named when several cross with one cycle: the most specific first. */
const REASON_ORDER: readonly TriggerReason[] = ['MemoryLimitFraction', 'LiveHeapBytes', 'GrowthRate'];

/** A probe's spec.triggers in numbers (after the admin's ceilings). */
export interface TriggerThresholds {
  liveHeapBytes?: number;
  /** Of the container's memory limit, 0 < f <= 1. */
  memoryLimitFraction?: number;
  growthBytesPerMinute?: number;
  /** The growth rate is the least-squares slope of the live heap over this much of the process's own clock. */
  growthWindowMs: number;
  /** At most one triggered round per probe this often. */
  minIntervalMs: number;
}

/** One gctrace cycle and when its line was written (the log's timestamp). */
export interface ObservedCycle {
  cycle: GcCycle;
  loggedAtMs: number;
}

/** What one pod's follow remembers between cycles. */
export interface PodTriggerState {
  /** Cycles of the current process within the growth window (and the newest), oldest first. */
  recent: readonly ObservedCycle[];
  /** Triggers that fired and wait for their measure to drop below the threshold again. */
  disarmed: readonly TriggerReason[];
}

export const INITIAL_TRIGGER_STATE: PodTriggerState = { recent: [], disarmed: [] };

export interface TriggerContext {
  thresholds: TriggerThresholds;
  /** The container's memory limit; without one, memoryLimitFraction does not apply to this pod. */
  memoryLimitBytes?: number;
  /** The probe's last triggered round (any pod, any worker, as far as this one knows). */
  lastTriggeredAtMs?: number;
  nowMs: number;
  /**
   * A cycle logged longer ago than this is history (a follow's first
   * lines, a backlog after a reconnect): it feeds the growth window but
   * never fires, since a capture now cannot show that moment.
   */
  maxLagMs: number;
}

/** One threshold as measured at a cycle. */
export interface TriggerMeasure {
  reason: TriggerReason;
  /** Bytes (live heap) or bytes per minute (growth). */
  value: number;
  threshold: number;
  over: boolean;
}

export type TriggerDecision =
  | {
      fire: true;
      /** The first crossing trigger, most specific first. */
      reason: TriggerReason;
      /** Every trigger that crossed with this cycle: one capture serves them all. */
      reasons: TriggerReason[];
      cycle: number;
      loggedAtMs: number;
      liveHeapBytes: number;
      /** The threshold of `reason`: bytes, or bytes per minute for GrowthRate. */
      thresholdBytes: number;
      growthBytesPerMinute?: number;
      memoryLimitBytes?: number;
    }
  | {
      fire: false;
      why: 'unreadable' | 'duplicate' | 'below' | 'disarmed' | 'history' | 'rate-limited';
    };

/** A cycle more than this is kept only while it is within the growth window. */
const MAX_RECENT = 2048;

/** Adds one cycle to a pod's state and decides whether it fires. Cycles must come in log order. */
export function observeCycle(state: PodTriggerState, observed: ObservedCycle, context: TriggerContext): { state: PodTriggerState; decision: TriggerDecision } {
  const { cycle: c } = observed;
  // The log is the tenant's: figures no Go runtime prints (beyond 2^53) are not read, so none reaches the status.
  if (![c.cycle, c.liveHeapBytes].every(Number.isSafeInteger) || !Number.isFinite(c.atSeconds) || !Number.isFinite(observed.loggedAtMs)) {
    return { state, decision: { fire: false, why: 'unreadable' } };
  }
  const last = state.recent[state.recent.length - 1];
  const notNewer = last !== undefined && observed.cycle.cycle <= last.cycle.cycle;
  // A reconnect's sinceTime is inclusive to the second: lines seen again.
  if (notNewer && observed.loggedAtMs <= last.loggedAtMs) return { state, decision: { fire: false, why: 'duplicate' } };
  // Cycle numbers going back in a later line: the process restarted; its history says nothing about the new one.
  const base = notNewer ? INITIAL_TRIGGER_STATE : state;
  const windowStart = observed.cycle.atSeconds - context.thresholds.growthWindowMs / 1000;
  const recent = [...base.recent, observed].filter((c) => c.cycle.atSeconds >= windowStart).slice(-MAX_RECENT);

  const measures = measureTriggers(recent, context);
  // Below its threshold again: armed for the next crossing.
  const disarmed = base.disarmed.filter((reason) => measures.some((m) => m.reason === reason && m.over));
  const next: PodTriggerState = { recent, disarmed };
  const crossing = measures.filter((m) => m.over && !disarmed.includes(m.reason));
  if (crossing.length === 0) return { state: next, decision: { fire: false, why: measures.some((m) => m.over) ? 'disarmed' : 'below' } };
  if (context.nowMs - observed.loggedAtMs > context.maxLagMs) return { state: next, decision: { fire: false, why: 'history' } };
  if (context.lastTriggeredAtMs !== undefined && context.nowMs - context.lastTriggeredAtMs < context.thresholds.minIntervalMs) {
    return { state: next, decision: { fire: false, why: 'rate-limited' } };
  }
  const first = crossing[0] as TriggerMeasure;
  const growth = measures.find((m) => m.reason === 'GrowthRate');
  return {
    state: next,
    decision: {
      fire: true,
      reason: first.reason,
      reasons: crossing.map((m) => m.reason),
      cycle: observed.cycle.cycle,
      loggedAtMs: observed.loggedAtMs,
      liveHeapBytes: observed.cycle.liveHeapBytes,
      thresholdBytes: first.threshold,
      ...(growth ? { growthBytesPerMinute: Math.min(Number.MAX_SAFE_INTEGER, Math.max(-Number.MAX_SAFE_INTEGER, Math.round(growth.value))) } : {}),
      ...(context.memoryLimitBytes !== undefined && context.thresholds.memoryLimitFraction !== undefined ? { memoryLimitBytes: context.memoryLimitBytes } : {}),
    },
  };
}

/** The state after a fired decision was acted on (its round queued): its triggers wait for the next crossing. */
export function disarm(state: PodTriggerState, reasons: readonly TriggerReason[]): PodTriggerState {
  return { ...state, disarmed: [...new Set([...state.disarmed, ...reasons])] };
}

/** Each configured trigger at the newest cycle of `recent`, most specific first. */
export function measureTriggers(recent: readonly ObservedCycle[], context: Pick<TriggerContext, 'thresholds' | 'memoryLimitBytes'>): TriggerMeasure[] {
  const newest = recent[recent.length - 1];
  if (!newest) return [];
  const { thresholds } = context;
  // A forced cycle (runtime.GC()) still marks the true live heap: it counts for the levels.
  const live = newest.cycle.liveHeapBytes;
  const measures: TriggerMeasure[] = [];
  if (thresholds.memoryLimitFraction !== undefined && context.memoryLimitBytes !== undefined && context.memoryLimitBytes > 0) {
    const threshold = Math.floor(context.memoryLimitBytes * thresholds.memoryLimitFraction);
    measures.push({ reason: 'MemoryLimitFraction', value: live, threshold, over: live >= threshold });
  }
  if (thresholds.liveHeapBytes !== undefined) {
    measures.push({ reason: 'LiveHeapBytes', value: live, threshold: thresholds.liveHeapBytes, over: live >= thresholds.liveHeapBytes });
  }
  if (thresholds.growthBytesPerMinute !== undefined) {
    const rate = growthPerMinute(recent, thresholds.growthWindowMs);
    measures.push({ reason: 'GrowthRate', value: rate ?? 0, threshold: thresholds.growthBytesPerMinute, over: rate !== undefined && rate >= thresholds.growthBytesPerMinute });
  }
  return measures.sort((a, b) => REASON_ORDER.indexOf(a.reason) - REASON_ORDER.indexOf(b.reason));
}

/**
 * Live-heap slope over the growth window, per minute of the process's own
 * clock; undefined until the window is half covered by at least three
 * unforced cycles (gctrace prints whole MB: two cycles a second apart
 * would read a 1 MB step as 60 MB/min). Forced cycles come at whatever
 * moment someone asked for one, so they stay out, as in the gc trend.
 */
export function growthPerMinute(recent: readonly ObservedCycle[], windowMs: number): number | undefined {
  const unforced = recent.filter((c) => !c.cycle.forced);
  const first = unforced[0];
  const last = unforced[unforced.length - 1];
  if (!first || !last || unforced.length < 3 || (last.cycle.atSeconds - first.cycle.atSeconds) * 1000 < windowMs / 2) return undefined;
  const slope = linearSlope(
    unforced.map((c) => c.cycle.atSeconds),
    unforced.map((c) => c.cycle.liveHeapBytes),
  );
  return slope * 60;
}

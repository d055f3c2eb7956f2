import { durationMs } from './duration.js';
import type { MapLeakProbeSpec } from './types.js';
import { DEFAULT_MAX_SUMMARY_BYTES, DEFAULT_SUMMARY_CAPS, type SummaryCaps } from '../store/summary-caps.js';

/**
 * Limits the operator's admin sets over every probe (operator flags). A
 * tenant's value above a ceiling is lowered to it, never trusted, and the
 * probe's status says so (condition CeilingsApplied).
 */
export interface Ceilings {
  /** Largest answer read from a target (spec.pprof.maxProfileBytes). */
  maxProfileBytes: number;
  /** Largest inflated gzip profile. */
  maxInflatedBytes: number;
  /** Largest inflated/compressed ratio; Go writes profiles with gzip.BestSpeed (about 2:1 measured), so 50 is generous. */
  maxCompressionRatio: number;
  /** Longest trial decode of one answer in the worker's decode thread; slower profiles fail the target. */
  maxDecodeMs: number;
  /** Longest request to a target (spec.pprof.timeout). */
  maxRequestTimeoutMs: number;
  /** Symbol requests per capture (captureHeap's maxSymbolRequests). */
  maxSymbolRequests: number;
  /** Largest /symbol answer: a truthful one to a 3,000-character query is at most ~780 KB (MAX_TRUTHFUL_SYMBOL_ANSWER). */
  maxSymbolAnswerBytes: number;
  /** Largest debug=1 answer (it is read only to learn hidden frames; past it a capture keeps the proto's evidence). */
  maxDebug1Bytes: number;
  /** Shortest time between two debug=1 reads of one binary (the first read is at once). */
  minDebug1IntervalMs: number;
  /** Longest capture of one pod, every request included; 0: three times the probe's effective timeout. */
  maxCaptureMs: number;
  /** Answer bytes one worker process holds at once over all its captures; a capture waits for them, then fails Busy. */
  maxInflightBytes: number;
  /** Heap one worker's knowledge of binaries (symbol names, hidden-frame tables) may take. */
  maxKnowledgeBytes: number;
  /** The share of maxKnowledgeBytes one namespace's binaries may take; past it only its own knowledge is evicted. */
  maxKnowledgeBytesPerNamespace: number;
  /** Pods captured per probe and round; the rest are left out (status.targetsOmitted). */
  maxTargetsPerProbe: number;
  /** Probes scheduled per namespace, oldest first; later ones get Ready=False NamespaceProbeLimit. */
  maxProbesPerNamespace: number;
  /** Shortest spec.schedule.interval. */
  minIntervalMs: number;
  /** Largest spec.schedule.window. */
  maxWindow: number;
  /** Redis bytes one target's kept captures (summary + raw profile each) may take; large ones shorten that target's window (never below 2). Also the most a probe's pinned incident captures may take together. */
  maxRedisBytesPerTarget: number;
  /** Redis bytes one namespace's kept captures (summaries and raw profiles, pinned ones included) and its series' gctrace and analyses take over all its probes; past it a capture is kept without its raw profile, then refused (NamespaceStoreBudget), and a growing gctrace or analysis keeps its last value. */
  maxRedisBytesPerNamespace: number;
  /** Largest raw profile stored with a capture (independent of maxProfileBytes, what is read); a larger one is not kept, its summary is. */
  maxStoredProfileBytes: number;
  /** Usages (owner sites) one capture's stored summary keeps, the largest first (summary-caps.ts). */
  maxUsagesPerCapture: number;
  /** Largest stored summary of one capture; a larger one is refused (TooLarge). */
  maxSummaryBytes: number;
  /** Warning Events one round may record; the rest are summed up in one. */
  maxEventsPerRound: number;
  /** Incidents (OOMKilled or restarted containers) kept per probe, newest first. */
  maxIncidents: number;
  /** How long an incident and its pinned captures are kept. */
  incidentRetentionMs: number;
  /** Pod logs one worker follows at once for spec.triggers; pods beyond it are not watched between rounds. */
  maxTriggerFollows: number;
  /** Shortest spec.triggers.minInterval (raised to it). */
  minTriggerIntervalMs: number;
  /** Shortest time between two openings of one pod's log follow: a follow the server ends at once becomes a poll at this period. */
  triggerPollMs: number;
  /** Largest spec.thresholds.maxFindings: each kept map finding is a status entry and a Prometheus series (mapleak_map_inuse_bytes). */
  maxFindings: number;
  /** Watches of remote (spec.cluster) probes' pods one worker holds open between rounds; past it the oldest ends (0: none). */
  maxRemotePodWatches: number;
  /** Longest one such watch stays open. */
  maxRemotePodWatchMs: number;
  /** Bytes one such watch reads from the tenant's API server before it is cut off. */
  maxRemotePodWatchBytes: number;
}

/**
 * The operator's defaults without flags: bounded, but loose enough for
 * development (intervals down to the CRD's 5 s). The chart sets tighter
 * ones (values.yaml `limits`).
 */
export const DEFAULT_CEILINGS: Ceilings = {
  maxProfileBytes: 64 * 1024 * 1024,
  maxInflatedBytes: 256 * 1024 * 1024,
  maxCompressionRatio: 50,
  maxDecodeMs: 5_000,
  maxRequestTimeoutMs: 30_000,
  maxSymbolRequests: 64,
  maxSymbolAnswerBytes: 1024 * 1024,
  maxDebug1Bytes: 32 * 1024 * 1024,
  minDebug1IntervalMs: 10 * 60 * 1000,
  maxCaptureMs: 0,
  maxInflightBytes: 256 * 1024 * 1024,
  maxKnowledgeBytes: 128 * 1024 * 1024,
  maxKnowledgeBytesPerNamespace: 32 * 1024 * 1024,
  maxTargetsPerProbe: 100,
  maxProbesPerNamespace: 500,
  minIntervalMs: 5_000,
  maxWindow: 48,
  maxRedisBytesPerTarget: 256 * 1024 * 1024,
  maxRedisBytesPerNamespace: 1024 * 1024 * 1024,
  maxStoredProfileBytes: 16 * 1024 * 1024,
  maxUsagesPerCapture: DEFAULT_SUMMARY_CAPS.maxUsages,
  maxSummaryBytes: DEFAULT_MAX_SUMMARY_BYTES,
  maxEventsPerRound: 10,
  maxIncidents: 10,
  incidentRetentionMs: 7 * 24 * 3600 * 1000,
  maxTriggerFollows: 100,
  minTriggerIntervalMs: 10_000,
  triggerPollMs: 2_000,
  maxFindings: 50,
  maxRemotePodWatches: 100,
  maxRemotePodWatchMs: 15 * 60_000,
  maxRemotePodWatchBytes: 4 * 1024 * 1024,
};

/** The spec values a round uses, after the ceilings. */
export interface EffectiveSettings {
  maxProfileBytes: number;
  timeoutMs: number;
  intervalMs: number;
  window: number;
  /** spec.triggers.minInterval, raised to the operator's minimum; absent without spec.triggers. */
  triggerMinIntervalMs?: number;
  /** One line per lowered value, e.g. "spec.schedule.window 100 lowered to 24". Empty: none applied. */
  lowered: string[];
  /** spec.thresholds.maxFindings, lowered to the operator's ceiling. */
  maxFindings: number;
}

/** Pure: what a probe's spec becomes under the admin's ceilings. Throws on an unparsable duration. */
export function effectiveSettings(spec: MapLeakProbeSpec, ceilings: Ceilings): EffectiveSettings {
  const lowered: string[] = [];
  const atMost = (field: string, value: number, ceiling: number, unit = ''): number => {
    if (value <= ceiling) return value;
    lowered.push(`${field} ${value}${unit} lowered to the operator's ceiling ${ceiling}${unit}`);
    return ceiling;
  };
  const maxProfileBytes = atMost('spec.pprof.maxProfileBytes', spec.pprof.maxProfileBytes, ceilings.maxProfileBytes);
  const timeoutMs = atMost('spec.pprof.timeout', durationMs(spec.pprof.timeout), ceilings.maxRequestTimeoutMs, 'ms');
  const window = atMost('spec.schedule.window', spec.schedule.window, ceilings.maxWindow);
  let intervalMs = durationMs(spec.schedule.interval);
  if (intervalMs < ceilings.minIntervalMs) {
    lowered.push(`spec.schedule.interval ${intervalMs}ms raised to the operator's minimum ${ceilings.minIntervalMs}ms`);
    intervalMs = ceilings.minIntervalMs;
  }
  let triggerMinIntervalMs: number | undefined;
  if (spec.triggers) {
    triggerMinIntervalMs = durationMs(spec.triggers.minInterval ?? '5m');
    if (triggerMinIntervalMs < ceilings.minTriggerIntervalMs) {
      lowered.push(`spec.triggers.minInterval ${triggerMinIntervalMs}ms raised to the operator's minimum ${ceilings.minTriggerIntervalMs}ms`);
      triggerMinIntervalMs = ceilings.minTriggerIntervalMs;
    }
  }
  const maxFindings = atMost('spec.thresholds.maxFindings', spec.thresholds.maxFindings, ceilings.maxFindings);
  return { maxProfileBytes, timeoutMs, intervalMs, window, ...(triggerMinIntervalMs !== undefined ? { triggerMinIntervalMs } : {}), lowered, maxFindings };
}

/**
 * A capture's deadline under the ceilings: the proto and debug=1 each
 * within a request timeout, all symbol requests together within one more
 * (so three timeouts), never past --max-capture-time when the admin set one.
 */
export function captureDeadline(timeoutMs: number, ceilings: Pick<Ceilings, 'maxCaptureMs'>): number {
  const derived = 3 * timeoutMs;
  return ceilings.maxCaptureMs > 0 ? Math.min(derived, ceilings.maxCaptureMs) : derived;
}

/** Ceilings that must hold together, as a sentence naming the flags (undefined: they do). */
export function inconsistentCeilings(ceilings: Ceilings): string | undefined {
  if (ceilings.maxInflightBytes < ceilings.maxProfileBytes) return `--max-inflight-bytes (${ceilings.maxInflightBytes}) must be at least --max-profile-bytes (${ceilings.maxProfileBytes}): a profile at the limit could never be read`;
  if (ceilings.maxInflightBytes < ceilings.maxDebug1Bytes) return `--max-inflight-bytes (${ceilings.maxInflightBytes}) must be at least --max-debug1-bytes (${ceilings.maxDebug1Bytes})`;
  if (ceilings.maxKnowledgeBytesPerNamespace > ceilings.maxKnowledgeBytes) return `--max-knowledge-bytes-per-namespace (${ceilings.maxKnowledgeBytesPerNamespace}) must be at most --max-knowledge-bytes (${ceilings.maxKnowledgeBytes})`;
  if (ceilings.maxRedisBytesPerNamespace < ceilings.maxSummaryBytes) return `--max-redis-bytes-per-namespace (${ceilings.maxRedisBytesPerNamespace}) must be at least --max-summary-bytes (${ceilings.maxSummaryBytes}): a summary at the limit could never be kept`;
  if (ceilings.maxSymbolAnswerBytes < 4096) return `--max-symbol-answer-bytes must be at least 4Ki, got ${ceilings.maxSymbolAnswerBytes}`;
  // One pod's watch event may be as long as a pod in a list (POD_LIST_BYTES_PER_POD): a smaller limit would cut off every watch at its first event.
  if (ceilings.maxRemotePodWatchBytes < 64 * 1024) return `--max-remote-pod-watch-bytes must be at least 64Ki (one pod's watch event), got ${ceilings.maxRemotePodWatchBytes}`;
  if (ceilings.maxRemotePodWatchMs < 1000) return `--max-remote-pod-watch-time must be at least 1s (a watch's timeoutSeconds), got ${ceilings.maxRemotePodWatchMs}ms`;
  return undefined;
}

/**
 * Captures one target keeps: the window, shortened when its captures are
 * large (Redis bytes per target). `captureBytes` is all one capture stores:
 * its summary and its raw profile.
 */
export function keptCaptures(window: number, captureBytes: number, ceilings: Pick<Ceilings, 'maxRedisBytesPerTarget'>): number {
  if (captureBytes <= 0) return window;
  return Math.max(2, Math.min(window, Math.floor(ceilings.maxRedisBytesPerTarget / captureBytes)));
}

/** What the series store may keep under the ceilings (SeriesStore's StoreLimits). */
export function storeLimits(ceilings: Pick<Ceilings, 'maxRedisBytesPerNamespace' | 'maxStoredProfileBytes'>): { maxBytesPerNamespace: number; maxStoredProfileBytes: number } {
  return { maxBytesPerNamespace: ceilings.maxRedisBytesPerNamespace, maxStoredProfileBytes: ceilings.maxStoredProfileBytes };
}

/** The summary bounds the ceilings set (names: as many code points as the status keeps). */
export function summaryCaps(ceilings: Pick<Ceilings, 'maxUsagesPerCapture'>): SummaryCaps {
  return { ...DEFAULT_SUMMARY_CAPS, maxUsages: ceilings.maxUsagesPerCapture };
}

/** A Go-style duration for a count of milliseconds ("90s", "1500ms"), for specs rewritten with effective values. */
export function formatDurationMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

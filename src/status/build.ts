import type { Pattern } from '../analysis/advice.js';
import type { GcSummary } from '../analysis/gctrace.js';
import type { Finding, SeriesAnalysis } from '../analysis/series.js';
import { strongerEvidence } from '../analysis/attribute.js';
import { formatBytes } from '../analysis/bytes.js';
import { int32Line, printable, statusFrame, wholeBytes } from '../api/bounded.js';
import type { FindingStatus, GcStatus, MapLeakProbeStatus, TargetStatus, Verdict } from '../api/types.js';
import type { TriggerJobData } from '../queue/names.js';
import type { ConditionUpdate } from './conditions.js';
import { NAMESPACE_STORE_BUDGET, NamespaceStoreBudgetError, profilesDroppedMessage, type STORED_PROFILE_LIMIT } from '../store/store-budget.js';

/** What one target (pod) contributed in this round. */
export interface TargetRound {
  pod: { name: string; namespace: string; uid: string };
  /** Captures kept in the target's series. */
  captures: number;
  lastCaptureTime?: string;
  error?: { reason: string; message: string };
  /** The capture was kept without its raw profile: past the namespace's Redis budget, or past --max-stored-profile-bytes. */
  profileDropped?: typeof NAMESPACE_STORE_BUDGET | typeof STORED_PROFILE_LIMIT;
  analysis?: SeriesAnalysis;
  gc?: GcSummary;
}

export interface StatusLimits {
  maxFindings: number;
  maxTargets: number;
  maxPodsPerFinding: number;
}

export const DEFAULT_STATUS_LIMITS: StatusLimits = { maxFindings: 10, maxTargets: 20, maxPodsPerFinding: 10 };

const PATTERN_RANK: Record<Pattern, number> = { growing: 0, retained: 1, churn: 2, stable: 3 };

/** A finding's identity across pods: kind and owner line, and its caller line when it has one (each caller of a library line is its own map, as in siteKey). */
export function findingKey(f: Pick<Finding, 'kind' | 'site' | 'caller'>): string {
  const owner = `${f.kind}|${f.site.function}|${f.site.file}|${f.site.line}`;
  return f.caller ? `${owner}|${f.caller.function}|${f.caller.file}|${f.caller.line}` : owner;
}

/** The key a finding with a caller had before the caller was part of it (its owner line only): its first sighting carries over. */
export function formerFindingKey(f: Pick<Finding, 'kind' | 'site' | 'caller'>): string | undefined {
  return f.caller ? findingKey({ kind: f.kind, site: f.site }) : undefined;
}

/**
 * The capture-side part of a probe's status: findings merged across pods
 * (most serious first, bounded), per-target state (failures first,
 * bounded), GC trend and the verdict. Pure, so the status stays a few KB
 * whatever the number of pods.
 */
export function buildCaptureStatus(
  rounds: readonly TargetRound[],
  firstSeen: ReadonlyMap<string, string>,
  limits: StatusLimits = DEFAULT_STATUS_LIMITS,
): Pick<MapLeakProbeStatus, 'verdict' | 'targetCount' | 'mapInuseBytes' | 'mapMemory' | 'targets' | 'targetsOmitted' | 'findings' | 'gc' | 'lastCaptureTime'> {
  const merged = new Map<string, FindingStatus>();
  for (const round of rounds) {
    for (const f of round.analysis?.findings ?? []) {
      const key = findingKey(f);
      const existing = merged.get(key);
      if (!existing) {
        merged.set(key, {
          site: statusFrame(f.site),
          ...(f.caller ? { caller: statusFrame(f.caller) } : {}),
          ...(f.scope ? { scope: f.scope } : {}),
          ...(f.lines?.length ? { lines: f.lines.slice(0, 20).map(int32Line) } : {}),
          kind: f.kind,
          pattern: f.pattern,
          inuseBytes: wholeBytes(f.inuseBytes),
          growthBytesPerHour: wholeBytes(f.growthBytesPerHour, { signed: true }),
          allocBytesPerHour: wholeBytes(f.allocBytesPerHour),
          evidence: f.evidence,
          mapImpl: f.mapImpl,
          confidence: f.confidence,
          advice: printable(f.advice, 512),
          pods: [round.pod.name],
          podCount: 1,
          ...(firstSeen.has(key) ? { firstSeen: firstSeen.get(key) } : {}),
        });
        continue;
      }
      existing.inuseBytes += wholeBytes(f.inuseBytes);
      existing.growthBytesPerHour += wholeBytes(f.growthBytesPerHour, { signed: true });
      existing.allocBytesPerHour += wholeBytes(f.allocBytesPerHour);
      existing.podCount++;
      if (existing.pods.length < limits.maxPodsPerFinding) existing.pods.push(round.pod.name);
      existing.confidence = Math.max(existing.confidence, f.confidence);
      existing.evidence = strongerEvidence(existing.evidence, f.evidence);
      if (PATTERN_RANK[f.pattern] < PATTERN_RANK[existing.pattern]) {
        existing.pattern = f.pattern;
        // That pod's own advice: the engine's may be specific (classic overflow churn, inline keys and values).
        existing.advice = printable(f.advice, 512);
      }
    }
  }
  const findings = [...merged.values()].sort(bySeriousness).slice(0, limits.maxFindings);

  const targets: TargetStatus[] = [...rounds]
    .sort((a, b) => Number(Boolean(b.error)) - Number(Boolean(a.error)) || a.pod.name.localeCompare(b.pod.name))
    .map((r) => ({
      name: r.pod.name,
      namespace: r.pod.namespace,
      captures: r.captures,
      ...(r.lastCaptureTime ? { lastCaptureTime: r.lastCaptureTime } : {}),
      ...(r.error ? { lastError: r.error.message.slice(0, 512), lastErrorReason: r.error.reason } : {}),
      ...(r.analysis ? { mapImpl: r.analysis.mapImpl } : {}),
    }));

  const mapInuseBytes = Math.round(rounds.reduce((sum, r) => sum + (r.analysis?.totals.mapInuseBytes ?? 0), 0));
  const lastCaptureTime = rounds.map((r) => r.lastCaptureTime).filter((t): t is string => Boolean(t)).sort().pop();
  return {
    verdict: verdictOf(findings, rounds),
    targetCount: rounds.length,
    mapInuseBytes,
    mapMemory: formatBytes(mapInuseBytes),
    targets: targets.slice(0, limits.maxTargets),
    targetsOmitted: Math.max(0, targets.length - limits.maxTargets),
    findings,
    ...(gcOf(rounds) ? { gc: gcOf(rounds) } : {}),
    ...(lastCaptureTime ? { lastCaptureTime } : {}),
  };
}

/**
 * Leaking: some map grows without bound. Retaining: some map holds drained
 * memory. Healthy: every answering target has a series and neither shows.
 * Unknown: not enough captures to say.
 */
export function verdictOf(findings: readonly FindingStatus[], rounds: readonly TargetRound[]): Verdict {
  const maps = findings.filter((f) => f.kind === 'map');
  if (maps.some((f) => f.pattern === 'growing')) return 'Leaking';
  if (maps.some((f) => f.pattern === 'retained')) return 'Retaining';
  const withSeries = rounds.filter((r) => r.analysis && r.analysis.captures - r.analysis.staleCaptures >= 2);
  return withSeries.length > 0 ? 'Healthy' : 'Unknown';
}

function gcOf(rounds: readonly TargetRound[]): GcStatus | undefined {
  const summaries = rounds.map((r) => r.gc).filter((g): g is GcSummary => Boolean(g && g.cycles > 0));
  if (summaries.length === 0) return undefined;
  return {
    liveHeapBytes: Math.round(summaries.reduce((s, g) => s + g.liveHeapBytes, 0)),
    liveHeapGrowthBytesPerHour: Math.round(summaries.reduce((s, g) => s + g.liveHeapGrowthBytesPerHour, 0)),
    gcCpuPercent: Math.max(...summaries.map((g) => g.gcCpuPercent)),
    cycles: summaries.reduce((s, g) => s + g.cycles, 0),
  };
}

function bySeriousness(a: FindingStatus, b: FindingStatus): number {
  return (
    PATTERN_RANK[a.pattern] - PATTERN_RANK[b.pattern] ||
    (a.kind === b.kind ? 0 : a.kind === 'map' ? -1 : 1) ||
    (a.pattern === 'growing' ? b.growthBytesPerHour - a.growthBytesPerHour : b.inuseBytes - a.inuseBytes)
  );
}

/**
 * Capturing and Degraded after a round, with messages a person can act on.
 * `selection` says which pods were looked for, for the "no targets" case.
 */
export function roundConditions(rounds: readonly TargetRound[], selection: string): ConditionUpdate[] {
  const failing = rounds.filter((r) => r.error);
  const captured = rounds.length - failing.length;
  const capturing: ConditionUpdate =
    rounds.length === 0
      ? { type: 'Capturing', status: 'False', reason: 'NoTargets', message: `No running pod matches (${selection}).` }
      : captured === 0
        ? { type: 'Capturing', status: 'False', reason: 'AllTargetsFailing', message: `All ${rounds.length} targets failed; see status.targets[].lastError.` }
        : { type: 'Capturing', status: 'True', reason: 'CapturesSucceeding', message: `Captured ${captured} of ${rounds.length} targets.` };
  const degraded: ConditionUpdate =
    failing.length > 0
      ? { type: 'Degraded', status: 'True', reason: dominantReason(failing), message: describeFailures(failing, rounds.length) }
      : { type: 'Degraded', status: 'False', reason: 'AllTargetsHealthy', message: 'Every selected target answered.' };
  return [capturing, degraded];
}

/**
 * Degraded with reason NamespaceStoreBudget when the namespace's Redis
 * budget refused captures of this round or kept them without their raw
 * profile (it names the budget, never a tenant's string); undefined when
 * it did neither. A refusal says more than a dropped profile.
 */
export function namespaceBudgetCondition(rounds: readonly TargetRound[], budget: number): ConditionUpdate | undefined {
  const refused = rounds.filter((r) => r.error?.reason === NAMESPACE_STORE_BUDGET);
  if (refused.length > 0) {
    return { type: 'Degraded', status: 'True', reason: NAMESPACE_STORE_BUDGET, message: `${refused.length} of ${rounds.length} targets' captures were ${new NamespaceStoreBudgetError(budget).message}.` };
  }
  const dropped = rounds.filter((r) => r.profileDropped === NAMESPACE_STORE_BUDGET).length;
  return dropped > 0 ? { type: 'Degraded', status: 'True', reason: NAMESPACE_STORE_BUDGET, message: `${profilesDroppedMessage(dropped, budget)}.` } : undefined;
}

/** The most common failure, as a condition reason: Capture<Why>. */
function dominantReason(failing: readonly TargetRound[]): string {
  const counts = new Map<string, number>();
  for (const r of failing) counts.set(r.error?.reason ?? 'CaptureFailed', (counts.get(r.error?.reason ?? 'CaptureFailed') ?? 0) + 1);
  const [reason] = [...counts].sort((a, b) => b[1] - a[1])[0] ?? ['CaptureFailed'];
  return `Capture${reason.replace(/^Capture/, '')}`;
}

function describeFailures(failing: readonly TargetRound[], total: number): string {
  const examples = failing
    .slice(0, 3)
    .map((r) => `${r.pod.name}: ${r.error?.message ?? ''}`)
    .join('; ');
  return `${failing.length} of ${total} targets failing. ${examples}`.slice(0, 2000);
}

/** status.lastTriggeredTime and lastTrigger for a triggered round (captureTime: when the crossing pod was captured). */
export function triggeredStatus(trigger: TriggerJobData, rounds: readonly TargetRound[]): Pick<MapLeakProbeStatus, 'lastTriggeredTime' | 'lastTrigger'> {
  const { firedTime, ...why } = trigger;
  const captured = rounds.find((r) => r.pod.name === trigger.pod && !r.error)?.lastCaptureTime;
  return { lastTriggeredTime: firedTime, lastTrigger: { ...why, ...(captured ? { captureTime: captured } : {}) } };
}

/** The MemoryTriggered Event: the figures of the crossing and what the round did, in the operator's words. */
export function triggerEventMessage(trigger: TriggerJobData, rounds: readonly TargetRound[]): string {
  const crossed = trigger.reason === 'GrowthRate'
    ? `grew ${formatBytes(trigger.growthBytesPerMinute ?? 0)}/min (spec.triggers.growthBytesPerMinute ${formatBytes(trigger.thresholdBytes)}/min)`
    : trigger.reason === 'MemoryLimitFraction'
      ? `reached ${formatBytes(trigger.thresholdBytes)}, spec.triggers.memoryLimitFraction of the container's memory limit ${formatBytes(trigger.memoryLimitBytes ?? 0)}`
      : `reached spec.triggers.liveHeapBytes ${formatBytes(trigger.thresholdBytes)}`;
  const captured = rounds.filter((r) => !r.error).length;
  return `pod ${trigger.pod}: live heap ${formatBytes(trigger.liveHeapBytes)} at GC cycle ${trigger.gcCycle} ${crossed}; triggered round captured ${captured} of ${rounds.length} targets`;
}

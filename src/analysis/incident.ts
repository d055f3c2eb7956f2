import { int32Line, printable, statusFrame, wholeBytes } from '../api/bounded.js';
import type { IncidentFindingStatus, IncidentStatus, MapLeakProbe } from '../api/types.js';
import { DEFAULT_MEM_PROFILE_RATE, type Finding, type TimedSnapshot } from './series.js';

/** A `terminated` container state as the pod status gives it (checked by the adapter that read it). */
export interface ContainerTermination {
  reason: string;
  exitCode?: number;
  finishedAt?: string;
}

/**
 * A followed container that ended for good, with no restart to come: its
 * pod Failed (restartPolicy Never: a Job's pod, a batch pod), or the pod
 * was evicted. What the operator saw of it, from a round's pod list or
 * noted from the controller's pod watch before the pod went away.
 */
export interface ContainerEnd {
  podUid: string;
  container: string;
  restartCount: number;
  /** The container's `state.terminated`. */
  termination?: ContainerTermination;
  /** Why the pod ended, when it was evicted or disrupted (podDisruption). */
  disruption?: string;
}

/**
 * Whether an end is an incident: the kernel's OOM kill, any other non-zero
 * exit, or an eviction. A container that completed (exit 0, its pod not
 * evicted) did what it was for; an end with neither a termination nor a
 * disruption says nothing, and nothing is guessed.
 */
export function endIsIncident(end: ContainerEnd): boolean {
  if (end.disruption) return true;
  const t = end.termination;
  return t !== undefined && (t.reason === 'OOMKilled' || (t.exitCode !== undefined && t.exitCode !== 0) || (t.exitCode === undefined && t.reason !== 'Completed'));
}

/** A noted end read back from the store, checked field by field (undefined when it is not one). */
export function asContainerEnd(value: unknown): ContainerEnd | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.podUid !== 'string' || typeof v.container !== 'string' || !Number.isInteger(v.restartCount)) return undefined;
  const t = typeof v.termination === 'object' && v.termination !== null ? (v.termination as Record<string, unknown>) : undefined;
  const termination = t && typeof t.reason === 'string'
    ? { reason: t.reason, ...(Number.isInteger(t.exitCode) ? { exitCode: t.exitCode as number } : {}), ...(typeof t.finishedAt === 'string' ? { finishedAt: t.finishedAt } : {}) }
    : undefined;
  return { podUid: v.podUid, container: v.container, restartCount: v.restartCount as number, ...(termination ? { termination } : {}), ...(typeof v.disruption === 'string' ? { disruption: v.disruption } : {}) };
}

/** Findings an incident keeps: the most serious few, as the status's own findings are ordered. */
export const INCIDENT_FINDINGS = 3;

/**
 * Whether a site was still growing when its container ended: `growing` over
 * the series, and its last capture holds its most (maps never shrink, so a
 * map still growing peaks at the end). "Its most" allows for sampling noise:
 * a site of B bytes sampled every R bytes is estimated within about √(B·R).
 */
export function growingUpToEnd(finding: Pick<Finding, 'pattern' | 'inuseBytes' | 'maxInuseBytes'>, memProfileRate: number): boolean {
  if (finding.pattern !== 'growing') return false;
  const noise = Math.sqrt(finding.maxInuseBytes * memProfileRate);
  return finding.inuseBytes >= finding.maxInuseBytes - noise;
}

/** The sampling rate of a series (the largest its profiles name, else the runtime's default). */
export function seriesMemProfileRate(series: readonly Pick<TimedSnapshot, 'memProfileRate'>[]): number {
  return Math.max(0, ...series.map((s) => s.memProfileRate ?? 0)) || DEFAULT_MEM_PROFILE_RATE;
}

/** A terminated container's findings (most serious first) as an incident keeps them, bounded. */
export function incidentFindings(findings: readonly Finding[], memProfileRate: number, max = INCIDENT_FINDINGS): IncidentFindingStatus[] {
  return findings.slice(0, max).map((f) => ({
    function: printable(f.site.function, 512),
    file: printable(f.site.file, 512),
    line: int32Line(f.site.line),
    ...(f.caller ? { caller: statusFrame(f.caller) } : {}),
    kind: f.kind,
    pattern: f.pattern,
    inuseBytes: wholeBytes(f.inuseBytes),
    growthBytesPerHour: wholeBytes(f.growthBytesPerHour, { signed: true }),
    growingUpToKill: growingUpToEnd(f, memProfileRate),
  }));
}

/** Incidents not yet older than the retention: the same rule for the status wherever it is written (rounds, early ends, a suspended probe). */
export function incidentsWithinRetention<T extends Pick<IncidentStatus, 'time'>>(incidents: readonly T[], now: Date, retentionMs: number): T[] {
  return incidents.filter((i) => Date.parse(i.time) >= now.getTime() - retentionMs);
}

/** Whether a probe's status shows an incident older than the retention (a write is due). */
export function hasExpiredIncidents(probe: Pick<MapLeakProbe, 'status'>, now: Date, retentionMs: number): boolean {
  const incidents = probe.status?.incidents ?? [];
  return incidentsWithinRetention(incidents, now, retentionMs).length < incidents.length;
}

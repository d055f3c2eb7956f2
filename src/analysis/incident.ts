import { int32Line, printable, wholeBytes } from '../api/bounded.js';
import type { IncidentFindingStatus, IncidentStatus, MapLeakProbe } from '../api/types.js';
import { DEFAULT_MEM_PROFILE_RATE, type Finding, type TimedSnapshot } from './series.js';

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

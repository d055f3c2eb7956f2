import type { IncidentFindingStatus } from '../api/types.js';
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
    function: f.site.function.slice(0, 512),
    file: f.site.file.slice(0, 512),
    line: f.site.line,
    kind: f.kind,
    pattern: f.pattern,
    inuseBytes: Math.round(f.inuseBytes),
    growthBytesPerHour: Math.round(f.growthBytesPerHour),
    growingUpToKill: growingUpToEnd(f, memProfileRate),
  }));
}

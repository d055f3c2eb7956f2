import type { Finding, SeriesAnalysis } from './series.js';
import type { GcSummary } from './gctrace.js';

/** The `mapleak analyze --json` document. */
export interface Report {
  captures: number;
  staleCaptures: number;
  window: { start: string; end: string };
  mapImpl: SeriesAnalysis['mapImpl'];
  totals: SeriesAnalysis['totals'];
  findings: Finding[];
  gc: GcSummary | null;
  warnings: string[];
}

export function buildReport(series: SeriesAnalysis, gc: GcSummary | undefined, warnings: readonly string[]): Report {
  return {
    captures: series.captures,
    staleCaptures: series.staleCaptures,
    window: series.window,
    mapImpl: series.mapImpl,
    totals: series.totals,
    findings: series.findings,
    gc: gc ?? null,
    warnings: [
      ...((series.restartedCaptures ?? 0) > 0
        ? [`the target restarted during the series (its allocation counters started again): the ${series.restartedCaptures} capture(s) before its last restart are left out`]
        : []),
      ...warnings,
    ],
  };
}

import type { SeriesAnalysis } from '../analysis/series.js';
import type { MapLeakProbeSpec, MapLeakProbeStatus } from '../api/types.js';
import type { CaptureRef, TargetRecord } from '../store/series-store.js';
import { renderHtmlReport, type HtmlReport, type ReportAssets } from './html.js';

/** `GET /api/v1/namespaces/NS/mapleakprobes/NAME`: a probe with each pod's stored series analysed. */
export interface ProbeView {
  metadata: { namespace: string; name: string; uid: string; generation?: number };
  spec: MapLeakProbeSpec;
  status: MapLeakProbeStatus;
  targets: (TargetRecord & { captures: CaptureRef[]; analysis: SeriesAnalysis | undefined })[];
}

/** The operator's page for one probe: its verdict and per-pod errors, then the report of each pod's series. */
export function renderProbePage(view: ProbeView, assets: ReportAssets, now: Date): HtmlReport {
  const { namespace, name } = view.metadata;
  const summary = [`Verdict: ${view.status.verdict ?? 'Unknown'}; ${view.status.targetCount ?? 0} target(s); map memory ${view.status.mapMemory ?? 'unknown'}`];
  for (const target of view.targets) {
    if (target.lastError) summary.push(`pod ${target.name}: ${target.lastErrorReason ?? 'error'}: ${target.lastError}`);
  }
  const sections = view.targets
    .filter((t): t is typeof t & { analysis: SeriesAnalysis } => t.analysis !== undefined)
    .map((t) => ({ heading: `pod ${t.namespace}/${t.name}`, analysis: t.analysis }));
  if (sections.length === 0) summary.push('No captures stored yet.');
  return renderHtmlReport({ title: `MapLeakProbe ${namespace}/${name}`, summary, generatedAt: now, sections }, assets);
}

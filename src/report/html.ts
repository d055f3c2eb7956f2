import { createHash } from 'node:crypto';
import { formatBytes } from '../analysis/bytes.js';
import type { Report } from '../analysis/report.js';
import type { Finding, SeriesAnalysis } from '../analysis/series.js';
import { chartScript } from './chart-script.js';

/** uPlot, inlined into every report (copied next to this module at build time). */
export interface ReportAssets {
  uplotJs: string;
  uplotCss: string;
}

/** One analysed series: a `mapleak analyze` run, or one pod of a probe. */
export interface ReportSection {
  heading: string;
  analysis: Pick<SeriesAnalysis, 'captures' | 'staleCaptures' | 'window' | 'mapImpl' | 'totals' | 'findings'> & Partial<Pick<Report, 'gc' | 'warnings'>>;
}

export interface HtmlReportInput {
  title: string;
  /** Shown under the title: verdict, errors and the like, one line each. */
  summary?: string[];
  generatedAt: Date;
  sections: ReportSection[];
}

export interface HtmlReport {
  html: string;
  /** The page's Content-Security-Policy (also in its meta tag): inline code by hash only, no network. */
  contentSecurityPolicy: string;
}

/** What the page's script draws: one chart per allocation site, one series per finding at it. */
export interface ChartData {
  charts: { id: string; series: { label: string; kind: Finding['kind']; points: [number, number][] }[] }[];
}

/**
 * One self-contained page: per allocation site a uPlot chart of its
 * findings' in-use bytes (map and other memory at the same site in one
 * chart), then per finding its verdict, evidence, map components and advice.
 * Every tenant-supplied string (function and file names, advice built from
 * them) is escaped; the chart data travels as JSON that cannot close its tag.
 */
export function renderHtmlReport(input: HtmlReportInput, assets: ReportAssets): HtmlReport {
  const data: ChartData = { charts: [] };
  const body: string[] = [];
  input.sections.forEach((section, s) => body.push(renderSection(section, s, data)));
  const dataJson = JSON.stringify(data).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
  const scripts = [assets.uplotJs, chartScript];
  const csp = [
    "default-src 'none'",
    `script-src ${scripts.map((s) => `'sha256-${createHash('sha256').update(s).digest('base64')}'`).join(' ')}`,
    "style-src 'unsafe-inline'",
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(input.title)}</title>
<style>${assets.uplotCss}</style>
<style>${PAGE_CSS}</style>
</head>
<body>
<header><h1>${escapeHtml(input.title)}</h1>
${(input.summary ?? []).map((line) => `<p class="summary">${escapeHtml(line)}</p>`).join('\n')}
<p class="generated">Generated ${escapeHtml(input.generatedAt.toISOString())} by MapLeakProbe</p></header>
<main>
${body.join('\n')}
</main>
<script id="mapleak-data" type="application/json">${dataJson}</script>
<script>${assets.uplotJs}</script>
<script>${chartScript}</script>
</body>
</html>
`;
  return { html, contentSecurityPolicy: csp };
}

function renderSection(section: ReportSection, sectionIndex: number, data: ChartData): string {
  const a = section.analysis;
  const seconds = Math.round((Date.parse(a.window.end) - Date.parse(a.window.start)) / 1000);
  const out: string[] = [`<section class="target"><h2>${escapeHtml(section.heading)}</h2>`];
  out.push(
    `<p class="totals">${a.captures} capture${a.captures === 1 ? '' : 's'} over ${seconds}s (${escapeHtml(a.mapImpl)} maps); ` +
      `map memory <b>${formatBytes(a.totals.mapInuseBytes)}</b> of ${formatBytes(a.totals.inuseBytes)} in use` +
      (a.staleCaptures > 0 ? `; ${a.staleCaptures} capture(s) repeated the one before` : '') +
      '</p>',
  );
  if (a.gc) {
    out.push(
      `<p class="gc">gc: ${a.gc.cycles} cycles, live heap ${formatBytes(a.gc.liveHeapBytes)}, ` +
        `${a.gc.liveHeapGrowthBytesPerHour >= 0 ? '+' : ''}${formatBytes(a.gc.liveHeapGrowthBytesPerHour)}/h, GC CPU ${a.gc.gcCpuPercent}%</p>`,
    );
  }
  for (const warning of a.warnings ?? []) out.push(`<p class="warning">warning: ${escapeHtml(warning)}</p>`);
  if (a.findings.length === 0) out.push('<p>No findings above the thresholds.</p>');

  // Findings of one site and caller (map memory and other memory) share a chart, in the order the first of them ranks.
  const groups = new Map<string, { findings: { finding: Finding; rank: number }[] }>();
  a.findings.forEach((finding, rank) => {
    const caller = finding.caller ? `${finding.caller.function}\u0000${finding.caller.file}\u0000${finding.caller.line}` : '';
    const key = `${finding.site.function}\u0000${finding.site.file}\u0000${finding.site.line}\u0000${finding.scope ?? 'line'}\u0000${caller}`;
    const group = groups.get(key) ?? { findings: [] };
    group.findings.push({ finding, rank });
    groups.set(key, group);
  });
  let chartIndex = 0;
  for (const group of groups.values()) {
    const first = group.findings[0]?.finding;
    if (!first) continue;
    const id = `chart-${sectionIndex}-${chartIndex++}`;
    data.charts.push({
      id,
      series: group.findings.map(({ finding }) => ({
        label: `${finding.kind === 'map' ? `map (${finding.mapImpl})` : 'other memory'}: ${finding.pattern}`,
        kind: finding.kind,
        points: finding.series.map((p) => [Math.round(Date.parse(p.time) / 1000), p.inuseBytes]),
      })),
    });
    out.push(`<article class="site pattern-${first.pattern}">`);
    out.push(`<h3 title="${escapeHtml(first.site.function)}">${escapeHtml(siteText(first))}</h3>`);
    if (first.caller) out.push(`<p class="caller">called from ${escapeHtml(frameText(first.caller))}</p>`);
    out.push(`<div class="chart" id="${id}" role="img" aria-label="in-use bytes over the window"></div>`);
    for (const { finding, rank } of group.findings) out.push(renderFinding(finding, rank));
    out.push('</article>');
  }
  out.push('</section>');
  return out.join('\n');
}

function renderFinding(f: Finding, rank: number): string {
  const components = Object.entries(f.components).filter(([, bytes]) => (bytes ?? 0) > 0);
  const growth = f.growthUndetermined ? '~ (not resolved by this window)' : `${f.growthBytesPerHour > 0 ? '+' : ''}${formatBytes(f.growthBytesPerHour)}/h`;
  return [
    `<div class="finding kind-${f.kind}">`,
    `<p class="verdict"><span class="rank">#${rank + 1}</span> <span class="badge ${f.pattern}">${f.pattern}</span> ` +
      `${f.kind === 'map' ? `map memory (${escapeHtml(f.mapImpl)})` : 'other memory'}: in use ${formatBytes(f.inuseBytes)} ` +
      `(peak ${formatBytes(f.maxInuseBytes)}), growth ${growth}, allocated ${formatBytes(f.allocBytesPerHour)}/h; ` +
      `confidence ${f.confidence.toFixed(2)}, evidence <code>${escapeHtml(f.evidence)}</code></p>`,
    components.length > 0
      ? `<table class="components"><tr><th>map component</th><th>in use</th></tr>${components
          .map(([name, bytes]) => `<tr><td>${escapeHtml(name)}</td><td>${formatBytes(bytes ?? 0)}</td></tr>`)
          .join('')}</table>`
      : '',
    `<p class="advice">${escapeHtml(f.advice)}</p>`,
    '</div>',
  ].join('\n');
}

function siteText(f: Finding): string {
  return f.scope === 'function' && f.lines ? frameText(f.site, f.lines.join(',')) : frameText(f.site);
}

function frameText(frame: Finding['site'], lines = String(frame.line)): string {
  const file = frame.file.split('/').slice(-1)[0] ?? '';
  return file ? `${frame.function} ${file}:${lines}` : frame.function;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
}

const PAGE_CSS = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 16px 24px; color: #1d2330; background: #fbfbfd; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; border-bottom: 1px solid #d7dae3; padding-bottom: 4px; margin-top: 28px; }
h3 { font: 600 14px/1.3 ui-monospace, monospace; margin: 0 0 4px; word-break: break-all; }
.summary { margin: 2px 0; }
.generated, .caller { color: #5b6275; font-size: 12px; margin: 2px 0; }
.site { background: #fff; border: 1px solid #d7dae3; border-left: 5px solid #8a93a8; border-radius: 6px; padding: 12px 14px; margin: 14px 0; }
.site.pattern-growing { border-left-color: #d1343a; }
.site.pattern-retained { border-left-color: #e08a00; }
.site.pattern-churn { border-left-color: #2f6fd6; }
.chart { min-height: 220px; margin: 8px 0; }
.finding { border-top: 1px dashed #e1e4ec; padding-top: 6px; margin-top: 6px; }
.badge { display: inline-block; padding: 0 8px; border-radius: 10px; color: #fff; font-weight: 600; background: #6b7387; }
.badge.growing { background: #d1343a; } .badge.retained { background: #c77800; } .badge.churn { background: #2f6fd6; } .badge.stable { background: #3f8f55; }
.rank { color: #5b6275; }
.advice { margin: 4px 0; }
.warning { color: #9a4a00; }
table.components { border-collapse: collapse; font-size: 12px; margin: 4px 0; }
table.components td, table.components th { border: 1px solid #e1e4ec; padding: 1px 8px; text-align: left; }
code { font-size: 12px; }
`;

import type { Report } from '../analysis/report.js';
import { printable, printableLines } from '../api/bounded.js';
import type { Finding } from '../analysis/series.js';
import { formatBytes } from './units.js';

/** The table a person reads at a glance, then one line of advice per finding. */
export function formatReport(report: Report): string {
  const lines: string[] = [];
  const seconds = Math.round((Date.parse(report.window.end) - Date.parse(report.window.start)) / 1000);
  const impl = report.mapImpl === 'unknown' ? 'map implementation unknown' : `${report.mapImpl} maps`;
  lines.push(
    `${report.captures} capture${report.captures === 1 ? '' : 's'} over ${seconds}s (${impl}); ` +
      `map memory ${formatBytes(report.totals.mapInuseBytes)} of ${formatBytes(report.totals.inuseBytes)} in use`,
  );
  if (report.staleCaptures > 0) {
    lines.push(`note: ${report.staleCaptures} capture(s) repeated the one before (no GC cycle ended in between)`);
  }
  lines.push('');
  if (report.findings.length === 0) {
    lines.push('No findings above the thresholds.');
  } else {
    // CALLER last: the user's own frame, when the site is in a library.
    const header = ['#', 'SITE', 'KIND', 'PATTERN', 'IN USE', 'GROWTH/h', 'CONF', 'EVIDENCE', 'CALLER'];
    const rows = report.findings.map((f, i) => [
      String(i + 1),
      siteLabel(f),
      f.kind === 'map' && f.mapImpl !== 'unknown' ? `map/${f.mapImpl}` : f.kind,
      f.pattern,
      formatBytes(f.inuseBytes),
      // A stable finding whose window cannot rule out growth: its slope is no measurement.
      f.growthUndetermined ? '~' : (f.growthBytesPerHour > 0 ? '+' : '') + formatBytes(f.growthBytesPerHour),
      f.confidence.toFixed(2),
      f.evidence,
      f.caller ? frameLabel(f.caller) : '',
    ]);
    lines.push(...table([header, ...rows]));
    lines.push('');
    report.findings.forEach((f, i) => lines.push(`${i + 1}. ${f.advice}`));
  }
  if (report.gc) {
    const gc = report.gc;
    lines.push('');
    lines.push(
      `gc: ${gc.cycles} cycles (${gc.forcedCycles} forced, left out), live heap ${formatBytes(gc.liveHeapBytes)}, ` +
        `${gc.liveHeapGrowthBytesPerHour >= 0 ? '+' : ''}${formatBytes(gc.liveHeapGrowthBytesPerHour)}/h, GC CPU ${gc.gcCpuPercent}%` +
        (gc.skippedLines > 0 ? `, ${gc.skippedLines} unreadable lines skipped` : ''),
    );
  }
  for (const warning of report.warnings) lines.push(`warning: ${warning}`);
  // Names, advice and warnings carry what the target sent: no escape sequence reaches the terminal.
  return printableLines(lines.join('\n'));
}

/**
 * JSON for stdout: JSON.stringify escapes C0 but passes DEL, C1 and the
 * bidirectional controls through, which a terminal may act on.
 */
export function formatJson(doc: unknown): string {
  return JSON.stringify(doc, null, 2).replace(/[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** `fn main.go:40`; a finding for a whole function names its lines: `fn main.go:40,41,47`. */
function siteLabel(f: Finding): string {
  if (f.scope === 'function' && f.lines) return frameLabel(f.site, f.lines.join(','));
  return frameLabel(f.site);
}

export function frameLabel(frame: Finding['site'], lines = String(frame.line)): string {
  // Made printable before measuring, so the table's columns line up.
  const file = printable(frame.file.split('/').slice(-1)[0] ?? '', MAX_NAME_LENGTH);
  const where = file ? ` ${file}:${lines}` : '';
  return `${shortenFunction(printable(frame.function, MAX_NAME_LENGTH), MAX_FUNCTION_WIDTH)}${where}`;
}

const MAX_FUNCTION_WIDTH = 48;
/** As the status keeps names (statusFrame). */
const MAX_NAME_LENGTH = 512;

/**
 * A Go function name within `width` characters where it can be: the middle
 * of the package path gives way first (`github.com/…/prometheus.(*metricMap).get`),
 * never the package's own name nor the function's, which stay whole even
 * when they alone are longer.
 */
export function shortenFunction(name: string, width: number): string {
  if (name.length <= width) return name;
  // The package path ends at the first dot after its last slash (dots before it belong to hosts: github.com).
  const lastSlash = name.lastIndexOf('/', name.indexOf('(') >= 0 ? name.indexOf('(') : name.length);
  if (lastSlash < 0) return name;
  let head = name.slice(0, lastSlash); // github.com/prometheus/client_golang
  let tail = name.slice(lastSlash); // /prometheus.(*metricMap).getOrCreate...
  // A package named by its major version (golang-lru/v2) keeps the module's name.
  if (/^\/v\d+\./.test(tail) && head.includes('/')) {
    tail = head.slice(head.lastIndexOf('/')) + tail;
    head = head.slice(0, head.lastIndexOf('/'));
  }
  // A major-version suffix (/v2) is part of the module's name before it: they go together.
  const segments = head.split('/').reduce<string[]>((out, segment) => {
    if (/^v\d+$/.test(segment) && out.length > 1) out[out.length - 1] += `/${segment}`;
    else out.push(segment);
    return out;
  }, []);
  const first = segments[0] ?? '';
  let kept = '';
  // Keep the first segment (the host or module root) and as many trailing segments as fit.
  for (let i = segments.length - 1; i >= 1; i--) {
    const candidate = `/${segments[i]}${kept}`;
    if (`${first}/…${candidate}${tail}`.length > width) break;
    kept = candidate;
  }
  const shortened = kept === `/${segments.slice(1).join('/')}` ? `${first}${kept}${tail}` : `${first}/…${kept}${tail}`;
  return shortened.length < name.length ? shortened : name;
}

/** Columns padded to their widest cell; every cell made printable first (cells may hold what a tenant wrote), so the columns line up. */
export function table(rows: string[][]): string[] {
  const cells = rows.map((row) => row.map((cell) => printable(cell, Number.POSITIVE_INFINITY)));
  const widths: number[] = [];
  for (const row of cells) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return cells.map((row) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd());
}

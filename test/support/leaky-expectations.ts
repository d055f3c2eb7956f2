import assert from 'node:assert/strict';
import type { Report } from '../../src/analysis/report.js';
import type { Finding } from '../../src/analysis/series.js';

export interface Expectation {
  site: string;
  kind: 'map' | 'other';
  pattern: Finding['pattern'];
}

/** What test/targets/leaky does at each SITE marker. */
export const LEAKY_EXPECTATIONS: Expectation[] = [
  { site: 'map-growing-sessions', kind: 'map', pattern: 'growing' }, // string keys, pointer values
  { site: 'map-growing-json', kind: 'map', pattern: 'growing' }, // filled by json.Unmarshal
  { site: 'map-retained-blobs', kind: 'map', pattern: 'retained' }, // int keys, values over 128 bytes
  { site: 'map-retained-items', kind: 'map', pattern: 'retained' }, // struct keys, pointer values
  { site: 'map-churn-histogram', kind: 'map', pattern: 'churn' }, // struct keys, built and dropped
  { site: 'map-stable-cache', kind: 'map', pattern: 'stable' }, // int keys, bounded
  { site: 'other-growing-buffers', kind: 'other', pattern: 'growing' }, // the non-map control
  { site: 'other-growing-session-values', kind: 'other', pattern: 'growing' }, // values held by a map are not the map
];

export function findingAt(report: Report, lines: Map<string, number>, site: string, kind: 'map' | 'other'): Finding | undefined {
  const line = lines.get(site);
  assert.ok(line, `SITE ${site} exists`);
  return report.findings.find((f) => f.kind === kind && f.site.line === line && f.site.file.endsWith('/leaky/main.go'));
}

/** Every expected site has the right kind and pattern; non-map sites are never blamed on maps. */
export function assertLeakyFindings(report: Report, lines: Map<string, number>, impl: 'classic' | 'swiss', expectations = LEAKY_EXPECTATIONS): void {
  const summary = report.findings.map((f) => `${f.site.function}:${f.site.line} ${f.kind} ${f.pattern} ${f.evidence}`).join('\n');
  for (const e of expectations) {
    const finding = findingAt(report, lines, e.site, e.kind);
    assert.ok(finding, `${e.site}: no ${e.kind} finding; got:\n${summary}`);
    assert.equal(finding.pattern, e.pattern, `${e.site}: pattern; got:\n${summary}`);
    if (e.kind === 'map') assert.equal(finding.mapImpl, impl, `${e.site}: map implementation`);
    if (e.kind === 'other') assert.equal(findingAt(report, lines, e.site, 'map'), undefined, `${e.site} blamed on a map`);
    assert.ok(finding.confidence > 0 && finding.confidence <= 1);
    assert.ok(finding.advice.length > 20);
  }
}

/** The documented --json shape. */
export function assertReportShape(report: Report, captures: number): void {
  assert.equal(report.captures, captures);
  assert.ok(Date.parse(report.window.start) < Date.parse(report.window.end));
  assert.equal(new Date(report.window.start).toISOString(), report.window.start);
  for (const f of report.findings) {
    assert.equal(typeof f.site.function, 'string');
    assert.equal(typeof f.site.file, 'string');
    assert.ok(Number.isInteger(f.site.line));
    assert.ok(['map', 'other'].includes(f.kind));
    assert.ok(['growing', 'retained', 'churn', 'stable'].includes(f.pattern));
    assert.ok(['symbolized', 'size-signature', 'visible-frame', 'none'].includes(f.evidence));
    assert.ok(['classic', 'swiss', 'unknown'].includes(f.mapImpl));
    assert.ok(Number.isFinite(f.inuseBytes) && Number.isFinite(f.growthBytesPerHour));
  }
  const ranks = report.findings.map((f) => ['growing', 'retained', 'churn', 'stable'].indexOf(f.pattern));
  assert.deepEqual(ranks, [...ranks].sort((a, b) => a - b), 'most serious first');
}

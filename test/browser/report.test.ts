import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { Report } from '../../src/analysis/report.js';
import type { Finding } from '../../src/analysis/series.js';
import { loadReportAssets } from '../../src/report/assets.js';
import { renderHtmlReport } from '../../src/report/html.js';
import { launchChromium, readCharts, type ChartShape } from '../support/browser.js';
import { runCli } from '../support/cli.js';
import { buildTarget, startTarget, type RunningTarget } from '../support/go-targets.js';
import { CACHE_DIR, repoPath } from '../support/paths.js';

const ARTIFACTS = join(CACHE_DIR, 'artifacts');

interface OpenedPage {
  page: Page;
  charts: ChartShape[];
  /** Console errors and uncaught exceptions. */
  errors: string[];
  /** Every request the page tried beyond its own file (all are refused). */
  requests: string[];
}

/** Opens a report from disk with every other request refused and recorded. */
async function openReport(browser: Browser, file: string): Promise<OpenedPage> {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (url === `file://${file}`) return route.continue();
    requests.push(url);
    return route.abort();
  });
  await page.goto(`file://${file}`, { waitUntil: 'load' });
  const charts = (await page.evaluate(readCharts)) as ChartShape[];
  return { page, charts, errors, requests };
}

const siteKey = (f: Finding): string => `${f.site.function} ${f.site.file}:${f.site.line} ${f.scope ?? 'line'}`;

describe('HTML report in headless Chromium', () => {
  let browser: Browser;
  let target: RunningTarget;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mapleak-report-'));
    mkdirSync(ARTIFACTS, { recursive: true });
    [browser, target] = await Promise.all([launchChromium(), buildTarget('leaky', '1.26').then((bin) => startTarget(bin, join(dir, 'leaky')))]);
  });
  after(async () => {
    await browser?.close();
    await target?.stop();
  });

  test('a live run of the leaky target: one chart per site, one series per finding with all its points, no console errors, no network', async () => {
    const html = join(dir, 'leaky.html');
    const result = await runCli(['analyze', '--url', target.url, '--every', '1500ms', '--count', '8', '--json', '--html', html, '--quiet']);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout) as Report;
    assert.ok(report.findings.length >= 5, `the leaky target has several findings, got ${report.findings.length}`);

    const { page, charts, errors, requests } = await openReport(browser, html);
    await page.screenshot({ path: join(ARTIFACTS, 'report-leaky.png'), fullPage: true });
    await page.screenshot({ path: join(ARTIFACTS, 'report-leaky-top.png') });
    assert.deepEqual(errors, [], 'no console errors');
    assert.deepEqual(requests, [], 'the report fetches nothing');

    const sites = [...new Set(report.findings.map(siteKey))];
    assert.equal(charts.length, sites.length, 'one chart per site');
    const series = charts.flatMap((c) => c.series);
    assert.equal(series.length, report.findings.length, 'one series per finding');
    // Charts follow the findings' order, grouped by site: rebuild that order and compare point counts.
    const bySite = sites.map((key) => report.findings.filter((f) => siteKey(f) === key));
    bySite.forEach((findings, i) => {
      const chart = charts[i];
      assert.ok(chart);
      assert.equal(chart.series.length, findings.length);
      findings.forEach((f, j) => {
        assert.equal(chart.series[j]?.points, f.series.length, `${siteKey(f)} ${f.kind}: every capture is a point`);
        assert.match(chart.series[j]?.label ?? '', new RegExp(`${f.pattern}$`));
      });
      assert.ok(chart.width >= 320, 'the chart is laid out');
    });

    const text = await page.locator('main').innerText();
    for (const f of report.findings) assert.ok(text.includes(f.advice), `advice of ${siteKey(f)} shown`);
    assert.match(text, /map component/);
    assert.equal(await page.locator('.badge.growing').count(), report.findings.filter((f) => f.pattern === 'growing').length);
    const canvases = await page.locator('.chart canvas').count();
    assert.equal(canvases, charts.length, 'every chart drew its canvas');
  });

  test('saved Go 1.26 profiles: map and other memory of one site share its chart', async () => {
    const html = join(dir, 'saved.html');
    const files = ['heap-001', 'heap-008'].flatMap((stem) => ['pb.gz', 'txt', 'sym'].map((ext) => repoPath('test', 'pprof', 'testdata', 'go1.26', `${stem}.${ext}`)));
    const result = await runCli(['analyze', '--json', '--html', html, ...files]);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout) as Report;
    const ingest = report.findings.filter((f) => f.site.function === 'main.(*catalog).ingest');
    assert.deepEqual(ingest.map((f) => f.kind).sort(), ['map', 'other'], 'the catalog keeps a map and the values it stores at one line');
    const { page, charts, errors } = await openReport(browser, html);
    assert.deepEqual(errors, []);
    const chart = charts[[...new Set(report.findings.map(siteKey))].indexOf(siteKey(ingest[0]!))];
    assert.deepEqual(
      chart?.series.map((s) => [s.label, s.points]),
      ingest.map((f) => [`${f.kind === 'map' ? 'map (swiss)' : 'other memory'}: ${f.pattern}`, 2]),
    );
    assert.equal(await page.locator('article.site').count(), charts.length);
  });

  test('hostile function names and advice are shown as text, never run, and cannot close the data script', async () => {
    const evil = '</script><script>window.pwned=1</script><img src=x onerror="window.pwned=2">';
    const finding: Finding = {
      site: { function: `main.${evil}`, file: '/src/<b>main.go', line: 7 },
      scope: 'line',
      kind: 'map',
      pattern: 'growing',
      inuseBytes: 4 << 20,
      maxInuseBytes: 4 << 20,
      growthBytesPerHour: 1 << 30,
      allocBytesPerHour: 1 << 30,
      evidence: 'symbolized',
      mapImpl: 'swiss',
      confidence: 0.9,
      advice: `cap it ${evil}`,
      components: { groups: 4 << 20 },
      series: [0, 1, 2].map((i) => ({ time: new Date(Date.UTC(2026, 0, 1, 0, 0, i * 10)).toISOString(), inuseBytes: (i + 2) << 20 })),
    };
    const analysis = {
      captures: 3,
      staleCaptures: 0,
      window: { start: finding.series[0]?.time ?? '', end: finding.series[2]?.time ?? '' },
      mapImpl: 'swiss' as const,
      totals: { inuseBytes: 8 << 20, mapInuseBytes: 4 << 20 },
      findings: [finding],
      warnings: [evil],
    };
    const { html } = renderHtmlReport({ title: `t ${evil}`, summary: [evil], generatedAt: new Date(0), sections: [{ heading: evil, analysis }] }, await loadReportAssets());
    const file = join(dir, 'hostile.html');
    writeFileSync(file, html);
    const { page, charts, errors, requests } = await openReport(browser, file);
    assert.equal(await page.evaluate('window.pwned'), undefined, 'nothing injected ran');
    assert.equal(await page.locator('img').count(), 0, 'no element injected');
    assert.equal(await page.locator('h3').first().innerText(), `main.${evil} <b>main.go:7`);
    assert.deepEqual(requests, []);
    assert.deepEqual(errors, []);
    assert.deepEqual(charts.map((c) => c.series.map((s) => s.points)), [[3]]);
    assert.ok(readFileSync(file, 'utf8').includes('Content-Security-Policy'), 'the page carries its CSP');
  });
});

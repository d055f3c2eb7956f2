import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { attributeProfile } from '../../src/analysis/attribute.js';
import { analyzeSeries, DEFAULT_THRESHOLDS, type Finding, type SeriesAnalysis, type TimedSnapshot } from '../../src/analysis/series.js';
import type { Report } from '../../src/analysis/report.js';
import { captureHeap } from '../../src/capture/capture.js';
import { directPprofClient } from '../../src/capture/direct.js';
import { BinaryKnowledgeCache } from '../../src/capture/binary-knowledge.js';
import { DEFAULT_MAX_PROFILE_BYTES } from '../../src/pprof/decode.js';
import { runCli } from '../support/cli.js';
import { buildTarget, siteLines, startTarget, type GoVersion, type RunningTarget } from '../support/go-targets.js';

/**
 * How the verdict tests use test/targets/services (real third-party
 * libraries, a current go line):
 *
 * One live stream per Go version: the target is captured every 2.5 s from
 * the moment it listens, for STREAM_SECONDS, with a raised MemProfileRate so
 * sampling noise is small; every capture is kept (proto, debug=1, symbols).
 * The engine then analyses WINDOWS windows of WINDOW_SECONDS that start at
 * different moments of that stream (at once, after 10 s, after 60 s and in
 * between): as if a user had started `mapleak analyze` at each moment.
 * Every marked site must get its expected pattern, and the same one, in at
 * least 19 of the 20 windows.
 */
const INTERVAL_MS = 2_500;
const STREAM_SECONDS = 125;
const WINDOW_SECONDS = 60;
/** Window starts, seconds after the first capture: at once, 10 s, 60 s and in between (20 in all). */
export const WINDOW_OFFSETS = [0, 2.5, 5, 7.5, 10, 12.5, 15, 17.5, 20, 25, 27.5, 30, 35, 40, 45, 50, 52.5, 55, 57.5, 60];
const MEM_PROFILE_RATE = 64 * 1024;
/** The build copies the target into services-<go line>-<hash>/ (see test/cluster/go-build.ts). */
const FILE = /\/services(-[\w-]+)?\/main\.go$/;

type Allowed = Finding['pattern'][];

interface SiteExpectation {
  site: string;
  kind: 'map' | 'other';
  /** Patterns any finding at the site may have; the first is the one expected. */
  patterns: Allowed;
  /** Where the marker is: the map's own line (site) or the user's line feeding a library's map (caller). */
  by: 'site' | 'caller' | 'function';
  advice?: RegExp;
  notAdvice?: RegExp;
  /** Advice a classic-map finding with this pattern must give. */
  classicAdvice?: { pattern: Finding['pattern']; advice: RegExp };
}

export const SERVICES_EXPECTATIONS: SiteExpectation[] = [
  { site: 'map-growing-labels', kind: 'map', patterns: ['growing'], by: 'caller' }, // prometheus CounterVec, unbounded label values
  { site: 'map-churn-scrape', kind: 'map', patterns: ['churn'], by: 'caller' }, // Registry.Gather's maps, built and dropped per scrape
  { site: 'map-drained-ttl', kind: 'map', patterns: ['retained'], by: 'caller' }, // go-cache, expired entries deleted
  // golang-lru at capacity; on classic maps its overflow buckets grow under the churn.
  { site: 'map-bounded-lru', kind: 'map', patterns: ['stable', 'churn'], by: 'caller', classicAdvice: { pattern: 'churn', advice: /overflow buckets/ } },
  { site: 'map-growing-limiters', kind: 'map', patterns: ['growing'], by: 'site' }, // x/time/rate limiter per client
  { site: 'map-churn-json', kind: 'map', patterns: ['churn'], by: 'site' }, // decoded JSON documents, dropped
  { site: 'map-static-routes', kind: 'map', patterns: ['stable'], by: 'site', notAdvice: /cannot tell|drained/ },
  { site: 'map-drained-routes', kind: 'map', patterns: ['retained'], by: 'site' },
  { site: 'map-inline-static', kind: 'map', patterns: ['stable'], by: 'site', advice: /cannot tell a full map from a drained one/ },
  { site: 'map-inline-drained', kind: 'map', patterns: ['stable'], by: 'site', advice: /cannot tell a full map from a drained one/ },
  { site: 'other-growing-journal', kind: 'other', patterns: ['growing'], by: 'function' }, // bytes.Buffers through three Write calls
];

const JOURNAL_FUNCTION = 'main.(*app).record';

export function findingsAt(findings: readonly Finding[], lines: ReadonlyMap<string, number>, e: SiteExpectation): Finding[] {
  const line = lines.get(e.site);
  assert.ok(line, `SITE ${e.site} exists`);
  return findings.filter((f) => {
    if (f.kind !== e.kind) return false;
    if (e.by === 'function') return f.site.function === JOURNAL_FUNCTION;
    const frame = e.by === 'caller' ? f.caller : f.site;
    return frame !== undefined && frame.line === line && FILE.test(frame.file);
  });
}

/** One word per window and site: the patterns found there, or why it fails. */
export function verdictAt(findings: readonly Finding[], lines: ReadonlyMap<string, number>, e: SiteExpectation): string {
  const at = findingsAt(findings, lines, e);
  if (at.length === 0) return 'missing';
  const patterns = [...new Set(at.map((f) => f.pattern))].sort();
  if (e.advice && !at.some((f) => e.advice?.test(f.advice))) return `${patterns.join('+')}(advice?)`;
  if (e.notAdvice && at.some((f) => e.notAdvice?.test(f.advice))) return `${patterns.join('+')}(advice!)`;
  return patterns.join('+');
}

const isAllowed = (verdict: string, e: SiteExpectation): boolean => verdict.split('+').every((p) => (e.patterns as string[]).includes(p));

interface Stream {
  snapshots: TimedSnapshot[];
  saveDir: string;
}

async function recordStream(target: RunningTarget, saveDir: string): Promise<Stream> {
  const client = directPprofClient(`${target.url}/debug/pprof`, 20_000);
  const cache = new BinaryKnowledgeCache();
  const snapshots: TimedSnapshot[] = [];
  const started = Date.now();
  const count = Math.floor((STREAM_SECONDS * 1000) / INTERVAL_MS) + 1;
  for (let i = 0; i < count; i++) {
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, started + i * INTERVAL_MS - Date.now())));
    const capture = await captureHeap(client, { limits: { maxBytes: DEFAULT_MAX_PROFILE_BYTES }, knowledge: cache, scope: target.url });
    assert.deepEqual(capture.warnings, [], 'every capture is complete (debug=1 and symbols)');
    const stem = join(saveDir, `capture-${String(i + 1).padStart(3, '0')}`);
    writeFileSync(`${stem}.pb.gz`, capture.proto);
    writeFileSync(`${stem}.txt`, capture.debug1 ?? '');
    writeFileSync(`${stem}.sym`, [`num_symbols: ${capture.symbols.size}`, ...[...capture.symbols].map(([pc, name]) => `0x${pc.toString(16)} ${name}`), ''].join('\n'));
    snapshots.push({ ...attributeProfile(capture.profile), time: capture.time });
  }
  return { snapshots, saveDir };
}

export function windowOf(snapshots: readonly TimedSnapshot[], offsetSeconds: number): TimedSnapshot[] {
  const t0 = (snapshots[0] as TimedSnapshot).time.getTime() + offsetSeconds * 1000;
  return snapshots.filter((s) => s.time.getTime() >= t0 && s.time.getTime() <= t0 + WINDOW_SECONDS * 1000);
}

/**
 * The services target built with one toolchain (current go line), streamed
 * live, analysed window by window; then `mapleak analyze` on one window's
 * saved files for the --json document and the table.
 */
export function servicesVerdicts(version: GoVersion): void {
  const impl = version === '1.19' ? 'classic' : 'swiss';
  describe(`services target (real libraries) built with Go ${version}, ${impl} maps, go line 1.26`, () => {
    const lines = siteLines('services');
    const work = mkdtempSync(join(tmpdir(), `mapleak-services-go${version}-`));
    let target: RunningTarget;
    let stream: Stream;
    const analyses: { offset: number; analysis: SeriesAnalysis }[] = [];

    before(async () => {
      target = await startTarget(await buildTarget('services', version), work, ['-memprofilerate', String(MEM_PROFILE_RATE)]);
      stream = await recordStream(target, mkdtempSync(join(work, 'captures-')));
      // Every finding, not the default top 20: the question is each site's verdict, not the ranking.
      for (const offset of WINDOW_OFFSETS) analyses.push({ offset, analysis: analyzeSeries(windowOf(stream.snapshots, offset), { ...DEFAULT_THRESHOLDS, maxFindings: 200 }) });
    });
    after(async () => {
      await target?.stop();
      rmSync(work, { recursive: true, force: true });
    });

    test('the stream: captures complete, symbolized, with GC cycles between most of them', () => {
      assert.ok(stream.snapshots.length >= 45);
      for (const s of stream.snapshots) assert.equal(s.mapImpl, impl);
      for (const { analysis } of analyses) {
        assert.ok(analysis.captures >= 20, 'a window holds about 24 captures');
        assert.ok(analysis.captures - analysis.staleCaptures >= 8, `at least 8 distinct captures (GC cycles) per window, got ${analysis.captures - analysis.staleCaptures}`);
      }
    });

    for (const e of SERVICES_EXPECTATIONS) {
      test(`${e.site}: ${e.kind} ${e.patterns.join(' or ')} in at least 19 of ${WINDOW_OFFSETS.length} windows, whenever the window starts`, () => {
        const verdicts = analyses.map(({ offset, analysis }) => ({ offset, verdict: verdictAt(analysis.findings, lines, e) }));
        const counts = new Map<string, number>();
        for (const { verdict } of verdicts) counts.set(verdict, (counts.get(verdict) ?? 0) + 1);
        const [modal, times] = [...counts].sort((a, b) => b[1] - a[1])[0] as [string, number];
        const table = verdicts.map((v) => `+${v.offset}s ${v.verdict}`).join(', ');
        assert.ok(isAllowed(modal, e), `${e.site}: got ${modal} most often, expected ${e.patterns.join(' or ')}: ${table}`);
        assert.ok(times >= 19, `${e.site}: the same verdict in only ${times} of ${verdicts.length} windows: ${table}`);
        for (const { analysis } of analyses) {
          for (const f of findingsAt(analysis.findings, lines, e)) {
            if (e.kind === 'map') assert.equal(f.mapImpl, impl);
            if (e.kind === 'map') assert.equal(f.evidence, 'symbolized', `${e.site}: symbolized`);
            if (e.by === 'caller') assert.ok(f.site.function.includes('/'), `${e.site}: the site is the library's own frame (${f.site.function})`);
            if (impl === 'classic' && e.classicAdvice?.pattern === f.pattern) assert.match(f.advice, e.classicAdvice.advice);
          }
        }
      });
    }

    test('the journal buffers are never map memory', () => {
      for (const { analysis } of analyses) {
        assert.deepEqual(
          analysis.findings.filter((f) => f.kind === 'map' && f.site.function === JOURNAL_FUNCTION).map((f) => f.site.line),
          [],
        );
      }
    });

    test('no finding is the profiler serving the profile', () => {
      for (const { analysis } of analyses) {
        for (const f of analysis.findings) assert.doesNotMatch(f.site.function, /^(runtime\/pprof|net\/http\/pprof)\./);
      }
    });

    test('mapleak analyze on a saved window: callers in --json and in the table', async () => {
      const window = windowOf(stream.snapshots, 60);
      const first = stream.snapshots.indexOf(window[0] as TimedSnapshot) + 1;
      const files: string[] = [];
      for (let n = first; n < first + window.length; n++) {
        const stem = join(stream.saveDir, `capture-${String(n).padStart(3, '0')}`);
        files.push(`${stem}.pb.gz`, `${stem}.txt`, `${stem}.sym`);
      }
      const json = await runCli(['analyze', '--json', ...files]);
      assert.equal(json.code, 0, json.stderr);
      const report = JSON.parse(json.stdout) as Report;
      const labels = findingsAt(report.findings, lines, SERVICES_EXPECTATIONS[0] as SiteExpectation)[0];
      assert.ok(labels, 'the Prometheus label map is reported');
      assert.equal(labels.caller?.function, 'main.(*app).countRequest');
      assert.match(labels.caller.file, FILE);
      assert.equal(labels.caller.line, lines.get('map-growing-labels'));
      assert.match(labels.site.function, /^github\.com\/prometheus\/client_golang\/prometheus\./);
      for (const f of report.findings) {
        assert.ok(Number.isInteger(f.inuseBytes) && Number.isInteger(f.growthBytesPerHour) && Number.isInteger(f.allocBytesPerHour));
        if (f.caller) assert.notDeepEqual(f.caller, f.site);
      }

      const human = await runCli(['analyze', ...files]);
      assert.equal(human.code, 0, human.stderr);
      assert.match(human.stdout, /SITE\s+KIND\s+PATTERN\s+IN USE\s+GROWTH\/h\s+CONF\s+EVIDENCE\s+CALLER/);
      assert.match(human.stdout, new RegExp(`map/${impl}\\s+growing\\s.*main\\.\\(\\*app\\)\\.countRequest main\\.go:${lines.get('map-growing-labels')}`));
    });
  });
}

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Report } from '../../src/analysis/report.js';
import { runCli } from './cli.js';
import { buildTarget, siteLines, startTarget, type GoLine, type GoVersion, type RunningTarget } from './go-targets.js';
import { assertLeakyFindings, assertReportShape, findingAt } from './leaky-expectations.js';

const CAPTURES = 10;
/**
 * Denser than the default on purpose: this test checks every site of the
 * target in ONE 20 s window (10 captures, whose settled part is often only
 * a few GC cycles), including the JSON catalog map and the raw buffers,
 * whose net growth in such a window is only a few samples at 512 KiB: below
 * what sampling can tell from noise (series.ts slopeSignificance). Verdicts
 * at the default rate over many windows are test/verdicts/sampling-noise.
 * The profile's own rate drives the scaling.
 */
const MEM_PROFILE_RATE = 64 * 1024;

export interface LeakyFlavour {
  /** The go line of the target's go.mod (default current: GET-only pprof patterns on Go >= 1.22). */
  goLine?: GoLine;
  /** Serve pprof on the target's own mux under this prefix instead of /debug/pprof/. */
  pprofPrefix?: string;
  /** Also check the saved captures offline (once per toolchain is enough). */
  offline?: boolean;
}

/**
 * Builds test/targets/leaky with one Go toolchain and go line, runs it live
 * on loopback and checks every site's kind and pattern: live (--url), and
 * optionally offline from the saved files and from the proto profiles alone.
 */
export function leakyEndToEnd(version: GoVersion, flavour: LeakyFlavour = {}): void {
  const impl = version === '1.19' ? 'classic' : 'swiss';
  const goLine = flavour.goLine ?? 'current';
  const offline = flavour.offline ?? true;
  const how = `${goLine} go line${flavour.pprofPrefix ? `, pprof at ${flavour.pprofPrefix}` : ''}`;
  describe(`leaky target built with Go ${version} (${impl} maps, ${how})`, () => {
    const lines = siteLines('leaky');
    const work = mkdtempSync(join(tmpdir(), `mapleak-go${version}-`));
    const saved = join(work, 'captures');
    let target: RunningTarget;
    let live: Report;

    before(async () => {
      const prefixArgs = flavour.pprofPrefix ? ['-pprof-prefix', flavour.pprofPrefix] : [];
      target = await startTarget(await buildTarget('leaky', version, goLine), work, ['-memprofilerate', String(MEM_PROFILE_RATE), ...prefixArgs]);
      // In-use figures are those of the last finished GC cycle: let a few pass.
      await new Promise((resolve) => setTimeout(resolve, 3000));
    });
    after(() => target?.stop());

    test('live: mapleak analyze --url finds every site', async () => {
      const url = flavour.pprofPrefix ? `${target.url}${flavour.pprofPrefix}` : target.url;
      const result = await runCli(['analyze', '--url', url, '--every', '2s', '--count', String(CAPTURES), '--save', saved, '--gctrace', target.stderrPath, '--json']);
      assert.equal(result.code, 0, result.stderr);
      live = JSON.parse(result.stdout) as Report;
      assertReportShape(live, CAPTURES);
      assert.equal(live.mapImpl, impl);
      assertLeakyFindings(live, lines, impl);
      // The symbol lookup must work whatever the go line: losing it drops every finding to size signatures.
      assert.equal(live.warnings.length, 0, `no warnings: ${live.warnings.join('; ')}`);
      for (const f of live.findings.filter((f) => f.kind === 'map')) assert.equal(f.evidence, 'symbolized', `${f.site.function}:${f.site.line} evidence`);
      assert.ok(live.gc && live.gc.cycles > 3 && live.gc.liveHeapBytes > 0, 'gctrace read');
      assert.equal(live.gc.skippedLines, 0);
      assert.ok(live.gc.liveHeapGrowthBytesPerHour > 0, 'the target leaks, so its live heap rises');
    });

    if (!offline) return;

    test('offline: the saved captures (proto + debug=1 + symbols) give the same verdicts', async () => {
      const files = readdirSync(saved);
      assert.equal(files.filter((f) => f.endsWith('.pb.gz')).length, CAPTURES, 'every capture keeps its proto');
      const debug1 = files.filter((f) => f.endsWith('.txt'));
      assert.ok(debug1.length >= 1 && debug1.length < CAPTURES, `debug=1 read only while the binary had unseen records (${debug1.length} of ${CAPTURES})`);
      assert.equal(files.filter((f) => f.endsWith('.sym')).length, debug1.length);
      const result = await runCli(['analyze', '--json', ...readdirSync(saved).map((f) => join(saved, f))]);
      assert.equal(result.code, 0, result.stderr);
      const offline = JSON.parse(result.stdout) as Report;
      assertReportShape(offline, CAPTURES);
      assert.deepEqual(offline.window, live.window, 'ordered by the profiles own timestamps');
      assertLeakyFindings(offline, lines, impl);
    });

    test('offline, proto only: size signatures and visible frames find the big maps', async () => {
      const protos = readdirSync(saved).filter((f) => f.endsWith('.pb.gz'));
      const result = await runCli(['analyze', '--json', ...protos.map((f) => join(saved, f))]);
      assert.equal(result.code, 0, result.stderr);
      const report = JSON.parse(result.stdout) as Report;
      assertLeakyFindings(report, lines, impl, [
        { site: 'map-growing-sessions', kind: 'map', pattern: 'growing' },
        { site: 'map-growing-json', kind: 'map', pattern: 'growing' },
        { site: 'map-retained-items', kind: 'map', pattern: 'retained' },
        { site: 'map-churn-histogram', kind: 'map', pattern: 'churn' },
        { site: 'other-growing-buffers', kind: 'other', pattern: 'growing' },
      ]);
      assert.equal(findingAt(report, lines, 'map-growing-json', 'map')?.evidence, 'visible-frame');
      assert.equal(findingAt(report, lines, 'map-growing-sessions', 'map')?.evidence, 'size-signature');
    });

    test('human output: a table with the sites and one line of advice each', async () => {
      const result = await runCli(['analyze', ...readdirSync(saved).map((f) => join(saved, f))]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`${CAPTURES} captures over \\d+s \\(${impl} maps\\)`));
      assert.match(result.stdout, /SITE\s+KIND\s+PATTERN\s+IN USE\s+GROWTH\/h\s+CONF\s+EVIDENCE/);
      assert.match(result.stdout, new RegExp(`main\\.\\(\\*sessionStore\\)\\.put main\\.go:${lines.get('map-growing-sessions')}\\s+map/${impl}\\s+growing`));
      assert.match(result.stdout, /Map was drained but keeps its/);
    });
  });
}

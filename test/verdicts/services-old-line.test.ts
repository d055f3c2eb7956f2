import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Report } from '../../src/analysis/report.js';
import { runCli } from '../support/cli.js';
import { buildTarget, startTarget, type GoVersion, type RunningTarget } from '../support/go-targets.js';

// The verdict streams run the services target with a current go line; this
// checks the other flavour (go 1.19 in go.mod) live: symbols still resolve
// and the real libraries' maps are still found and named.
for (const version of ['1.26', '1.19'] as GoVersion[]) {
  describe(`services target (real libraries) built with Go ${version}, go line 1.19`, () => {
    let target: RunningTarget;
    before(async () => {
      target = await startTarget(await buildTarget('services', version, 'old'), mkdtempSync(join(tmpdir(), 'mapleak-services-old-')), ['-memprofilerate', String(64 * 1024)]);
      await new Promise((resolve) => setTimeout(resolve, 3000));
    });
    after(() => target?.stop());

    test('live: symbolized map findings in the libraries, each with its caller in main', async () => {
      const result = await runCli(['analyze', '--url', target.url, '--every', '2s', '--count', '4', '--json', '--top', '200']);
      assert.equal(result.code, 0, result.stderr);
      const report = JSON.parse(result.stdout) as Report;
      assert.deepEqual(report.warnings, []);
      const maps = report.findings.filter((f) => f.kind === 'map');
      assert.ok(maps.length >= 3, `${maps.length} map findings`);
      assert.ok(maps.every((f) => f.evidence === 'symbolized'), JSON.stringify(maps.map((f) => [f.site.function, f.evidence])));
      const inLibraries = maps.filter((f) => !f.site.function.startsWith('main.'));
      assert.ok(inLibraries.length >= 1, 'maps owned by third-party packages');
      assert.ok(inLibraries.every((f) => f.caller?.function.startsWith('main.')), 'each names the caller in the main module');
    });
  });
}

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { attributeProfile, type SiteUsage } from '../../src/analysis/index.js';
import { captureHeap } from '../../src/capture/capture.js';
import { directPprofClient } from '../../src/capture/direct.js';
import { BinaryKnowledgeCache } from '../../src/capture/binary-knowledge.js';
import { buildTarget, siteLines, startTarget, type GoLine, type GoVersion, type RunningTarget } from '../support/go-targets.js';
import type { ShapesTruth } from './shapes.js';

/** Maps this big are what a user asks about (as in the proto-only test). */
const MIN_MAP_BYTES = 1024 * 1024;
const SYMBOLIZED_TOLERANCE = 0.1;

const builds: { toolchain: GoVersion; goLine: GoLine }[] = [
  { toolchain: '1.26', goLine: 'current' },
  { toolchain: '1.26', goLine: 'old' },
  { toolchain: '1.19', goLine: 'current' },
  { toolchain: '1.19', goLine: 'old' },
];

for (const { toolchain, goLine } of builds) {
  describe(`the shapes target built with Go ${toolchain} (${goLine} go line), captured live with symbols`, () => {
    let target: RunningTarget;
    let truth: ShapesTruth;
    let usages: SiteUsage[];
    const lines = siteLines('shapes');

    before(async () => {
      target = await startTarget(await buildTarget('shapes', toolchain, goLine), mkdtempSync(join(tmpdir(), 'mapleak-shapes-live-')));
      truth = JSON.parse((await (await fetch(`${target.url}/truth`)).text())) as ShapesTruth;
      const capture = await captureHeap(directPprofClient(`${target.url}/debug/pprof`, 30_000), {
        limits: { maxBytes: 256 * 1024 * 1024 },
        knowledge: new BinaryKnowledgeCache(),
        scope: 'shapes',
      });
      assert.deepEqual(capture.warnings, []);
      usages = attributeProfile(capture.profile).usages;
    });
    after(() => target?.stop());

    test('every map of 1 MiB or more: symbolized evidence at its line, bytes within ±10% of ReadMemStats', () => {
      const rows: string[] = [];
      const failures: string[] = [];
      for (const shape of truth.shapes.filter((s) => s.kind === 'map' && s.bytes >= MIN_MAP_BYTES)) {
        const line = lines.get(shape.site);
        const found = usages.filter((u) => u.kind === 'map' && u.site.function === shape.function && u.site.line === line);
        const bytes = found.reduce((sum, u) => sum + u.inuseBytes, 0);
        const ratio = bytes / shape.bytes;
        rows.push(`| ${shape.site} | ${shape.keyBytes} | ${shape.valueBytes} | ${shape.entries} | ${shape.bytes} | ${bytes} | ${ratio.toFixed(3)} |`);
        if (!found.some((u) => u.evidence === 'symbolized')) failures.push(`${shape.site}: evidence ${found.map((u) => u.evidence).join(',') || 'none'}`);
        if (Math.abs(ratio - 1) > SYMBOLIZED_TOLERANCE) failures.push(`${shape.site}: ${bytes} found, ${shape.bytes} true (${ratio.toFixed(3)}×)`);
      }
      console.log(`\nGo ${toolchain}, ${goLine} go line: true bytes (ReadMemStats) vs found (live, symbolized)\n`);
      console.log('| site | key B | value B | entries | true bytes | found bytes | ratio |\n|---|---:|---:|---:|---:|---:|---:|');
      console.log(rows.join('\n'));
      assert.ok(rows.length >= 15, `${rows.length} maps of 1 MiB or more`);
      assert.deepEqual(failures, []);
    });

    test('the non-map controls are never maps, with symbols either', () => {
      for (const shape of truth.shapes.filter((s) => s.kind === 'other')) {
        const line = lines.get(shape.site);
        assert.equal(usages.filter((u) => u.kind === 'map' && u.site.function === shape.function && u.site.line === line).length, 0, `${shape.site} is not a map`);
      }
    });
  });
}

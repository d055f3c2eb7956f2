import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { attributeProfile, type SiteUsage } from '../../src/analysis/index.js';
import { decodeHeapProfile } from '../../src/pprof/index.js';
import { runShapes, type ShapesRun } from './shapes.js';

/** Maps this big are what a user asks about; smaller ones are one or two objects with nothing to tell them apart. */
const MIN_MAP_BYTES = 1024 * 1024;
const SIZE_SIGNATURE_TOLERANCE = 0.3;

const builds = [
  { toolchain: '1.26', goLine: 'current', impl: 'swiss' },
  { toolchain: '1.26', goLine: 'old', impl: 'swiss' },
  { toolchain: '1.19', goLine: 'old', impl: 'classic' },
  { toolchain: '1.19', goLine: 'current', impl: 'classic' },
] as const;

for (const { toolchain, goLine, impl } of builds) {
  describe(`the shapes target built with Go ${toolchain} (go line ${goLine}), from its proto profile alone`, () => {
    let run: ShapesRun;
    let usages: SiteUsage[];
    let profileImpl: string;

    test('runs and reports what every map costs', async () => {
      run = await runShapes(toolchain, goLine);
      assert.match(run.truth.goVersion, new RegExp(`^go${toolchain.replace('.', '\\.')}`));
      const big = run.truth.shapes.filter((s) => s.kind === 'map' && s.bytes >= MIN_MAP_BYTES);
      assert.ok(big.length >= 15, `${big.length} maps of 1 MiB or more`);
      const snapshot = attributeProfile(decodeHeapProfile(run.profile));
      usages = snapshot.usages;
      profileImpl = snapshot.mapImpl;
    });

    test(`the sizes alone prove ${impl} maps`, () => assert.equal(profileImpl, impl));

    test('every map of 1 MiB or more is found at its line by size signature, its bytes within ±30%', () => {
      const rows: string[] = [];
      const failures: string[] = [];
      for (const shape of run.truth.shapes.filter((s) => s.kind === 'map')) {
        const line = run.lines.get(shape.site);
        assert.ok(line, `SITE ${shape.site} marked in main.go`);
        const found = usages.filter((u) => u.kind === 'map' && u.site.function === shape.function && u.site.line === line);
        const bytes = found.reduce((sum, u) => sum + u.inuseBytes, 0);
        const ratio = shape.bytes > 0 ? bytes / shape.bytes : 0;
        rows.push(`| ${shape.site} | ${shape.keyBytes} | ${shape.valueBytes} | ${shape.entries} | ${shape.bytes} | ${bytes} | ${ratio.toFixed(2)} | ${found.map((u) => u.evidence).join(',') || '-'} |`);
        if (shape.bytes < MIN_MAP_BYTES) continue;
        if (!found.every((u) => u.evidence === 'size-signature' && u.mapImpl === impl)) failures.push(`${shape.site}: evidence ${found.map((u) => `${u.evidence}/${u.mapImpl}`).join(',')}`);
        if (Math.abs(ratio - 1) > SIZE_SIGNATURE_TOLERANCE) failures.push(`${shape.site}: ${bytes} bytes found, ${shape.bytes} true (${ratio.toFixed(2)}×)`);
      }
      console.log(`\nGo ${toolchain}, go line ${goLine}: expected (ReadMemStats) vs found (proto only)\n`);
      console.log('| site | key B | value B | entries | true bytes | found bytes | ratio | evidence |\n|---|---:|---:|---:|---:|---:|---:|---|');
      console.log(rows.join('\n'));
      assert.deepEqual(failures, []);
    });

    test('buffers, slices and strings at other lines are never maps', () => {
      for (const shape of run.truth.shapes.filter((s) => s.kind === 'other')) {
        const line = run.lines.get(shape.site);
        const atLine = usages.filter((u) => u.site.function === shape.function && u.site.line === line);
        assert.ok(atLine.some((u) => u.kind === 'other' && u.inuseBytes >= 0.5 * shape.bytes), `${shape.site} is other memory (its own allocations, beside the slice made at another line)`);
        assert.equal(atLine.filter((u) => u.kind === 'map').length, 0, `${shape.site} is not a map`);
      }
    });
  });
}

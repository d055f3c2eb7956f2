/**
 * Records the small bench-shaped inputs the pinned-output test reads
 * (test/verdicts/testdata/bench-shaped/<impl>/): bench/heapgen with its first
 * FUNCS generated functions (bench/generate.ts: maps of many shapes, slices,
 * strings, buffers of many size classes), built with Go 1.26 (swiss maps,
 * malloc headers) and Go 1.19 (classic maps), CAPTURES proto profiles each.
 * Proto only: the engine reads them by size signatures, the path the big
 * bench profiles take.
 *
 *   npm run build && node dist/test/verdicts/record-bench-shaped.js
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateFuncs } from '../../bench/generate.js';
import { goBinary, type GoToolchain } from '../cluster/go-build.js';
import { repoPath } from '../support/paths.js';

export const BENCH_SHAPED_DIR = repoPath('test', 'verdicts', 'testdata', 'bench-shaped');
const FUNCS = 240;
const CAPTURES = 4;

function record(toolchain: GoToolchain, name: string): void {
  const work = mkdtempSync(join(tmpdir(), `mapleak-heapgen-${name}-`));
  const out = join(BENCH_SHAPED_DIR, name);
  try {
    cpSync(repoPath('bench', 'heapgen'), work, { recursive: true });
    writeFileSync(join(work, 'funcs.go'), generateFuncs(FUNCS));
    execFileSync(goBinary(toolchain), ['build', '-o', 'heapgen', '.'], { cwd: work, env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod' } });
    rmSync(out, { recursive: true, force: true });
    mkdirSync(out, { recursive: true });
    execFileSync(join(work, 'heapgen'), ['-out', out, '-funcs', String(FUNCS), '-captures', String(CAPTURES), '-interval', '200ms']);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  console.log(`${out}: ${readdirSync(out).join(' ')}`);
}

record('1.26', 'swiss');
record('1.19', 'classic');

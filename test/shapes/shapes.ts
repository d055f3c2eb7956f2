// The shapes target (test/targets/shapes): maps of known shapes and what
// each really costs. Shared by the proto-only accuracy test and, later, the
// symbolized one: `startTarget(await buildTarget('shapes', ...), dir)` gives
// a live target that has built every shape before it listens, serving
// net/http/pprof and the same truth (ShapesTruth) as JSON on /truth.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildTarget, siteLines, type GoLine, type GoVersion } from '../support/go-targets.js';

/** One map (or non-map control) the target built, with its exact cost. */
export interface Shape {
  site: string;
  function: string;
  kind: 'map' | 'other';
  keyBytes: number;
  valueBytes: number;
  entries: number;
  /** runtime.MemStats.HeapAlloc after building it minus before, each after runtime.GC(). */
  bytes: number;
}

export interface ShapesTruth {
  goVersion: string;
  shapes: Shape[];
}

export interface ShapesRun {
  truth: ShapesTruth;
  /** The proto heap profile the target wrote once every shape was built. */
  profile: Buffer;
  /** `// SITE name` → line in main.go. */
  lines: Map<string, number>;
}

/** Builds the target with one toolchain and go line, runs it once, and returns its profile and truth. */
export async function runShapes(toolchain: GoVersion, goLine: GoLine = 'current'): Promise<ShapesRun> {
  const binary = await buildTarget('shapes', toolchain, goLine);
  const dir = mkdtempSync(join(tmpdir(), 'mapleak-shapes-'));
  const out = join(dir, 'heap.pb.gz');
  const { stdout } = await promisify(execFile)(binary, ['-out', out], { maxBuffer: 16 * 1024 * 1024, timeout: 120_000 });
  return { truth: JSON.parse(stdout) as ShapesTruth, profile: readFileSync(out), lines: siteLines('shapes') };
}

// Builds the Go programs that tests run, once per source, toolchain and go line.
//
// The go line in go.mod changes what a program does, not only how it builds:
// from `go 1.22` net/http/pprof registers GET-only patterns (httpmuxgo121's
// default follows it), so a target that says `go 1.19` hides what real
// services do. Every target is therefore built in two flavours: the go.mod is
// copied with its go line rewritten, into a source directory whose path is
// stable (it shows in the profiles' file names).
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Debian's golang-1.19-go gives classic maps; the machine's Go (1.26) gives swiss maps. */
export type GoToolchain = '1.19' | '1.26';
/** `old`: go.mod says `go 1.19`; `current`: `go 1.26`, what services declare today. */
export type GoLine = 'old' | 'current';

export const GO_LINE_VERSION: Record<GoLine, string> = { old: '1.19', current: '1.26' };

const REPO_ROOT = resolve(fileURLToPath(import.meta.url), '..', '..', '..', '..');
const CACHE = join(REPO_ROOT, '.cache', 'go-build');

export function goBinary(toolchain: GoToolchain): string {
  return toolchain === '1.19' ? '/usr/lib/go-1.19/bin/go' : (process.env.GO ?? 'go');
}

export interface GoBuildOptions {
  toolchain?: GoToolchain;
  goLine?: GoLine;
}

/** Builds under way in this process, by output path: pods started together share one build. */
const building = new Map<string, Promise<string>>();

/**
 * Builds the main package in `packageDir` (a module root) and returns the
 * cached executable. Concurrent builds of the same key are safe: in one
 * process they are one build; across processes each writes files of its
 * own (named by pid and a random suffix, not the clock, which two builds
 * started in one millisecond shared) and renames them into place.
 */
export async function buildGoProgram(packageDir: string, options: GoBuildOptions = {}): Promise<string> {
  const toolchain = options.toolchain ?? '1.26';
  const goLine = options.goLine ?? 'current';
  const dir = resolve(REPO_ROOT, packageDir);
  const name = dir.split('/').pop() ?? 'program';
  const key = sourceHash(dir).update(`${toolchain}|${goLine}`).digest('hex').slice(0, 12);
  const output = join(CACHE, 'bin', `${name}-go${toolchain}-${goLine}-${key}`);
  if (existsSync(output)) return output;
  const pending = building.get(output);
  if (pending) return pending;
  const build = buildInto(output, dir, name, key, toolchain, goLine, packageDir).finally(() => building.delete(output));
  building.set(output, build);
  return build;
}

async function buildInto(output: string, dir: string, name: string, key: string, toolchain: GoToolchain, goLine: GoLine, packageDir: string): Promise<string> {
  const unique = `${process.pid}.${randomBytes(4).toString('hex')}`;
  // .../<key>/<name>/: profiles keep showing the package's own directory name.
  const source = join(CACHE, 'src', `${goLine}-${key}`, name);
  const staging = `${source}.${unique}`;
  mkdirSync(join(source, '..'), { recursive: true });
  cpSync(dir, staging, { recursive: true });
  rewriteGoLine(join(staging, 'go.mod'), GO_LINE_VERSION[goLine]);
  if (!existsSync(source)) {
    try {
      renameSync(staging, source);
    } catch {
      rmSync(staging, { recursive: true, force: true }); // another build put it there first
    }
  } else {
    rmSync(staging, { recursive: true, force: true });
  }

  mkdirSync(join(CACHE, 'bin'), { recursive: true });
  const partial = `${output}.${unique}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CGO_ENABLED: '0',
    // An old toolchain must not try to switch toolchains; -mod=mod lets a
    // rewritten go line update go.sum in the copy.
    GOTOOLCHAIN: 'local',
    GOFLAGS: '-mod=mod -buildvcs=false',
  };
  await new Promise<void>((done, fail) => {
    execFile(goBinary(toolchain), ['build', '-o', partial, '.'], { cwd: source, env, timeout: 600_000, maxBuffer: 16 * 1024 * 1024 }, (error, _stdout, stderr) => {
      if (error) fail(new Error(`go${toolchain} build of ${packageDir} (${goLine} go line) failed: ${stderr.trim() || error.message}`));
      else done();
    });
  });
  renameSync(partial, output);
  return output;
}

/** Both flavours a test should run a target in. */
export const GO_LINES: readonly GoLine[] = ['old', 'current'];

function rewriteGoLine(goMod: string, version: string): void {
  const text = readFileSync(goMod, 'utf8');
  if (!/^go \S+$/m.test(text)) throw new Error(`${goMod} has no go line`);
  // A toolchain line would make an old Go refuse the file.
  const rewritten = text.replace(/^go \S+$/m, `go ${version}`).replace(/^toolchain \S+\n/m, '');
  writeFileSync(goMod, rewritten);
}

function sourceHash(dir: string): ReturnType<typeof createHash> {
  const hash = createHash('sha256');
  const walk = (at: string): void => {
    for (const entry of readdirSync(at).sort()) {
      const path = join(at, entry);
      if (statSync(path).isDirectory()) walk(path);
      else hash.update(path.slice(dir.length)).update(readFileSync(path));
    }
  };
  walk(dir);
  return hash;
}

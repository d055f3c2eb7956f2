import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CACHE_DIR, repoPath } from './paths.js';

export type GoVersion = '1.19' | '1.26';

/** Debian's golang-1.19-go gives classic maps; the machine's Go gives swiss maps. */
export const GO_BINARIES: Record<GoVersion, string> = {
  '1.19': '/usr/lib/go-1.19/bin/go',
  '1.26': process.env.GO ?? 'go',
};

/** Builds a Go main package under test/targets with one toolchain, cached by source hash. */
export function buildTarget(name: string, version: GoVersion): string {
  const dir = repoPath('test', 'targets', name);
  const hash = createHash('sha256');
  for (const file of readdirSync(dir).sort()) hash.update(file).update(readFileSync(join(dir, file)));
  const out = join(CACHE_DIR, 'targets', `${name}-go${version}-${hash.digest('hex').slice(0, 12)}`);
  if (existsSync(out)) return out;
  mkdirSync(join(CACHE_DIR, 'targets'), { recursive: true });
  const result = spawnSync(GO_BINARIES[version], ['build', '-o', out, '.'], {
    cwd: dir,
    env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod' },
    encoding: 'utf8',
  });
  if (result.status !== 0) {
    throw new Error(`go${version} build of ${name} failed: ${result.error?.message ?? result.stderr}`);
  }
  return out;
}

export interface RunningTarget {
  url: string;
  /** Where the process's stderr (gctrace) goes. */
  stderrPath: string;
  stop(): Promise<void>;
}

/** Starts a target on a free loopback port with GODEBUG=gctrace=1 and waits until it listens. */
export async function startTarget(binary: string, workDir: string, args: string[] = []): Promise<RunningTarget> {
  mkdirSync(workDir, { recursive: true });
  const stderrPath = join(workDir, 'stderr.log');
  const stderr = createWriteStream(stderrPath);
  const child: ChildProcess = spawn(binary, ['-addr', '127.0.0.1:0', '-max-lifetime', '5m', ...args], {
    env: { ...process.env, GODEBUG: 'gctrace=1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr?.pipe(stderr);
  const url = await new Promise<string>((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`${binary} did not start listening in 20s`)), 20_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on (\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(`http://${match[1]}`);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${binary} exited with ${code} before listening`));
    });
  });
  return {
    url,
    stderrPath,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => stderr.end(() => resolve()));
        child.kill('SIGKILL');
      }),
  };
}

/** `// SITE name` markers of a target's main.go: name → line. */
export function siteLines(name: string): Map<string, number> {
  const lines = readFileSync(repoPath('test', 'targets', name, 'main.go'), 'utf8').split('\n');
  const sites = new Map<string, number>();
  lines.forEach((line, i) => {
    const match = /\/\/ SITE ([a-z][\w-]*)/.exec(line);
    if (match?.[1]) sites.set(match[1], i + 1);
  });
  return sites;
}

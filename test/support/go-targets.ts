import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildGoProgram, type GoLine, type GoToolchain } from '../cluster/go-build.js';
import { repoPath } from './paths.js';

export { GO_LINES, type GoLine } from '../cluster/go-build.js';

export type GoVersion = GoToolchain;

/**
 * Builds a Go main package under test/targets with one toolchain and go line
 * (default: a current go line, as real services have), cached by source.
 */
export function buildTarget(name: string, version: GoVersion, goLine: GoLine = 'current'): Promise<string> {
  return buildGoProgram(repoPath('test', 'targets', name), { toolchain: version, goLine });
}

export interface RunningTarget {
  url: string;
  pid: number;
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
    pid: child.pid ?? 0,
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

import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { repoPath } from './paths.js';

/** Live processes whose command line or working directory names a demo's state dir. */
export function demoProcesses(stateDir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let commandLine = '';
    let cwd = '';
    try {
      commandLine = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim();
      cwd = readlinkSync(`/proc/${entry}/cwd`);
    } catch {
      continue; // gone, or not ours to read
    }
    if (commandLine === '') continue; // zombie
    if (commandLine.includes(stateDir) || cwd.startsWith(stateDir)) found.push(`${entry}: ${commandLine} (cwd ${cwd})`);
  }
  return found;
}

export interface DemoRun {
  child: ChildProcess;
  /** stdout and stderr so far. */
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }>;
}

/** `node scripts/demo.mjs ARGS` from the repository root; killed after timeoutMs. */
export function startDemo(args: string[], timeoutMs: number): DemoRun {
  const child = spawn(process.execPath, [repoPath('scripts', 'demo.mjs'), ...args], { cwd: repoPath(), stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'info' } });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }>((resolve) => {
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output });
    });
  });
  return { child, output: () => output, exited };
}

export function runDemo(args: string[], timeoutMs: number): Promise<{ code: number | null; output: string }> {
  return startDemo(args, timeoutMs).exited;
}

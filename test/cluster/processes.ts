// Small helpers for the harness's child processes: run a command to completion,
// start a daemon detached from us (so `cluster:up` can exit), and stop a daemon
// by the pid we recorded, checking first that the pid still is our process.
import { execFile, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; rejects with its stderr when it fails. */
export function run(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      {
        cwd: options.cwd,
        env: options.env ?? process.env,
        timeout: options.timeoutMs ?? 0,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        if (error) {
          const detail = stderr.trim() || stdout.trim() || error.message;
          reject(new Error(`${command} ${args.join(' ')} failed: ${detail}`));
          return;
        }
        resolve({ stdout, stderr });
      },
    );
  });
}

/** Starts a long-running process in its own process group, output appended to logFile. */
export function startDaemon(
  command: string,
  args: readonly string[],
  logFile: string,
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): number {
  const logFd = openSync(logFile, 'a');
  try {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: true,
      stdio: ['ignore', logFd, logFd],
    });
    if (child.pid === undefined) throw new Error(`could not start ${command}; see ${logFile}`);
    child.unref();
    return child.pid;
  } finally {
    closeSync(logFd);
  }
}

/** The command line of a live process, or undefined when there is no such process. */
export function commandLineOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return undefined;
  }
}

/**
 * True when pid has exited: no such process, or a zombie. Unlike
 * isOurProcess, a process between fork and exec (or inside execve, when its
 * command line reads empty for a moment) is not gone.
 */
export function processGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 3, after the command name in parentheses (which may itself hold spaces or parentheses).
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}

/** True when pid is alive and its command line still contains marker (guards against pid reuse). */
export function isOurProcess(pid: number, marker: string): boolean {
  const commandLine = commandLineOf(pid);
  if (commandLine === undefined || commandLine === '') return false; // gone or a zombie
  return commandLine.includes(marker);
}

/** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. */
export async function stopProcess(pid: number, marker: string, graceMs = 5000): Promise<void> {
  if (!isOurProcess(pid, marker)) return;
  signal(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isOurProcess(pid, marker)) return;
    await sleep(100);
  }
  signal(pid, 'SIGKILL');
  for (let i = 0; i < 50 && isOurProcess(pid, marker); i++) await sleep(100);
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

/**
 * Polls check() until it returns a value other than undefined, or throws describe() after timeoutMs.
 * An error check() throws is retried, unless `final` says waiting longer cannot help: that one is thrown at once.
 */
export async function waitFor<T>(
  check: () => Promise<T | undefined>,
  timeoutMs: number,
  describe: () => string,
  intervalMs = 250,
  final: (error: unknown) => boolean = () => false,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      if (final(error)) throw error;
      lastError = error;
    }
    if (Date.now() > deadline) {
      const cause = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(describe() + cause);
    }
    await sleep(intervalMs);
  }
}

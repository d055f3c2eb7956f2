import { spawn, type ChildProcess } from 'node:child_process';
import { freeLoopbackPort } from '../cluster/redis.js';
import { CLI } from './paths.js';

export interface OperatorProcess {
  pid: number;
  port: number;
  identity: string;
  /** Everything it logged (JSON lines), for failure messages. */
  output(): string;
  /** 1 when it holds the controller lease, 0 when not, undefined when it does not answer. */
  leader(): Promise<number | undefined>;
  kill(signal: NodeJS.Signals): Promise<void>;
  /** Sends a signal and returns at once (kill() waits for the exit). */
  signal(signal: NodeJS.Signals): void;
  /** Resolves with the exit code (or the signal that ended it) and when it exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

/** A free loopback port (for servers the test starts itself). */
export const freePort = freeLoopbackPort;

/**
 * `mapleak operator` as a separate process, as it runs in a pod, so tests can SIGKILL it.
 * `httpToken`: a bearer token allowed to get /metrics (see tokens.ts), for leader().
 */
export async function spawnOperator(options: {
  kubeconfig: string;
  /** Standalone Redis; without it, `args` name the sentinels or cluster nodes. */
  redisUrl?: string;
  identity: string;
  leaseNamespace: string;
  httpToken: string;
  args?: string[];
  /** Extra environment (e.g. REDIS_PASSWORD, which is never a flag). */
  env?: Record<string, string>;
}): Promise<OperatorProcess> {
  const port = await freePort();
  const child: ChildProcess = spawn(
    process.execPath,
    [CLI, 'operator', '--kubeconfig', options.kubeconfig, ...(options.redisUrl ? ['--redis-url', options.redisUrl] : []), '--port', String(port), '--identity', options.identity, '--lease-namespace', options.leaseNamespace, ...(options.args ?? [])],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: process.env.OPERATOR_LOG_LEVEL ?? 'info', ...options.env } },
  );
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-200_000)));
  child.stderr?.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-200_000)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })));
  const leader = async (): Promise<number | undefined> => {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${options.httpToken}` }, signal: AbortSignal.timeout(2000) });
      if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
      const text = await response.text();
      const match = /^mapleak_leader (\d)/m.exec(text);
      return match ? Number(match[1]) : 0;
    } catch {
      return undefined;
    }
  };
  // Up when its HTTP server answers.
  const deadline = Date.now() + 20_000;
  while ((await leader()) === undefined) {
    if (child.exitCode !== null) throw new Error(`operator ${options.identity} exited: ${output}`);
    if (Date.now() > deadline) throw new Error(`operator ${options.identity} did not start: ${output}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return {
    pid: child.pid ?? 0,
    port,
    identity: options.identity,
    output: () => output,
    leader,
    exited,
    signal: (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    kill: async (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      // A process that ignores SIGTERM must not hang the suite: it is killed after 15 s.
      const force = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(force);
    },
  };
}

import { spawn } from 'node:child_process';
import type { CliResult } from './cli.js';
import { repoPath } from './paths.js';

/** Runs `kubectl mapleak` as kubectl would (bin/kubectl-mapleak), with the given kubeconfig as KUBECONFIG. */
export function runPlugin(args: string[], kubeconfig: string, env: Record<string, string> = {}, timeoutMs = 120_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(repoPath('bin', 'kubectl-mapleak'), args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KUBECONFIG: kubeconfig, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`kubectl mapleak ${args.join(' ')} did not finish in ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

import { runProgram, type CliResult } from './cli.js';
import { repoPath } from './paths.js';

/** Runs `kubectl mapleak` as kubectl would (bin/kubectl-mapleak), with the given kubeconfig as KUBECONFIG. */
export function runPlugin(args: string[], kubeconfig: string, env: Record<string, string> = {}, timeoutMs = 120_000): Promise<CliResult> {
  return runProgram(repoPath('bin', 'kubectl-mapleak'), args, { env: { ...process.env, KUBECONFIG: kubeconfig, ...env }, timeoutMs, label: 'kubectl mapleak' });
}

// Starts `mapleak operator` the way a container runs it (the caller builds the
// command: user, read-only root, tmpfs /tmp) and checks what a kubelet would:
// /healthz, /readyz, the process's identity and mounts, a clean exit on SIGTERM.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { waitFor } from '../support/wait.js';

export const IMAGE_UID = 65532;

export async function checkOperatorProcess(t: TestContext, command: string, argv: string[], env: NodeJS.ProcessEnv, port: number): Promise<void> {
  const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  try {
    const base = `http://127.0.0.1:${port}`;
    const health = await waitFor('/healthz', async () => {
      if (child.exitCode !== null) throw new Error(`the operator exited with ${child.exitCode}`);
      const response = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2000) });
      return response.status === 200 && (await response.text());
    }, 30_000, 200);
    assert.equal(health, 'ok');
    // Everything but the probes needs a bearer token (test/server covers who may read what).
    assert.equal((await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(2000) })).status, 401, '/metrics needs a token');
    // Leader election is on (the default): a follower is ready with Redis alone; the leader also reports its watches.
    const ready = await waitFor('/readyz 200 as leader', async () => {
      const response = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(2000) });
      const body = response.status === 200 && ((await response.json()) as { ready: boolean; checks: Record<string, boolean> });
      return body && Object.keys(body.checks).length >= 2 && body;
    }, 30_000, 300);
    assert.equal(ready.ready, true);
    assert.equal(ready.checks.redis, true, 'Redis reached');
    assert.ok(Object.keys(ready.checks).length >= 2 && Object.values(ready.checks).every(Boolean), `every check passes: ${JSON.stringify(ready.checks)}`);
    // It is the process we think: node (the command execs into it), as 65532 with no
    // supplementary groups, in a mount namespace where / is read-only and /tmp a tmpfs.
    assert.match(readFileSync(`/proc/${child.pid}/cmdline`, 'utf8'), /dist\/src\/cli\/main\.js\0operator\0/);
    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
    assert.match(status, new RegExp(`^Uid:\\s+${IMAGE_UID}\\s+${IMAGE_UID}\\s+${IMAGE_UID}\\s+${IMAGE_UID}$`, 'm'));
    assert.match(status, new RegExp(`^Gid:\\s+${IMAGE_UID}\\s+${IMAGE_UID}\\s+${IMAGE_UID}\\s+${IMAGE_UID}$`, 'm'));
    assert.match(status, new RegExp(`^Groups:\\s*(${IMAGE_UID}\\s*)?$`, "m"), "no supplementary group but its own");
    const mounts = readFileSync(`/proc/${child.pid}/mountinfo`, 'utf8').split('\n').map((line) => line.split(' '));
    assert.ok(mounts.some((f) => f[4] === '/' && /(^|,)ro(,|$)/.test(f[5] ?? '')), 'root mounted read-only');
    assert.ok(mounts.some((f) => f[4] === '/tmp' && f.includes('tmpfs')), '/tmp is a tmpfs');

    const stopAt = Date.now();
    child.kill('SIGTERM');
    const exit = await Promise.race([exited, new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 10_000))]);
    assert.notEqual(exit, 'timeout', 'exits within 10s of SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null });
    t.diagnostic(`stopped ${Date.now() - stopAt} ms after SIGTERM`);
    const logs = output.trim().split('\n').map((line) => JSON.parse(line) as { msg?: string; level?: string });
    assert.ok(logs.some((l) => l.msg === 'operator started'));
    assert.ok(logs.some((l) => l.msg === 'operator stopped'));
    assert.deepEqual(logs.filter((l) => l.level === 'error'), [], 'no errors logged');
  } catch (error) {
    throw new Error(`${error instanceof Error ? error.message : String(error)}\noperator output:\n${output}`);
  }
}

// `npm run demo` end to end: `node scripts/demo.mjs --ci` brings up the local
// control plane, Redis, the leaking Go pod and the operator, waits for the
// Leaking verdict, then stops everything. Runs under its own cluster name so a
// demo someone left running ("demo") is not touched.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { test } from 'node:test';
import { repoPath } from '../support/paths.js';

const NAME = 'demo-test';
const STATE_DIR = repoPath('.cluster', NAME);

/** Live processes whose command line or working directory names the demo's state dir. */
function demoProcesses(): string[] {
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
    if (commandLine.includes(STATE_DIR) || cwd.startsWith(STATE_DIR)) found.push(`${entry}: ${commandLine} (cwd ${cwd})`);
  }
  return found;
}

function runDemo(args: string[], timeoutMs: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [repoPath('scripts', 'demo.mjs'), ...args], { cwd: repoPath(), stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'info' } });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

test('npm run demo -- --ci: Leaking with a growing map site, then nothing left running', { timeout: 420_000 }, async (t) => {
  t.after(async () => {
    // Whatever happened, leave no demo behind.
    if (existsSync(STATE_DIR)) await runDemo(['down', '--name', NAME], 120_000);
  });
  const started = Date.now();
  const { code, output } = await runDemo(['--ci', '--name', NAME, '--port', '0', '--timeout', '240s'], 400_000);
  t.diagnostic(`demo --ci took ${((Date.now() - started) / 1000).toFixed(1)}s`);
  assert.equal(code, 0, output);

  // The kubectl-like table shows the verdict, and the growing map sites of test/targets/leaky are named.
  assert.match(output, /^NAME\s+TARGETS\s+VERDICT\s+MAP MEMORY\s+LAST CAPTURE\s+AGE$/m, output);
  assert.match(output, /^leaky\s+1\s+Leaking\s+\d/m, output);
  assert.match(output, /^\s+main\.\((\*sessionStore\)\.put|\*catalog\)\.ingest) main\.go:\d+\s+map\/swiss\s+growing\s+/m, output);
  assert.match(output, /Map grows without bound/, output);
  assert.match(output, /verdict Leaking with a growing map site/, output);

  // --ci stopped everything: operator, Redis, the pod's supervisor and program, kwok, kube-apiserver, etcd.
  assert.match(output, /stopped the operator \(pid \d+\)/);
  assert.match(output, /stopped redis-server \(pid \d+\)/);
  assert.match(output, /stopped kube-apiserver \(pid \d+\)/);
  assert.deepEqual(demoProcesses(), [], 'no demo process remains');
  const index = /pod CIDR 10\.244\.(\d+)\.0\/24/.exec(output)?.[1];
  assert.ok(index, 'the demo printed its pod CIDR');
  const netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  assert.doesNotMatch(netns, new RegExp(`^mlp${index}-`, 'm'), 'the pod network namespace is removed');
  assert.equal(existsSync(STATE_DIR), false, `${STATE_DIR} removed`);
});

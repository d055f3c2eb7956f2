// `npm run demo` end to end: `node scripts/demo.mjs --ci` brings up the local
// control plane, Redis, the leaking Go pod and the operator, waits for the
// Leaking verdict, then stops everything. Runs under its own cluster name so a
// demo someone left running ("demo") is not touched.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { demoProcesses, runDemo } from '../support/demo.js';
import { repoPath } from '../support/paths.js';

const NAME = 'demo-test';
const STATE_DIR = repoPath('.cluster', NAME);

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
  // The leak is capped: the program is started with -max-leak-heap.
  assert.match(output, /leaks map memory on purpose, until its heap reaches 1\.0 GiB/);

  // --ci stopped everything: operator, Redis, the pod's supervisor and program, kwok, kube-apiserver, etcd.
  assert.match(output, /stopped the operator \(pid \d+\)/);
  assert.match(output, /stopped redis-server \(pid \d+\)/);
  assert.match(output, /stopped kube-apiserver \(pid \d+\)/);
  assert.deepEqual(demoProcesses(STATE_DIR), [], 'no demo process remains');
  const index = /pod CIDR 10\.244\.(\d+)\.0\/24/.exec(output)?.[1];
  assert.ok(index, 'the demo printed its pod CIDR');
  const netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  assert.doesNotMatch(netns, new RegExp(`^mlp${index}-`, 'm'), 'the pod network namespace is removed');
  assert.equal(existsSync(STATE_DIR), false, `${STATE_DIR} removed`);
});

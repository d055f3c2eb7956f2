// Ctrl-C during `npm run demo`: everything the demo started is stopped, as
// `npm run demo:down` does. Its own cluster name, so no other demo is touched.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { demoProcesses, runDemo, startDemo } from '../support/demo.js';
import { repoPath } from '../support/paths.js';
import { waitFor } from '../support/wait.js';

const NAME = 'demo-interrupt';
const STATE_DIR = repoPath('.cluster', NAME);

test('SIGINT while the demo watches the probe: it stops everything and exits 130', { timeout: 300_000 }, async (t) => {
  t.after(async () => {
    if (existsSync(STATE_DIR)) await runDemo(['down', '--name', NAME], 120_000);
  });
  const demo = startDemo(['--name', NAME, '--port', '0', '--timeout', '240s'], 280_000);
  await waitFor('the demo to apply its probe', async () => /applied MapLeakProbe default\/leaky/.test(demo.output()) || (demo.child.exitCode !== null && Promise.reject(new Error(demo.output()))), 240_000, 500);
  assert.ok(demoProcesses(STATE_DIR).length >= 3, 'the cluster, Redis, the operator and the pod run');
  demo.child.kill('SIGINT');
  const { code, output } = await demo.exited;
  assert.equal(code, 130, output);
  assert.match(output, /interrupted: stopping everything/);
  assert.match(output, /stopped the operator \(pid \d+\)/);
  assert.match(output, /stopped redis-server \(pid \d+\)/);
  assert.match(output, /stopped kube-apiserver \(pid \d+\)/);
  assert.doesNotMatch(output, /Everything keeps running/);
  assert.deepEqual(demoProcesses(STATE_DIR), [], 'no demo process remains');
  assert.equal(existsSync(STATE_DIR), false, `${STATE_DIR} removed`);
});

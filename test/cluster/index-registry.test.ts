// The machine-wide registry of cluster indexes (ports and pod range) under
// concurrent claims from separate processes, as test files and checkouts
// start clusters at the same moment. A shared index is two clusters on the
// same ports and pod range: the one whose start fails sweeps the other's pod
// networks, and its pods stop answering.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { claimClusterIndex, releaseClusterIndex } from './cluster.js';

const CLUSTER_MODULE = fileURLToPath(new URL('./cluster.js', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'mlp-index-registry-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A checkout with state for `names` (what makes a claim live). */
function checkout(dir: string, names: readonly string[]): string {
  for (const name of names) mkdirSync(join(dir, '.cluster', name), { recursive: true });
  return dir;
}

/**
 * Claims from `names.length` processes at one instant (each waits for `at`):
 * each claims, checks the claim file still names it, and releases, `rounds`
 * times, then claims for good. Their final indexes by name, and every time
 * a process found its fresh claim taken over.
 */
async function claimAtOnce(registry: string, root: string, names: readonly string[], rounds: number): Promise<{ indexes: Map<string, number>; lost: string[] }> {
  const at = Date.now() + 1500;
  const script = `const { claimClusterIndex, releaseClusterIndex } = await import(${JSON.stringify(CLUSTER_MODULE)});
const { readFileSync } = await import('node:fs');
const [root, name, registry] = process.argv.slice(1);
while (Date.now() < ${at}) {}
for (let round = 0; round < ${rounds}; round++) {
  const index = claimClusterIndex(root, name + '-' + round, registry);
  let holder;
  try { holder = readFileSync(registry + '/' + index, 'utf8').trim(); } catch (error) { holder = error.code; }
  if (holder !== root + '\\t' + name + '-' + round) process.stderr.write('lost ' + name + '-' + round + ' index ' + index + ' to ' + holder + '\\n');
  releaseClusterIndex(root, name + '-' + round, registry);
}
process.stdout.write(String(claimClusterIndex(root, name, registry)));`;
  const lost: string[] = [];
  const claims = await Promise.all(
    names.map(
      (name) =>
        new Promise<[string, number]>((resolve, reject) => {
          const child = spawn(process.execPath, ['--input-type=module', '-e', script, root, name, registry], { stdio: ['ignore', 'pipe', 'pipe'] });
          let out = '';
          let err = '';
          child.stdout.on('data', (c: Buffer) => (out += c.toString()));
          child.stderr.on('data', (c: Buffer) => (err += c.toString()));
          child.once('exit', (code) => {
            lost.push(...err.split('\n').filter((line) => line.startsWith('lost ')));
            if (code === 0) resolve([name, Number(out)]);
            else reject(new Error(`claims of ${name} exited ${code}: ${err}`));
          });
        }),
    ),
  );
  return { indexes: new Map(claims), lost };
}

test('clusters started at the same moment in separate processes never share an index, and live claims are kept', async () => {
  const registry = join(scratch, 'concurrent');
  const live = checkout(join(scratch, 'live'), ['a', 'b']);
  const names = Array.from({ length: 8 }, (_, i) => `c${i}`);
  const root = checkout(join(scratch, 'starting'), [...names, ...names.flatMap((name) => Array.from({ length: 200 }, (_, round) => `${name}-${round}`))]);
  mkdirSync(registry, { recursive: true });
  writeFileSync(join(registry, '1'), `${live}\ta\n`);
  writeFileSync(join(registry, '3'), `${live}\tb\n`);
  // A claim whose checkout is gone: stale, free to take.
  writeFileSync(join(registry, '2'), `${join(scratch, 'deleted-clone')}\tx\n`);

  const { indexes, lost } = await claimAtOnce(registry, root, names, 200);
  assert.deepEqual(lost, [], 'a fresh claim was taken over by another process');
  const taken = [...indexes.values()];
  assert.equal(new Set(taken).size, names.length, `indexes: ${JSON.stringify(Object.fromEntries(indexes))}`);
  assert.ok(!taken.includes(1) && !taken.includes(3), 'the live claims stayed theirs');
  assert.ok(taken.includes(2), 'the stale claim was taken over');
  // Every claim file names its owner, and only whole claims are in the registry.
  for (const [name, index] of indexes) assert.equal(readFileSync(join(registry, String(index)), 'utf8'), `${root}\t${name}\n`);
  assert.deepEqual(readdirSync(registry).sort((x, y) => Number(x) - Number(y)), ['1', '2', '3', ...[...taken].filter((i) => i > 3).sort((x, y) => x - y).map(String)]);
});

test('a cluster gets its own index back, and a released index is claimed again', () => {
  const registry = join(scratch, 'again');
  const root = checkout(join(scratch, 'again-root'), ['p', 'q']);
  const p = claimClusterIndex(root, 'p', registry);
  const q = claimClusterIndex(root, 'q', registry);
  assert.notEqual(p, q);
  assert.equal(claimClusterIndex(root, 'p', registry), p);
  releaseClusterIndex(root, 'p', registry);
  assert.deepEqual(readdirSync(registry), [String(q)]);
  assert.equal(claimClusterIndex(root, 'q', registry), q);
});

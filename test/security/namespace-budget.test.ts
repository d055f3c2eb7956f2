/**
 * Review 4, finding 2 with the budget set, through the real operator (a
 * separate process), a real redis-server at a real maxmemory with
 * noeviction, a real kube-apiserver and real pods. Tenant team-a runs one
 * probe over four pods of test/security/targets/fixed-profile serving a
 * fat, cheap profile (fatProfile with a pad no frame uses: a 493 KB summary and
 * a 10.6 MB raw profile); tenant team-b runs the leaky target. team-a's
 * kept captures stay within --max-redis-bytes-per-namespace, its status
 * names the budget, and team-b keeps capturing on its interval.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { Redis } from 'ioredis';
import { runPod, stopCluster, type Cluster } from '../cluster/cluster.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { spawnOperator, type OperatorProcess } from '../support/operator-process.js';
import { condition, startClusterWithCrd, TestProbes } from '../support/probes.js';
import { testReaderToken } from '../support/tokens.js';
import { waitFor } from '../support/wait.js';
import { fatProfile } from '../store/fat-profile.js';

const CLUSTER = 'nsbudget';
const MiB = 1024 * 1024;
/** The test's admin ceiling: three whole captures of team-a fit, then only summaries, then nothing. */
const BUDGET = 36 * MiB;
const MAXMEMORY = 160 * MiB;
const PODS = ['fat-0', 'fat-1', 'fat-2', 'fat-3'];
const info = (text: string, field: string): number => Number(new RegExp(`${field}:(\\d+)`).exec(text)?.[1]);

describe("one namespace's captures stay within its Redis budget, and the other tenant keeps capturing", () => {
  let cluster: Cluster;
  let redis: RedisServer;
  let client: Redis;
  let op: OperatorProcess;
  let teamA: TestProbes;
  let teamB: TestProbes;
  let token: string;
  let dir: string;
  /** The most team-a's c:/p: keys held, and the most Redis used, at any sample. */
  const worst = { teamABytes: 0, usedMemory: 0, samples: 0 };
  let sampling = true;
  let sampler: Promise<void> | undefined;

  const teamABytes = async (): Promise<number> => {
    let total = 0;
    for (const key of await client.keys('mlp:{team-a/*}:[cp]:*')) total += await client.strlen(key);
    return total;
  };
  const waitOrExplain = async <T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs: number): Promise<T> => {
    try {
      return await waitFor(what, check, timeoutMs, 1000);
    } catch (err) {
      const statuses = JSON.stringify({ fat: (await teamA.get('fat'))?.status?.conditions, other: (await teamB.get('other'))?.status?.conditions }).slice(0, 4000);
      throw new Error(`${(err as Error).message}\nstatus: ${statuses}\noperator: ${op.output().split('\n').slice(-30).join('\n')}`);
    }
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mapleak-nsbudget-'));
    const profilePath = join(dir, 'padded.pb');
    writeFileSync(profilePath, fatProfile({ functions: 400, nameLength: 300, objectsPerSite: 10, padBytes: 10 * MiB, gzip: false }));
    const [started, server] = await Promise.all([startClusterWithCrd(CLUSTER), startRedis()]);
    cluster = started.cluster;
    redis = server;
    client = new Redis(redis.url);
    // As the chart's bundled Redis, smaller: at maxmemory writes are refused, nothing is evicted.
    await client.config('SET', 'maxmemory-policy', 'noeviction');
    await client.config('SET', 'maxmemory', String(MAXMEMORY));
    const core = started.kc.makeApiClient(CoreV1Api);
    await Promise.all(['team-a', 'team-b'].map((name) => core.createNamespace({ body: { metadata: { name } } })));
    token = await testReaderToken(started.kc);
    teamA = new TestProbes(started.kc, 'team-a');
    teamB = new TestProbes(started.kc, 'team-b');
    [op] = await Promise.all([
      spawnOperator({
        kubeconfig: cluster.kubeconfigPath,
        redisUrl: redis.url,
        identity: 'nsbudget',
        leaseNamespace: 'default',
        httpToken: token,
        args: ['--no-leader-elect', '--resync-interval', '3s', '--max-redis-bytes-per-namespace', String(BUDGET), '--max-stored-profile-bytes', '16Mi'],
      }),
      ...PODS.map((name) => runPod(cluster, { name, namespace: 'team-a', labels: { app: 'fat' }, path: 'test/security/targets/fixed-profile', args: ['-profile', profilePath] })),
      runPod(cluster, { name: 'other', namespace: 'team-b', labels: { app: 'other' }, path: 'test/targets/leaky' }),
    ]);
    sampler = (async () => {
      while (sampling) {
        const [bytes, memory] = await Promise.all([teamABytes(), client.info('memory')]);
        worst.teamABytes = Math.max(worst.teamABytes, bytes);
        worst.usedMemory = Math.max(worst.usedMemory, info(memory, 'used_memory'));
        worst.samples++;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    })();
    await Promise.all([
      teamA.create('fat', { selector: { matchLabels: { app: 'fat' } }, gctrace: { enabled: false } }),
      teamB.create('other', { selector: { matchLabels: { app: 'other' } }, gctrace: { enabled: false } }),
    ]);
  });
  after(async () => {
    sampling = false;
    await sampler;
    await op?.kill('SIGTERM');
    client?.disconnect();
    await redis?.stop();
    await stopCluster(CLUSTER);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("past the budget team-a's captures lose their raw profile, then are refused, and its status names the budget", async (t) => {
    const dropped = await waitOrExplain('team-a keeps captures without their raw profile', async () => {
      const probe = await teamA.get('fat');
      return condition(probe, 'Degraded')?.reason === 'NamespaceStoreBudget' ? probe : undefined;
    }, 90_000);
    assert.match(condition(dropped, 'Degraded')?.message ?? '', new RegExp(`Redis budget per namespace of ${BUDGET} bytes \\(--max-redis-bytes-per-namespace\\)`));
    const refused = await waitOrExplain('team-a refused', async () => {
      const probe = await teamA.get('fat');
      return /were not stored/.test(condition(probe, 'Degraded')?.message ?? '') ? probe : undefined;
    }, 90_000);
    const degraded = condition(refused, 'Degraded');
    assert.equal(degraded?.reason, 'NamespaceStoreBudget');
    assert.match(degraded?.message ?? '', new RegExp(`of 4 targets' captures were not stored: this namespace's kept captures already take the operator's Redis budget per namespace of ${BUDGET} bytes`));
    assert.ok(refused.status?.targets?.some((target) => target.lastErrorReason === 'NamespaceStoreBudget'), 'the refused pods say why');
    // Operator text only: neither the tenant's function names nor its pad reach the status.
    assert.doesNotMatch(JSON.stringify(refused.status?.conditions), /main\.site|xxxx|pppp/);

    const bytes = await teamABytes();
    assert.ok(bytes <= BUDGET, `team-a keeps ${bytes} bytes`);
    assert.ok(bytes > BUDGET - 2 * MiB, `the budget is used, not wasted: ${bytes} bytes`);
    const profiles = (await client.keys('mlp:{team-a/fat}:p:*')).length;
    const summaries = (await client.keys('mlp:{team-a/fat}:c:*')).length;
    assert.ok(profiles >= 3 && summaries > profiles, `${summaries} summaries, ${profiles} raw profiles`);

    const metrics = await (await fetch(`http://127.0.0.1:${op.port}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
    assert.match(metrics, /mapleak_store_budget_refusals_total\{namespace="team-a"\} [1-9]/);
    assert.match(metrics, /mapleak_stored_profiles_dropped_total\{namespace="team-a",reason="NamespaceStoreBudget"\} [1-9]/);
    assert.doesNotMatch(metrics, /mapleak_store_budget_refusals_total\{namespace="team-b"\}/);
    t.diagnostic(`team-a: ${summaries} summaries and ${profiles} raw profiles kept, ${bytes} of ${BUDGET} bytes`);
  });

  test('team-b keeps capturing on its interval, and Redis never reaches maxmemory', async (t) => {
    const from = Date.parse((await teamB.get('other'))?.status?.targets?.[0]?.lastCaptureTime ?? '0');
    const seen = new Set<string>();
    await waitOrExplain('team-b captures three more times', async () => {
      const probe = await teamB.get('other');
      const last = probe?.status?.targets?.[0]?.lastCaptureTime;
      if (last && Date.parse(last) > from) seen.add(last);
      return seen.size >= 3 && condition(probe, 'Capturing')?.status === 'True' && condition(probe, 'Degraded')?.status === 'False';
    }, 40_000);
    const times = [...seen].map(Date.parse).sort((a, b) => a - b);
    const gaps = times.slice(1).map((time, i) => time - (times[i] as number));
    // 5 s interval: a round may run late by a few seconds on this shared machine, never a whole window of them.
    assert.ok(gaps.every((gap) => gap < 15_000), `gaps between team-b's captures: ${gaps.join(', ')} ms`);
    assert.ok(worst.samples > 10);
    assert.ok(worst.teamABytes <= BUDGET, `team-a held at most ${worst.teamABytes} bytes at any of ${worst.samples} samples`);
    assert.ok(worst.usedMemory < MAXMEMORY, `used_memory at most ${worst.usedMemory} of ${MAXMEMORY}`);
    t.diagnostic(`team-b gaps ${gaps.join(', ')} ms; team-a at most ${worst.teamABytes} of ${BUDGET} bytes; used_memory at most ${worst.usedMemory} of ${MAXMEMORY} (${worst.samples} samples)`);
  });

  test("deleting team-a's probe gives its namespace's budget back", async () => {
    await teamA.delete('fat');
    await waitOrExplain('team-a forgotten', async () => (await client.keys('mlp:{team-a/*}:*')).length === 0 && (await client.exists('mlp:{ns:team-a}:stored-total')) === 0, 30_000);
    assert.deepEqual(await client.keys('mlp:{ns:team-a}:*'), []);
    assert.ok(Number(await client.get('mlp:{ns:team-b}:stored-total')) > 0, "team-b's ledger stays");
  });
});

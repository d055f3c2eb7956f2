/**
 * Review 3, findings 1, 5 and 6 through the real operator (a separate
 * process), a real redis-server with noeviction, and real pods: tenant
 * team-a's pod serves a crafted profile of 60,000 sites with long names
 * (test/store/fat-profile.ts), tenant team-b runs the leaky target.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { Redis } from 'ioredis';
import type { MapLeakProbe } from '../../src/api/types.js';
import { CAPTURE_QUEUE } from '../../src/queue/names.js';
import { runPod, stopCluster, type Cluster } from '../cluster/cluster.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { spawnOperator, type OperatorProcess } from '../support/operator-process.js';
import { condition, startClusterWithCrd, TestProbes } from '../support/probes.js';
import { testReaderToken } from '../support/tokens.js';
import { waitFor } from '../support/wait.js';
import { fatProfile } from '../store/fat-profile.js';

const CLUSTER = 'storefull';
const MiB = 1024 * 1024;
/** The test's admin ceilings: a few hostile captures fill this per-target budget. */
const MAX_REDIS_BYTES_PER_TARGET = 8 * MiB;
const MAX_SUMMARY_BYTES = 2 * MiB;
const usedMemory = (info: string): number => Number(/used_memory:(\d+)/.exec(info)?.[1]);

describe('a hostile tenant cannot fill the shared Redis, and a full Redis is reported', () => {
  let cluster: Cluster;
  let redis: RedisServer;
  let client: Redis;
  let op: OperatorProcess;
  let teamA: TestProbes;
  let teamB: TestProbes;
  let token: string;
  let dir: string;
  const base = (): string => `http://127.0.0.1:${op.port}`;
  const captures = async (probes: TestProbes, name: string): Promise<number> => (await probes.get(name))?.status?.targets?.[0]?.captures ?? 0;
  /** waitFor, and on a timeout the probes' status and the operator's last lines, to see why. */
  const waitOrExplain = async <T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs: number): Promise<T> => {
    try {
      return await waitFor(what, check, timeoutMs, 1000);
    } catch (err) {
      const statuses = JSON.stringify({ fat: (await teamA.get('fat'))?.status, other: (await teamB.get('other'))?.status }).slice(0, 4000);
      throw new Error(`${(err as Error).message}\nstatus: ${statuses}\noperator: ${op.output().split('\n').slice(-30).join('\n')}`);
    }
  };
  const lastCapture = async (probes: TestProbes, name: string): Promise<string | undefined> => (await probes.get(name))?.status?.targets?.[0]?.lastCaptureTime;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mapleak-storefull-'));
    const profilePath = join(dir, 'fat.pb.gz');
    // 20,000 sites (a 31 MB summary uncapped) rather than the review's 60,000, so that decoding stays well within
    // the decode thread's limit on this shared machine; the 60,000 case is test/store/summary-caps.test.ts.
    writeFileSync(profilePath, fatProfile({ functions: 20_000, nameLength: 400, objectsPerSite: 10 }));
    const [started, server] = await Promise.all([startClusterWithCrd(CLUSTER), startRedis()]);
    cluster = started.cluster;
    redis = server;
    client = new Redis(redis.url);
    // As the chart's bundled Redis: at maxmemory, writes are refused, nothing is evicted.
    await client.config('SET', 'maxmemory-policy', 'noeviction');
    const core = started.kc.makeApiClient(CoreV1Api);
    await Promise.all(['team-a', 'team-b'].map((name) => core.createNamespace({ body: { metadata: { name } } })));
    token = await testReaderToken(started.kc);
    teamA = new TestProbes(started.kc, 'team-a');
    teamB = new TestProbes(started.kc, 'team-b');
    [op] = await Promise.all([
      spawnOperator({
        kubeconfig: cluster.kubeconfigPath,
        redisUrl: redis.url,
        identity: 'storefull',
        leaseNamespace: 'default',
        httpToken: token,
        args: ['--no-leader-elect', '--resync-interval', '3s', '--max-redis-bytes-per-target', String(MAX_REDIS_BYTES_PER_TARGET), '--max-summary-bytes', String(MAX_SUMMARY_BYTES), '--max-decode-time', '30s'],
      }),
      runPod(cluster, { name: 'fat', namespace: 'team-a', labels: { app: 'fat' }, path: 'test/security/targets/fixed-profile', args: ['-profile', profilePath] }),
      runPod(cluster, { name: 'other', namespace: 'team-b', labels: { app: 'other' }, path: 'test/targets/leaky' }),
    ]);
    await Promise.all([
      teamA.create('fat', { selector: { matchLabels: { app: 'fat' } }, gctrace: { enabled: false } }),
      teamB.create('other', { selector: { matchLabels: { app: 'other' } }, gctrace: { enabled: false } }),
    ]);
  });
  after(async () => {
    await op?.kill('SIGTERM');
    client?.disconnect();
    await redis?.stop();
    await stopCluster(CLUSTER);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the hostile pod keeps at most --max-redis-bytes-per-target, each summary under the per-capture ceiling', async (t) => {
    await waitOrExplain('3 rounds of the hostile probe', async () => (await captures(teamA, 'fat')) >= 3 && (await lastCapture(teamA, 'fat')), 120_000);
    await new Promise((resolve) => setTimeout(resolve, 6000)); // one more round: the window is full
    // Every summary of the probe (this Redis holds nothing else of it): the window's captures.
    const keys = (await client.keys('mlp:{team-a/fat}:c:*')).map((k) => k.split(':').pop() as string);
    assert.ok(keys.length >= 2, `captures kept: ${keys.length}`);
    let total = 0;
    for (const id of keys) {
      const summary = await client.strlen(`mlp:{team-a/fat}:c:${id}`);
      assert.ok(summary > 0 && summary <= MAX_SUMMARY_BYTES, `summary of ${summary} bytes`);
      total += summary + (await client.strlen(`mlp:{team-a/fat}:p:${id}`));
    }
    assert.ok(total <= MAX_REDIS_BYTES_PER_TARGET, `${total} bytes kept for the hostile pod`);
    t.diagnostic(`hostile pod: ${keys.length} captures kept, ${total} bytes (summaries and profiles)`);
    const fat = await teamA.get('fat');
    assert.equal(fat?.status?.targets?.[0]?.lastError, undefined, 'the hostile pod is captured, bounded, not failed');
  });

  test('a viewer reading the hostile probe never stalls /healthz for 100 ms', async (t) => {
    // The viewer's cost alone: no round runs meanwhile (a round's own work on the loop is the capture pipeline's, not the viewer's).
    await Promise.all([teamA.patchSpec('fat', { suspend: true }), teamB.patchSpec('other', { suspend: true })]);
    try {
      t.diagnostic(`worst /healthz latency while a viewer read the probe 20 times: ${(await viewWhilePolling()).toFixed(1)} ms`);
    } finally {
      await Promise.all([teamA.patchSpec('fat', { suspend: false }), teamB.patchSpec('other', { suspend: false })]);
    }
  });

  const viewWhilePolling = async (): Promise<number> => {
    await waitOrExplain(
      'both probes suspended and no round running',
      async () =>
        condition(await teamA.get('fat'), 'Ready')?.reason === 'Suspended' &&
        condition(await teamB.get('other'), 'Ready')?.reason === 'Suspended' &&
        (await client.llen(`bull:${CAPTURE_QUEUE}:active`)) === 0,
      30_000,
    );
    const headers = { authorization: `Bearer ${token}` };
    let worst = 0;
    let reading = true;
    const poll = (async () => {
      while (reading) {
        const started = performance.now();
        const response = await fetch(`${base()}/healthz`);
        await response.text();
        worst = Math.max(worst, performance.now() - started);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    let served = 0;
    for (let i = 0; i < 10; i++) {
      for (const path of ['/api/v1/namespaces/team-a/mapleakprobes/fat', '/ui/namespaces/team-a/mapleakprobes/fat']) {
        const response = await fetch(base() + path, { headers });
        assert.equal(response.status, 200, path);
        if (path.startsWith('/api')) {
          const view = (await response.json()) as { targets: { analysis?: { captures: number } }[] };
          assert.ok((view.targets[0]?.analysis?.captures ?? 0) >= 2, "the worker's analysis is served");
        } else await response.text();
        served++;
      }
    }
    reading = false;
    await poll;
    assert.equal(served, 20);
    assert.ok(worst < 100, `/healthz took up to ${worst.toFixed(1)} ms`);
    return worst;
  };

  test("near maxmemory the hostile capture is refused (StoreFull) while the other tenant keeps capturing", async () => {
    const resumedAt = Date.now();
    // (The hostile profile names one fixed time, so only the other probe's capture times move.)
    await waitOrExplain(
      'both probes scheduled again, the other capturing',
      async () => condition(await teamA.get('fat'), 'Ready')?.reason === 'Scheduled' && Date.parse((await lastCapture(teamB, 'other')) ?? '0') > resumedAt,
      60_000,
    );
    // Less room than one hostile capture (its 2.4 MB of arguments count against maxmemory), enough for small writes;
    // 1 MiB, so that memory given back meanwhile (other keys expiring, a window trimmed) does not make room for it.
    await client.config('SET', 'maxmemory', String(usedMemory(await client.info('memory')) + MiB));
    const refusedAt = Date.now();
    const fat = await waitOrExplain('the hostile capture refused', async () => {
      const probe = await teamA.get('fat');
      return probe?.status?.targets?.[0]?.lastErrorReason === 'StoreFull' ? probe : undefined;
    }, 60_000);
    assert.equal(condition(fat, 'Degraded')?.reason, 'StoreFull');
    assert.match(condition(fat, 'Degraded')?.message ?? '', /Redis is full \(maxmemory reached\)/);
    // The other tenant's rounds keep their interval: two more captures.
    await waitOrExplain('team-b keeps capturing', async () => {
      const probe = await teamB.get('other');
      return Date.parse(probe?.status?.targets?.[0]?.lastCaptureTime ?? '0') > refusedAt + 5000 && condition(probe, 'Capturing')?.status === 'True';
    }, 30_000);
  });

  test("over maxmemory the other tenant's status says StoreFull, /readyz and the metrics say so, and captures resume once space is freed", async () => {
    // Over the limit, as after a large write admitted just below it: every write is refused. Further over
    // than one hostile capture (1.8 MB), so that a window trimmed or a key expiring meanwhile does not end it.
    await client.config('SET', 'maxmemory', String(usedMemory(await client.info('memory')) - 8 * MiB));
    const full = await waitOrExplain(
      'team-b says StoreFull',
      async () => {
        const probe = await teamB.get('other');
        return condition(probe, 'Degraded')?.reason === 'StoreFull' ? probe : undefined;
      },
      90_000,
    );
    assert.equal(condition(full, 'Degraded')?.status, 'True');
    assert.match(condition(full, 'Degraded')?.message ?? '', /Redis is full \(maxmemory reached\)/);
    assert.equal(condition(full, 'Capturing')?.status, 'False');
    const ready = await fetch(`${base()}/readyz`);
    const body = (await ready.json()) as { checks: Record<string, boolean> };
    assert.equal(ready.status, 503);
    assert.equal(body.checks.redisWrites, false);
    const metrics = await (await fetch(`${base()}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
    assert.match(metrics, /mapleak_dependency_reachable\{dependency="redis"\} 0/);
    assert.match(metrics, /mapleak_connection_errors_total\{component="writes",kind="oom"\} [1-9]/);

    // Space freed: the schedulers resume, the other tenant captures again.
    const freedAt = new Date();
    await client.config('SET', 'maxmemory', '0');
    const resumed = await waitOrExplain(
      'team-b captures again',
      async () => {
        const probe = await teamB.get('other');
        const last = probe?.status?.targets?.[0]?.lastCaptureTime;
        return last && Date.parse(last) > freedAt.getTime() && condition(probe, 'Degraded')?.reason !== 'StoreFull' ? probe : undefined;
      },
      60_000,
    );
    assert.equal(condition(resumed as MapLeakProbe, 'Capturing')?.status, 'True');
    await waitFor('/readyz ready again', async () => (await fetch(`${base()}/readyz`)).status === 200, 30_000, 500);
  });
});

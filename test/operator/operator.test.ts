import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { KubeConfig } from '@kubernetes/client-node';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { ProbeClient } from '../../src/api/client.js';
import type { MapLeakProbe } from '../../src/api/types.js';
import { startOperator, type RunningOperator } from '../../src/cli/operator.js';
import { CAPTURE_QUEUE } from '../../src/queue/names.js';
import { deletePod, runPod, stopCluster, type Cluster } from '../cluster/cluster.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { siteLines } from '../support/go-targets.js';
import { condition, startClusterWithCrd, TestProbes } from '../support/probes.js';
import { testOperatorConfig } from '../support/operator-config.js';
import { bearer, testReaderToken } from '../support/tokens.js';
import { waitFor } from '../support/wait.js';

process.env.LOG_LEVEL ??= 'warn';
const CLUSTER = 'operator';
const NS = 'default';
const lines = siteLines('leaky');

describe('operator against a real API server, Redis and leaking Go pods', () => {
  let cluster: Cluster;
  let redis: RedisServer;
  let kc: KubeConfig;
  let operator: RunningOperator;
  let queue: Queue;
  let queueRedis: Redis;

  let probes: TestProbes;
  const probeSpec = (app: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    selector: { matchLabels: { app } },
    schedule: { interval: '5s', window: 12 },
    ...extra,
  });
  const getProbe = (name: string): Promise<MapLeakProbe | undefined> => probes.get(name);

  before(async () => {
    ({ cluster, kc } = await startClusterWithCrd(CLUSTER));
    probes = new TestProbes(kc, NS);
    redis = await startRedis();
    queueRedis = new Redis(redis.url, { maxRetriesPerRequest: null });
    queue = new Queue(CAPTURE_QUEUE, { connection: queueRedis });
    // The runtime's default sampling rate (512 KiB), as users run their services: the verdicts model its noise.
    await Promise.all([
      runPod(cluster, { name: 'leaky-swiss', labels: { app: 'leaky-swiss' }, path: 'test/targets/leaky' }),
      runPod(cluster, { name: 'leaky-classic', labels: { app: 'leaky-classic' }, path: 'test/targets/leaky', goVersion: '1.19' }),
      runPod(cluster, { name: 'retainer', labels: { app: 'retainer' }, path: 'test/targets/leaky', args: ['-mode', 'retained'] }),
      runPod(cluster, { name: 'steady', labels: { app: 'steady' }, path: 'test/targets/leaky', args: ['-mode', 'healthy'] }),
      runPod(cluster, { name: 'no-pprof', labels: { app: 'no-pprof' }, path: 'test/targets/leaky', args: ['-addr', ':7070', '-mode', 'healthy'], waitForPort: 7070 }),
    ]);
    operator = await startOperator(testOperatorConfig(cluster, redis.url, { leaseNamespace: NS }));
  });

  after(async () => {
    await operator?.stop();
    await queue?.close();
    queueRedis?.disconnect();
    await redis?.stop();
    await stopCluster(CLUSTER);
  });

  test('invalid probes are rejected by the API server with a clear message', async () => {
    await assert.rejects(probes.create('too-fast', probeSpec('x', { schedule: { interval: '1s' } })), (err: unknown) => {
      assert.match(String((err as { body?: unknown }).body), /interval must be at least 5s|5s/);
      return true;
    });
    await assert.rejects(probes.create('no-selector', { selector: {} }), (err: unknown) => {
      assert.match(String((err as { body?: unknown }).body), /selector/);
      return true;
    });
  });

  test('a growing map in a Go 1.26 pod and a Go 1.19 pod: Leaking, with the growing site named', async () => {
    await probes.create('swiss', probeSpec('leaky-swiss'));
    await probes.create('classic', probeSpec('leaky-classic'));
    for (const [name, impl] of [['swiss', 'swiss'], ['classic', 'classic']] as const) {
      const probe = await waitFor(`${name} probe to reach Leaking`, async () => {
        const p = await getProbe(name);
        return p?.status?.verdict === 'Leaking' && p;
      }, 120_000, 1000);
      const growing = probe.status?.findings?.filter((f) => f.kind === 'map' && f.pattern === 'growing') ?? [];
      const sites = growing.map((f) => f.site.line);
      assert.ok(
        sites.includes(lines.get('map-growing-sessions')!) || sites.includes(lines.get('map-growing-json')!),
        `a growing map site is named; got ${JSON.stringify(probe.status?.findings?.map((f) => [f.site.line, f.kind, f.pattern]))}`,
      );
      assert.ok(growing.every((f) => f.mapImpl === impl && f.evidence === 'symbolized'));
      assert.equal(probe.status?.targets?.[0]?.name, `leaky-${name}`);
      assert.equal(condition(probe, 'Ready')?.status, 'True');
      assert.equal(condition(probe, 'Capturing')?.status, 'True');
      assert.equal(condition(probe, 'Degraded')?.status, 'False');
      assert.equal(probe.status?.observedGeneration, probe.metadata.generation);
      assert.ok((probe.status?.gc?.cycles ?? 0) > 0, 'gctrace read from the pod log');
      assert.ok(JSON.stringify(probe.status).length < 16_000, 'status stays bounded');
    }
  });

  test('a pod whose maps were drained: Retaining', async () => {
    await probes.create('retainer', probeSpec('retainer'));
    const probe = await waitFor('retainer probe verdict', async () => {
      const p = await getProbe('retainer');
      return p?.status?.verdict && p.status.verdict !== 'Unknown' && (p.status.targets?.[0]?.captures ?? 0) >= 3 && p;
    }, 120_000, 1000);
    assert.equal(probe.status?.verdict, 'Retaining', JSON.stringify(probe.status?.findings?.map((f) => [f.site.line, f.kind, f.pattern])));
    const retained = probe.status?.findings?.filter((f) => f.pattern === 'retained').map((f) => f.site.line);
    assert.ok(retained?.includes(lines.get('map-retained-items')!));
  });

  test('a pod whose maps are steady or churning: Healthy', async () => {
    await probes.create('steady', probeSpec('steady'));
    const probe = await waitFor('steady probe verdict', async () => {
      const p = await getProbe('steady');
      return p?.status?.verdict && p.status.verdict !== 'Unknown' && (p.status.targets?.[0]?.captures ?? 0) >= 4 && p;
    }, 120_000, 1000);
    assert.equal(probe.status?.verdict, 'Healthy', JSON.stringify(probe.status?.findings?.map((f) => [f.site.line, f.kind, f.pattern])));
    const patterns = new Map(probe.status?.findings?.filter((f) => f.kind === 'map').map((f) => [f.site.line, f.pattern]));
    assert.equal(patterns.get(lines.get('map-churn-histogram')!), 'churn');
    assert.ok(![...patterns.values()].some((p) => p === 'growing' || p === 'retained'));
  });

  test('status writes that race each other: conflicts are retried on the fresh object, no update is lost', async () => {
    const client = new ProbeClient(kc);
    await probes.create('conflict', probeSpec('nobody', { suspend: true }));
    // Let the controller finish its own writes (finalizer, Ready) first.
    await waitFor('controller settled', async () => condition(await getProbe('conflict'), 'Ready')?.reason === 'Suspended', 20_000, 200);
    let attempts = 0;
    // Five writers increment the same field at once: only optimistic
    // concurrency (resourceVersion, 409, retry) ends at exactly 5.
    await Promise.all(
      Array.from({ length: 5 }, () =>
        client.updateStatus(NS, 'conflict', (current) => {
          attempts++;
          return { targetsOmitted: (current.status?.targetsOmitted ?? 0) + 1 };
        }),
      ),
    );
    assert.equal((await getProbe('conflict'))?.status?.targetsOmitted, 5);
    assert.ok(attempts > 5, `writers collided and retried (${attempts} attempts)`);
    await probes.delete('conflict');
  });

  test('a pod without pprof: Degraded with a reason a person can act on', async () => {
    await probes.create('broken', probeSpec('no-pprof'));
    const probe = await waitFor('broken probe Degraded', async () => {
      const p = await getProbe('broken');
      return condition(p, 'Degraded')?.status === 'True' && p;
    }, 60_000, 1000);
    const degraded = condition(probe, 'Degraded');
    assert.match(degraded?.reason ?? '', /^Capture[A-Z]\w+$/);
    assert.match(degraded?.message ?? '', /no-pprof/);
    assert.equal(probe.status?.targets?.[0]?.lastErrorReason !== undefined, true);
    // The other probes keep working.
    const swiss = await getProbe('swiss');
    assert.equal(condition(swiss, 'Degraded')?.status, 'False');
  });

  test('spec change, suspend and delete drive the job scheduler in Redis', async () => {
    await waitFor('scheduler for swiss', async () => (await queue.getJobScheduler(`${NS}/swiss`))?.every === 5000, 20_000);
    await probes.patchSpec('swiss', { schedule: { interval: '7s' } });
    await waitFor('scheduler updated to 7s', async () => (await queue.getJobScheduler(`${NS}/swiss`))?.every === 7000, 20_000);
    await probes.patchSpec('swiss', { suspend: true });
    await waitFor('scheduler removed on suspend', async () => (await queue.getJobScheduler(`${NS}/swiss`)) === undefined, 20_000);
    const suspended = await waitFor('Ready=False Suspended', async () => {
      const p = await getProbe('swiss');
      return condition(p, 'Ready')?.reason === 'Suspended' && p;
    }, 20_000);
    assert.equal(condition(suspended, 'Ready')?.status, 'False');
    await probes.patchSpec('swiss', { suspend: false });
    await waitFor('scheduler back after resume', async () => (await queue.getJobScheduler(`${NS}/swiss`))?.every === 7000, 20_000);

    await probes.delete('swiss');
    await waitFor('probe gone (finalizer removed)', async () => (await getProbe('swiss')) === undefined, 30_000);
    assert.equal(await queue.getJobScheduler(`${NS}/swiss`), undefined);
    const redisClient = new Redis(redis.url);
    try {
      assert.deepEqual(await redisClient.keys(`mlp:{${NS}/swiss}:*`), [], 'series forgotten');
    } finally {
      redisClient.disconnect();
    }
  });

  test('a deleted pod leaves the targets, a new pod joins', async () => {
    await deletePod(cluster, NS, 'leaky-classic');
    await runPod(cluster, { name: 'leaky-classic-2', labels: { app: 'leaky-classic' }, path: 'test/targets/leaky', goVersion: '1.19' });
    const probe = await waitFor('targets follow the pods', async () => {
      const p = await getProbe('classic');
      const names = p?.status?.targets?.map((t) => t.name) ?? [];
      return names.length === 1 && names[0] === 'leaky-classic-2' && (p?.status?.targets?.[0]?.captures ?? 0) >= 1 && p;
    }, 60_000, 1000);
    assert.equal(probe.status?.targetCount, 1);
  });

  test('a pod that appears is captured at once, without waiting for the interval', async () => {
    await probes.create('watcher', probeSpec('late', { schedule: { interval: '1h' } }));
    await waitFor('watcher scheduled', async () => (await queue.getJobScheduler(`${NS}/watcher`))?.every === 3_600_000, 20_000);
    await new Promise((resolve) => setTimeout(resolve, 2000)); // its first round finds no pod
    await runPod(cluster, { name: 'late', labels: { app: 'late' }, path: 'test/targets/leaky', args: ['-mode', 'healthy'] });
    // The local node marks pods Ready before the program listens, so the triggered
    // round may find pprof not up yet: what matters is that the pod is seen at once.
    const probe = await waitFor('the new pod seen', async () => {
      const p = await getProbe('watcher');
      return p?.status?.targets?.some((t) => t.name === 'late') && p;
    }, 30_000, 500);
    assert.equal(probe.status?.targetCount, 1);
    await deletePod(cluster, NS, 'late');
    await waitFor('the deleted pod dropped at once', async () => (await getProbe('watcher'))?.status?.targetCount === 0, 30_000, 500);
  });

  test('HTTP API: health, metrics, the probe with its series, and a raw profile to download', async () => {
    const base = `http://127.0.0.1:${operator.port}`;
    // Who may read what is test/server's subject; here a token allowed everything.
    const headers = bearer(await testReaderToken(kc));
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    const ready = (await (await fetch(`${base}/readyz`)).json()) as { ready: boolean };
    assert.equal(ready.ready, true);
    assert.equal((await fetch(`${base}/metrics`)).status, 401, 'no token, no metrics');
    const metrics = await (await fetch(`${base}/metrics`, { headers })).text();
    assert.match(metrics, /mapleak_captures_total\{result="ok"\} [1-9]/);
    assert.match(metrics, /mapleak_map_inuse_bytes\{namespace="default",probe="classic"/);
    // The captures kept so far, as the namespace's ledger counts them (the leading controller reads it at the scrape).
    assert.match(metrics, /^mapleak_namespace_stored_bytes\{namespace="default"\} [1-9]\d*$/m);
    const detail = (await (await fetch(`${base}/api/v1/namespaces/${NS}/mapleakprobes/classic`, { headers })).json()) as { targets: { captures: { id: string }[] }[] };
    const captureId = detail.targets[0]?.captures.at(-1)?.id;
    assert.ok(captureId);
    const profile = Buffer.from(await (await fetch(`${base}/api/v1/namespaces/${NS}/mapleakprobes/classic/captures/${captureId}/profile`, { headers })).arrayBuffer());
    assert.equal(profile[0], 0x1f, 'a gzipped pprof profile, ready for go tool pprof');
    assert.equal((await fetch(`${base}/api/v1/namespaces/${NS}/mapleakprobes/nope`, { headers })).status, 404);
  });
});

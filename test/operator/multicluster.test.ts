import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { MapLeakProbe } from '../../src/api/types.js';
import { startOperator, type RunningOperator } from '../../src/cli/operator.js';
import { loadKubeConfig, runPod, startCluster, stopCluster, type Cluster } from '../cluster/cluster.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { siteLines } from '../support/go-targets.js';
import { startClusterWithCrd, TestProbes } from '../support/probes.js';
import { testOperatorConfig } from '../support/operator-config.js';
import { waitFor } from '../support/wait.js';
import { REMOTE_CLUSTER_LABEL } from '../../src/clusters/registry.js';

process.env.LOG_LEVEL ??= 'warn';
const lines = siteLines('leaky');

describe('multi-cluster and direct transport', () => {
  let hub: Cluster;
  let member: Cluster;
  let redis: RedisServer;
  let operator: RunningOperator;

  let probes: TestProbes;
  const getProbe = (name: string): Promise<MapLeakProbe | undefined> => probes.get(name);
  const createProbe = (name: string, spec: Record<string, unknown>): Promise<unknown> => probes.create(name, spec);

  before(async () => {
    let hubKc: KubeConfig;
    [{ cluster: hub, kc: hubKc }, member] = await Promise.all([startClusterWithCrd('hub'), startCluster({ name: 'member' })]);
    probes = new TestProbes(hubKc);
    await loadKubeConfig(member).makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: 'apps' } } });
    // The member's kubeconfig, as a user would store it in the hub: labelled
    // for probes to use. The same kubeconfig unlabelled, as someone's CI might keep it.
    const memberKubeconfig = readFileSync(member.kubeconfigPath, 'utf8');
    for (const [name, labels] of [['member-kubeconfig', { [REMOTE_CLUSTER_LABEL]: 'true' }], ['ci-kubeconfig', {}]] as const) {
      await hubKc.makeApiClient(CoreV1Api).createNamespacedSecret({ namespace: 'default', body: { metadata: { name, labels }, stringData: { kubeconfig: memberKubeconfig } } });
    }
    redis = await startRedis();
    await Promise.all([
      runPod(member, { name: 'remote-leaky', namespace: 'apps', labels: { app: 'remote-leaky' }, path: 'test/targets/leaky' }),
      runPod(hub, { name: 'local-leaky', labels: { app: 'local-leaky' }, path: 'test/targets/leaky', goVersion: '1.19' }),
    ]);
    // spec.cluster is off unless the admin names the namespaces that may use it.
    operator = await startOperator(testOperatorConfig(hub, redis.url, { leaderElect: false, identity: 'multicluster-test', kubeconfigSecretNamespaces: ['default'] }));
  });

  after(async () => {
    await operator?.stop();
    await redis?.stop();
    await Promise.all([stopCluster('hub'), stopCluster('member')]);
  });

  test('a probe in the hub watches a pod in the member through a kubeconfig Secret', async () => {
    await createProbe('remote', {
      selector: { matchLabels: { app: 'remote-leaky' } },
      cluster: { kubeconfigSecretRef: { name: 'member-kubeconfig' }, namespace: 'apps' },
    });
    const probe = await waitFor('remote probe Leaking', async () => {
      const p = await getProbe('remote');
      return p?.status?.verdict === 'Leaking' && p;
    }, 120_000, 1000);
    assert.deepEqual(probe.status?.targets?.map((t) => [t.namespace, t.name]), [['apps', 'remote-leaky']]);
    const growing = probe.status?.findings?.filter((f) => f.kind === 'map' && f.pattern === 'growing').map((f) => f.site.line) ?? [];
    assert.ok(growing.includes(lines.get('map-growing-sessions')!) || growing.includes(lines.get('map-growing-json')!));
    assert.ok((probe.status?.gc?.cycles ?? 0) > 0, 'gctrace read from the member pod log');
  });

  test('a remote pod OOM-killed and deleted at once, between rounds: an incident all the same, from what the round\'s bounded watch of the remote pods saw', async () => {
    const memberCore = loadKubeConfig(member).makeApiClient(CoreV1Api);
    // restartPolicy Never in a 384 MiB memory cgroup: the kernel kills leaky 30-40 s after it starts.
    await runPod(member, { name: 'remote-oom', namespace: 'apps', labels: { app: 'remote-oom' }, path: 'test/targets/leaky', restartPolicy: 'Never', memoryLimitBytes: 384 * 1024 * 1024 });
    let deleted: { at: number; reason?: string } | undefined;
    const deleter = setInterval(() => {
      if (deleted) return;
      void memberCore.readNamespacedPod({ namespace: 'apps', name: 'remote-oom' }).then(async (pod) => {
        if (pod.status?.phase !== 'Failed' || deleted) return;
        const reason = pod.status.containerStatuses?.[0]?.state?.terminated?.reason;
        deleted = { at: Date.now(), ...(reason ? { reason } : {}) };
        await memberCore.deleteNamespacedPod({ namespace: 'apps', name: 'remote-oom', gracePeriodSeconds: 0 });
      }).catch(() => undefined);
    }, 50);
    try {
      await createProbe('remote-oom', {
        selector: { matchLabels: { app: 'remote-oom' } },
        cluster: { kubeconfigSecretRef: { name: 'member-kubeconfig' }, namespace: 'apps' },
        // The last round's watch lasts 2 intervals + 30 s (60 s): the kill comes well within it, even on a loaded machine.
        schedule: { interval: '15s', window: 12 },
      });
      await waitFor('two captures of the remote pod', async () => ((await getProbe('remote-oom'))?.status?.targets?.[0]?.captures ?? 0) >= 2, 60_000, 250);
      // No round runs until the pod is gone: the end can only come from the watch the last round started (it lasts 2 intervals + 30 s).
      await probes.patchSpec('remote-oom', { suspend: true });
      const gone = await waitFor('the remote pod deleted as soon as it was Failed', async () => deleted, 90_000, 250);
      assert.equal(gone.reason, 'OOMKilled');
      await waitFor('the remote pod gone', async () => (await memberCore.listNamespacedPod({ namespace: 'apps', labelSelector: 'app=remote-oom' })).items.length === 0, 30_000, 250);
      await probes.patchSpec('remote-oom', { suspend: false });
      const incident = await waitFor('an incident of the deleted remote pod', async () => (await getProbe('remote-oom'))?.status?.incidents?.find((i) => i.pod === 'remote-oom'), 60_000, 250);
      assert.equal(incident.reason, 'OOMKilled');
      assert.equal(incident.exitCode, 137);
      assert.equal(incident.restarted, false);
      assert.equal(incident.namespace, 'apps');
      assert.ok(incident.captureIds.length >= 2, `captures kept: ${incident.captureIds.length}`);
      assert.ok(Date.parse(incident.detectedTime) >= gone.at, 'recorded after the pod was gone: from what the watch saw before');
    } finally {
      clearInterval(deleter);
    }
  });

  test('a missing kubeconfig Secret: a clear reason, nothing captured', async () => {
    await createProbe('no-secret', {
      selector: { matchLabels: { app: 'remote-leaky' } },
      cluster: { kubeconfigSecretRef: { name: 'nope' }, namespace: 'apps' },
    });
    const probe = await waitFor('Degraded KubeconfigSecretNotFound', async () => {
      const p = await getProbe('no-secret');
      return p?.status?.conditions?.find((c) => c.type === 'Degraded' && c.reason === 'KubeconfigSecretNotFound') && p;
    }, 60_000, 1000);
    assert.match(probe.status?.conditions?.find((c) => c.type === 'Degraded')?.message ?? '', /Secret default\/nope not found/);
    assert.equal(probe.status?.targets, undefined);
  });

  test('a kubeconfig Secret its owner did not label for probes: a clear reason, nothing captured', async () => {
    await createProbe('borrowed', {
      selector: { matchLabels: { app: 'remote-leaky' } },
      cluster: { kubeconfigSecretRef: { name: 'ci-kubeconfig' }, namespace: 'apps' },
    });
    const probe = await waitFor('Degraded KubeconfigSecretNotLabelled', async () => {
      const p = await getProbe('borrowed');
      return p?.status?.conditions?.find((c) => c.type === 'Degraded' && c.reason === 'KubeconfigSecretNotLabelled') && p;
    }, 60_000, 1000);
    assert.match(probe.status?.conditions?.find((c) => c.type === 'Degraded')?.message ?? '', /Secret default\/ci-kubeconfig is not labelled mapleak\.io\/remote-cluster=true/);
    assert.equal(probe.status?.targets, undefined, 'the member cluster was never asked');
    assert.equal(probe.status?.verdict ?? 'Unknown', 'Unknown');
  });

  test('transport Direct: captures at the pod IP', async () => {
    await createProbe('direct', { selector: { matchLabels: { app: 'local-leaky' } }, pprof: { transport: 'Direct' } });
    const probe = await waitFor('direct probe Leaking', async () => {
      const p = await getProbe('direct');
      return p?.status?.verdict === 'Leaking' && p;
    }, 120_000, 1000);
    const maps = probe.status?.findings?.filter((f) => f.kind === 'map') ?? [];
    assert.ok(maps.length > 0 && maps.every((f) => f.mapImpl === 'classic' && f.evidence === 'symbolized'));
  });
});

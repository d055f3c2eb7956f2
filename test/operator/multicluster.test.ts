import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { MapLeakProbe } from '../../src/api/types.js';
import { POD_ADDRESS_NOT_ALLOWED } from '../../src/capture/direct.js';
import { REMOTE_CLUSTER_LABEL, SERVER_NOT_ALLOWED } from '../../src/clusters/registry.js';
import { loadKubeConfig, runPod, startCluster, stopCluster, type Cluster } from '../cluster/cluster.js';
import { freeLoopbackPort, startRedis, type RedisServer } from '../cluster/redis.js';
import { siteLines } from '../support/go-targets.js';
import { certificateForName } from '../support/name-certificate.js';
import { CLI } from '../support/paths.js';
import { condition, startClusterWithCrd, TestProbes } from '../support/probes.js';
import { waitFor } from '../support/wait.js';

const lines = siteLines('leaky');

/**
 * The names this file resolves, as /etc/hosts of the operator's own mount
 * namespace (the machine's DNS is not the test's to change): the operator's
 * real resolver (getaddrinfo) answers them. `dual` has a refused address
 * first (glibc keeps this order: both share 30 bits with 127.0.0.1), so a
 * dialler that did not filter would reach it first.
 */
const HOSTS = ['127.0.0.1 localhost', '127.0.0.3 dual.remote.test', '127.0.0.2 dual.remote.test', '169.254.169.254 metadata.remote.test', ''].join('\n');
/** What the admin allows: the member's API server, dual's allowed address; link-local and a ULA range, which do not cover the metadata addresses. */
const REMOTE_CLUSTER_CIDRS = ['127.0.0.1/32', '127.0.0.2/32', '169.254.0.0/16', 'fd00::/8'];

interface SpawnedOperator {
  output(): string;
  stop(): Promise<void>;
}

/** `mapleak operator` in a mount namespace of its own whose /etc/hosts is HOSTS (unshare -m: private mounts, the machine's file is untouched). */
async function spawnOperatorWithHosts(hub: Cluster, redisUrl: string, args: string[]): Promise<SpawnedOperator> {
  const hostsFile = join(mkdtempSync(join(tmpdir(), 'mapleak-hosts-')), 'hosts');
  writeFileSync(hostsFile, HOSTS);
  const port = await freeLoopbackPort();
  const operatorArgs = [CLI, 'operator', '--kubeconfig', hub.kubeconfigPath, '--redis-url', redisUrl, '--port', String(port), '--no-leader-elect', '--identity', 'multicluster-test', ...args];
  const child: ChildProcess = spawn('unshare', ['--mount', 'sh', '-c', 'mount --bind "$0" /etc/hosts && exec "$@"', hostsFile, process.execPath, ...operatorArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'info' },
  });
  let output = '';
  const keep = (c: Buffer): void => void (output = (output + c.toString()).slice(-2_000_000));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitFor('the operator answers /healthz', async () => {
    if (child.exitCode !== null) throw new Error(`operator exited: ${output}`);
    return (await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) })).ok;
  }, 30_000, 200).catch((err: Error) => assert.fail(`${err.message}\n${output}`));
  return {
    output: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const force = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(force);
    },
  };
}

/** A plain TCP listener counting the connections it accepted: the proof that nothing was dialled. Port 0: any free one. */
async function countingListener(host: string, port = 0): Promise<{ port: number; accepted: () => number; close: () => void }> {
  let accepted = 0;
  const server = net.createServer((socket) => {
    accepted++;
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
  return { port: (server.address() as AddressInfo).port, accepted: () => accepted, close: () => server.close() };
}

const kubeconfig = (server: string, caData: string, token = 'tenant-token-1234'): string =>
  JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server, 'certificate-authority-data': caData } }],
    users: [{ name: 'u', user: { token } }],
    contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'c',
  });

describe('multi-cluster and direct transport, within the admin\'s address allowlist', () => {
  let hub: Cluster;
  let member: Cluster;
  let redis: RedisServer;
  let operator: SpawnedOperator;
  let probes: TestProbes;
  /** Tenant-named API server at dual.remote.test's allowed address; its pod list names a pod at the refused address. */
  let tenantServer: https.Server;
  const tenantRequests: { path: string; authorization?: string }[] = [];
  /** Listeners at 127.0.0.3, outside the allowlists: dual.remote.test's refused address (on the tenant server's port), a kubeconfig's literal server, the pod IP the tenant's server lists. */
  type Listener = Awaited<ReturnType<typeof countingListener>>;
  let refusedByName: Listener;
  let refusedAsWritten: Listener;
  let refusedPod: Listener;
  let port: number;

  const getProbe = (name: string): Promise<MapLeakProbe | undefined> => probes.get(name);
  const createProbe = (name: string, spec: Record<string, unknown>): Promise<unknown> => probes.create(name, spec);
  const diagnostics = (): string => operator?.output().slice(-4000) ?? '';
  const degraded = (name: string, reason: string): Promise<MapLeakProbe> =>
    waitFor(`${name}: Degraded ${reason}`, async () => {
      const p = await getProbe(name);
      return condition(p, 'Degraded')?.reason === reason && p;
    }, 60_000, 500).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));

  before(async () => {
    let hubKc: KubeConfig;
    [{ cluster: hub, kc: hubKc }, member, redis] = await Promise.all([startClusterWithCrd('hub'), startCluster({ name: 'member' }), startRedis()]);
    probes = new TestProbes(hubKc);
    const hubCore = hubKc.makeApiClient(CoreV1Api);
    await loadKubeConfig(member).makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: 'apps' } } });

    const tls = certificateForName('dual.remote.test');
    tenantServer = https.createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
      const url = new URL(req.url ?? '/', 'https://x');
      tenantRequests.push({ path: url.pathname, ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) });
      if (url.pathname !== '/api/v1/namespaces/apps/pods') return void res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      const pod = {
        metadata: { name: 'outside', namespace: 'apps', uid: '5b0d2c1e-0000-4000-8000-000000000002' },
        spec: { containers: [{ name: 'app', ports: [{ containerPort: refusedPod.port }] }] },
        status: { phase: 'Running', podIP: '127.0.0.3', containerStatuses: [{ name: 'app', restartCount: 0 }] },
      };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'PodList', metadata: {}, items: [pod] }));
    });
    await new Promise<void>((resolve) => tenantServer.listen(0, '127.0.0.2', resolve));
    port = (tenantServer.address() as AddressInfo).port;
    [refusedByName, refusedAsWritten, refusedPod] = await Promise.all([countingListener('127.0.0.3', port), countingListener('127.0.0.3'), countingListener('127.0.0.3')]);

    // The member's kubeconfig, as a user would store it in the hub: labelled
    // for probes to use. The same kubeconfig unlabelled, as someone's CI might keep it.
    const memberKubeconfig = readFileSync(member.kubeconfigPath, 'utf8');
    const tenantCa = tls.ca.toString('base64');
    const secrets: [string, Record<string, string>, string][] = [
      ['member-kubeconfig', { [REMOTE_CLUSTER_LABEL]: 'true' }, memberKubeconfig],
      ['ci-kubeconfig', {}, memberKubeconfig],
      ['kc-dual', { [REMOTE_CLUSTER_LABEL]: 'true' }, kubeconfig(`https://dual.remote.test:${port}`, tenantCa)],
      ['kc-outside', { [REMOTE_CLUSTER_LABEL]: 'true' }, kubeconfig(`https://127.0.0.3:${refusedAsWritten.port}`, tenantCa)],
      ['kc-metadata-v4', { [REMOTE_CLUSTER_LABEL]: 'true' }, kubeconfig('https://169.254.169.254', tenantCa)],
      ['kc-metadata-v6', { [REMOTE_CLUSTER_LABEL]: 'true' }, kubeconfig('https://[fd00:ec2::254]:443', tenantCa)],
      ['kc-metadata-name', { [REMOTE_CLUSTER_LABEL]: 'true' }, kubeconfig('https://metadata.remote.test', tenantCa)],
    ];
    await Promise.all([
      ...secrets.map(([name, labels, config]) => hubCore.createNamespacedSecret({ namespace: 'default', body: { metadata: { name, labels }, stringData: { kubeconfig: config } } })),
      runPod(member, { name: 'remote-leaky', namespace: 'apps', labels: { app: 'remote-leaky' }, path: 'test/targets/leaky' }),
      runPod(hub, { name: 'local-leaky', labels: { app: 'local-leaky' }, path: 'test/targets/leaky', goVersion: '1.19' }),
    ]);
    // spec.cluster is off unless the admin names the namespaces that may use it and the addresses their servers may have.
    operator = await spawnOperatorWithHosts(hub, redis.url, [
      '--kubeconfig-secret-namespaces', 'default',
      '--remote-cluster-cidrs', REMOTE_CLUSTER_CIDRS.join(','),
      '--allow-remote-direct',
      '--remote-pod-cidrs', member.podCidr,
      '--min-debug1-interval', '0s',
    ]);
    // Every probe at once: their rounds overlap, and each test waits for its own.
    const remote = (secret: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ selector: { matchLabels: { app: 'remote-leaky' } }, cluster: { kubeconfigSecretRef: { name: secret }, namespace: 'apps' }, ...extra });
    await Promise.all([
      createProbe('remote', remote('member-kubeconfig')),
      createProbe('remote-direct', remote('member-kubeconfig', { pprof: { transport: 'Direct' } })),
      createProbe('no-secret', remote('nope')),
      createProbe('borrowed', remote('ci-kubeconfig')),
      createProbe('direct', { selector: { matchLabels: { app: 'local-leaky' } }, pprof: { transport: 'Direct' } }),
      createProbe('outside', remote('kc-outside')),
      createProbe('dual', remote('kc-dual')),
      createProbe('dual-direct', remote('kc-dual', { pprof: { transport: 'Direct' } })),
      createProbe('metadata-v4', remote('kc-metadata-v4')),
      createProbe('metadata-v6', remote('kc-metadata-v6')),
      createProbe('metadata-name', remote('kc-metadata-name')),
    ]);
  });

  after(async () => {
    await operator?.stop();
    for (const listener of [refusedByName, refusedAsWritten, refusedPod]) listener?.close();
    tenantServer?.closeAllConnections();
    tenantServer?.close();
    await redis?.stop();
    await Promise.all([stopCluster('hub'), stopCluster('member')]);
  });

  test('a probe in the hub watches a pod in the member through a kubeconfig Secret (its server at an allowed address)', async () => {
    const probe = await waitFor('remote probe Leaking', async () => {
      const p = await getProbe('remote');
      return p?.status?.verdict === 'Leaking' && p;
    }, 120_000, 1000).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
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
    const probe = await degraded('no-secret', 'KubeconfigSecretNotFound');
    assert.match(condition(probe, 'Degraded')?.message ?? '', /Secret default\/nope not found/);
    assert.equal(probe.status?.targets, undefined);
  });

  test('a kubeconfig Secret its owner did not label for probes: a clear reason, nothing captured', async () => {
    const probe = await degraded('borrowed', 'KubeconfigSecretNotLabelled');
    assert.match(condition(probe, 'Degraded')?.message ?? '', /Secret default\/ci-kubeconfig is not labelled mapleak\.io\/remote-cluster=true/);
    assert.equal(probe.status?.targets, undefined, 'the member cluster was never asked');
    assert.equal(probe.status?.verdict ?? 'Unknown', 'Unknown');
  });

  test('transport Direct: captures at the pod IP', async () => {
    const probe = await waitFor('direct probe Leaking', async () => {
      const p = await getProbe('direct');
      return p?.status?.verdict === 'Leaking' && p;
    }, 120_000, 1000);
    const maps = probe.status?.findings?.filter((f) => f.kind === 'map') ?? [];
    assert.ok(maps.length > 0 && maps.every((f) => f.mapImpl === 'classic' && f.evidence === 'symbolized'));
  });

  test('a kubeconfig whose server is an address outside the allowlist: RemoteClusterNotAllowed, and nothing was dialled', async () => {
    const probe = await degraded('outside', 'RemoteClusterNotAllowed');
    assert.equal(condition(probe, 'Degraded')?.message, SERVER_NOT_ALLOWED);
    assert.equal(probe.status?.targets, undefined);
    assert.equal(refusedAsWritten.accepted(), 0, 'the listener at 127.0.0.3 accepted no connection');
  });

  test('a name that resolves to a refused and an allowed address: only the allowed one is dialled, and the certificate is verified against the name', async () => {
    const probe = await waitFor('dual: the pod list answered', async () => {
      const p = await getProbe('dual');
      return p?.status?.targets?.[0]?.name === 'outside' && p;
    }, 60_000, 500).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
    assert.notEqual(condition(probe, 'Degraded')?.reason, 'TargetListFailed');
    assert.ok(tenantRequests.some((r) => r.path === '/api/v1/namespaces/apps/pods' && r.authorization === 'Bearer tenant-token-1234'), 'the allowed address (127.0.0.2) got the pod list request');
    assert.equal(refusedByName.accepted(), 0, 'the refused address (127.0.0.3), first in the DNS answer, was never dialled');
  });

  test('the metadata addresses are refused even inside a listed range: as written, and behind a name', async () => {
    for (const name of ['metadata-v4', 'metadata-v6']) {
      const probe = await degraded(name, 'RemoteClusterNotAllowed');
      assert.equal(condition(probe, 'Degraded')?.message, SERVER_NOT_ALLOWED, name);
    }
    const byName = await degraded('metadata-name', 'TargetListFailed');
    // The tenant learns nothing of what the name resolved to: the same words as a closed port.
    assert.equal(condition(byName, 'Degraded')?.message, 'Cannot list pods in namespace apps: the remote API server could not be reached');
    // The admin's log says why, by code only.
    await waitFor('the refusal logged with its code', async () => operator.output().includes('"systemCode":"ERR_ADDRESS_NOT_ALLOWED"'), 30_000).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
  });

  test('transport Direct in a remote cluster: a pod IP in --remote-pod-cidrs is captured; one outside is never dialled', async () => {
    const captured = await waitFor('remote-direct captured at the member pod IP', async () => {
      const p = await getProbe('remote-direct');
      return (p?.status?.targets?.[0]?.captures ?? 0) >= 1 && p;
    }, 90_000, 1000).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
    assert.deepEqual(captured.status?.targets?.map((t) => [t.namespace, t.name]), [['apps', 'remote-leaky']]);

    const outsidePod = await waitFor('dual-direct: the pod outside failed', async () => {
      const p = await getProbe('dual-direct');
      return p?.status?.targets?.[0]?.lastError ? p : undefined;
    }, 60_000, 500).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
    const target = outsidePod.status?.targets?.[0];
    assert.deepEqual([target?.lastErrorReason, target?.lastError], ['BadUrl', POD_ADDRESS_NOT_ALLOWED]);
    assert.equal(refusedPod.accepted(), 0, 'the listener at the pod IP 127.0.0.3 accepted no connection');
  });

  test('nothing of the tenant-named addresses or names reached a status, an Event or the operator\'s log', async () => {
    const core = loadKubeConfig(hub).makeApiClient(CoreV1Api);
    const events = (await core.listNamespacedEvent({ namespace: 'default' })).items.map((e) => e.message ?? '');
    const statuses = await Promise.all(['outside', 'dual', 'dual-direct', 'metadata-v4', 'metadata-v6', 'metadata-name'].map(async (n) => JSON.stringify((await getProbe(n))?.status)));
    for (const [where, text] of [['statuses', statuses.join('\n')], ['Events', events.join('\n')], ['log', operator.output()]] as const) {
      for (const secret of ['127.0.0.3', '169.254.169.254', 'fd00:ec2::254', 'metadata.remote.test', 'dual.remote.test']) assert.ok(!text.includes(secret), `${where} mention ${secret}`);
    }
    assert.deepEqual([refusedByName, refusedAsWritten, refusedPod].map((l) => l.accepted()), [0, 0, 0], 'still nothing dialled outside the allowlists, after every round so far');
  });
});

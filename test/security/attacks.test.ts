/**
 * A tenant with only namespace rights (create MapLeakProbes and Secrets in
 * team-a) attacks the operator, which runs as two processes with tokens
 * minted for the chart's ServiceAccounts and the chart's RBAC and flags.
 * Every attack must fail safely: no code runs, no credential leaves, no
 * foreign pod or byte reaches the tenant's status, Events or the logs, and
 * memory and time stay bounded (figures printed).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api, CustomObjectsApi, KubeConfig, KubernetesObjectApi, loadAllYaml, RbacAuthorizationV1Api, type KubernetesObject } from '@kubernetes/client-node';
import { gzipSync } from 'node:zlib';
import { Function as ProfileFunction, Line, Location, Profile, Sample, StringTable, ValueType } from 'pprof-format';
import type { MapLeakProbe } from '../../src/api/types.js';
import { AddressAllowlist } from '../../src/clusters/address-allowlist.js';
import { ClusterRegistry, REMOTE_CLUSTER_LABEL } from '../../src/clusters/registry.js';
import { decodeHeapProfile, ProfileError } from '../../src/pprof/index.js';
import { DecodeGate } from '../../src/worker/decode-gate.js';
import { auditLogPath, runPod, stopCluster, type Cluster } from '../cluster/cluster.js';
import { pkiPaths } from '../cluster/pki.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { spawnOperator, type OperatorProcess } from '../support/operator-process.js';
import { repoPath } from '../support/paths.js';
import { bearer, testReaderToken } from '../support/tokens.js';
import { startClusterWithCrd, TestProbes } from '../support/probes.js';
import { waitFor } from '../support/wait.js';

process.env.LOG_LEVEL ??= 'warn';
const CLUSTER = 'security';
const RELEASE_NS = 'mapleakprobe';
const TENANT_NS = 'team-a';
/** Another team's namespace: spec.cluster is not enabled there. */
const OTHER_NS = 'team-b';
const PLANTED = 'planted-7c1e-do-not-echo';
const MiB = 1024 * 1024;

/** The chart's ceilings that these attacks run into (values.yaml defaults, a 5 s interval floor to keep the suite short). */
const MAX_TARGETS = 50;
const MAX_EVENTS = 5;

describe('security: a tenant with namespace rights gains nothing through the operator', () => {
  let cluster: Cluster;
  let admin: KubeConfig;
  let redis: RedisServer;
  const operators: OperatorProcess[] = [];
  let dir: string;
  let workerTokenFile: string;
  let workerToken: string;
  let tenant: KubeConfig;
  let tenantToken: string;
  let tenantProbes: TestProbes;
  let listener: Server;
  let listenerUrl: string;
  const listenerRequests: { url: string; authorization?: string }[] = [];
  let caData: string;
  let metricsToken: string;

  const diagnostics = (): string => operators.map((o) => `--- ${o.identity}\n${o.output().slice(-4000)}`).join('\n');
  const kubeconfigWith = (cluster: Record<string, unknown>, user: Record<string, unknown>): string =>
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster }],
      users: [{ name: 'u', user }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    });
  /** The tenant stores a kubeconfig Secret and a probe that uses it, with its own identity. */
  const remoteProbe = async (name: string, kubeconfig: string, extra: Record<string, unknown> = {}, namespace = 'default', probes = tenantProbes): Promise<void> => {
    await tenant.makeApiClient(CoreV1Api).createNamespacedSecret({ namespace: probes.namespace, body: { metadata: { name, labels: { [REMOTE_CLUSTER_LABEL]: 'true' } }, stringData: { kubeconfig } } });
    await probes.create(name, { selector: { matchLabels: { app: 'victim' } }, cluster: { kubeconfigSecretRef: { name }, namespace }, ...extra });
  };
  const degraded = (name: string, reason: string, probes = tenantProbes): Promise<MapLeakProbe> =>
    waitFor(`${name}: Degraded ${reason}`, async () => {
      const p = await probes.get(name);
      return p?.status?.conditions?.some((c) => c.type === 'Degraded' && c.reason === reason) && p;
    }, 60_000, 500).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
  /** Everything the tenant can read about its probes: statuses and Events. */
  const tenantView = async (): Promise<string> => {
    const core = admin.makeApiClient(CoreV1Api);
    const events = await core.listNamespacedEvent({ namespace: TENANT_NS });
    const probes = await admin.makeApiClient(CustomObjectsApi).listNamespacedCustomObject({ group: 'mapleak.io', version: 'v1alpha1', namespace: TENANT_NS, plural: 'mapleakprobes' });
    return JSON.stringify({ probes, events: events.items.map((e) => [e.reason, e.message]) });
  };
  const conditionMessage = (p: MapLeakProbe, type: string): string => p.status?.conditions?.find((c) => c.type === type)?.message ?? '';

  before(async () => {
    ({ cluster, kc: admin } = await startClusterWithCrd(CLUSTER));
    redis = await startRedis();
    const core = admin.makeApiClient(CoreV1Api);
    for (const name of [RELEASE_NS, TENANT_NS, OTHER_NS]) await core.createNamespace({ body: { metadata: { name } } });
    dir = mkdtempSync(join(tmpdir(), 'mapleak-security-'));
    caData = readFileSync(pkiPaths(join(cluster.stateDir, 'pki')).caCert).toString('base64');

    // The chart, as an admin installs it for team-a: its RBAC objects and its flags.
    const helm = join(cluster.binDir, 'helm');
    const yaml = execFileSync(helm, ['template', 'mapleakprobe', repoPath('charts', 'mapleakprobe'), '--namespace', RELEASE_NS, '--set', `remoteClusters.kubeconfigSecretNamespaces={${TENANT_NS}},remoteClusters.cidrs={127.0.0.1/32},limits.minInterval=5s`], { encoding: 'utf8' });
    const rendered = loadAllYaml(yaml).filter(Boolean) as KubernetesObject[];
    const objects = KubernetesObjectApi.makeApiClient(admin);
    for (const object of rendered.filter((o) => ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(o.kind ?? ''))) await objects.create(object);

    const mint = async (account: string, namespace: string): Promise<string> => {
      const token = (await core.createNamespacedServiceAccountToken({ name: account, namespace, body: { spec: { audiences: [], expirationSeconds: 3600 } } })).status?.token;
      assert.ok(token, `TokenRequest for ${account}`);
      return token;
    };
    // Reads /metrics (the operators' leadership, the metric sweep) as a user the API server lets.
    metricsToken = await testReaderToken(admin);
    for (const object of rendered.filter((o) => o.kind === 'Deployment')) {
      const spec = (object as { spec: { template: { spec: { serviceAccountName: string; containers: { args: string[] }[] } } } }).spec.template.spec;
      const args = [...(spec.containers[0]?.args ?? [])].slice(1);
      args.splice(args.indexOf('--port'), 2);
      const role = args[args.indexOf('--role') + 1] ?? 'all';
      const token = await mint(spec.serviceAccountName, RELEASE_NS);
      const kubeconfig = join(dir, `${role}.kubeconfig`);
      writeFileSync(kubeconfig, kubeconfigWith({ server: cluster.server, 'certificate-authority-data': caData }, { token }));
      if (role === 'worker') {
        // Where a pod keeps its ServiceAccount token: what token-file attacks aim at.
        workerToken = token;
        workerTokenFile = join(dir, 'worker-serviceaccount-token');
        writeFileSync(workerTokenFile, token);
      }
      if (role === 'worker') args.push('--metrics-sweep-interval', '2s');
      operators.push(await spawnOperator({ kubeconfig, redisUrl: redis.url, identity: `security-${role}`, leaseNamespace: RELEASE_NS, httpToken: metricsToken, args }));
    }

    // The tenant: a ServiceAccount with rights in team-a only.
    await core.createNamespacedServiceAccount({ namespace: TENANT_NS, body: { metadata: { name: 'tenant' } } });
    const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
    for (const ns of [TENANT_NS, OTHER_NS]) {
      await rbac.createNamespacedRole({
        namespace: ns,
        body: {
          metadata: { name: 'tenant' },
          rules: [
            { apiGroups: ['mapleak.io'], resources: ['mapleakprobes'], verbs: ['create', 'get', 'list', 'watch', 'update', 'patch', 'delete'] },
            { apiGroups: [''], resources: ['secrets'], verbs: ['create', 'update', 'patch', 'delete'] },
          ],
        },
      });
      await rbac.createNamespacedRoleBinding({
        namespace: ns,
        body: { metadata: { name: 'tenant' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'tenant' }, subjects: [{ kind: 'ServiceAccount', name: 'tenant', namespace: TENANT_NS }] },
      });
    }
    tenantToken = await mint('tenant', TENANT_NS);
    tenant = new KubeConfig();
    tenant.loadFromString(kubeconfigWith({ server: cluster.server, 'certificate-authority-data': caData }, { token: tenantToken }));
    tenantProbes = new TestProbes(tenant, TENANT_NS);

    // The tenant's own HTTPS listener, where stolen credentials would arrive.
    const pki = pkiPaths(join(cluster.stateDir, 'pki'));
    listener = createServer({ cert: readFileSync(pki.servingCert), key: readFileSync(pki.servingKey) }, (req, res) => {
      listenerRequests.push({ url: req.url ?? '', ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"kind":"PodList","items":[]}');
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const address = listener.address();
    listenerUrl = `https://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;

    // A pod the tenant may not see, and the tenant's own hostile pprof servers.
    await Promise.all([
      runPod(cluster, { name: 'victim', namespace: 'kube-system', labels: { app: 'victim' }, path: 'test/targets/leaky' }),
      ...['bomb', 'html-secret', 'json-secret', 'endless', 'slow'].map((mode) =>
        runPod(cluster, { name: `hostile-${mode}`, namespace: TENANT_NS, labels: { app: 'hostile' }, path: 'test/security/targets/hostile', args: ['-mode', mode, '-secret', PLANTED] }),
      ),
    ]);
  });

  after(async () => {
    for (const op of operators) await op.kill('SIGTERM');
    listener?.close();
    await redis?.stop();
    await stopCluster(CLUSTER);
  });

  test('an exec credential plugin never runs (no marker file), and the status says why in the operator’s words', async () => {
    const marker = join(dir, 'exec-ran');
    await remoteProbe('exec', kubeconfigWith({ server: listenerUrl, 'certificate-authority-data': caData }, { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: ['-e', `require('fs').writeFileSync(${JSON.stringify(marker)}, '${PLANTED}')`] } }));
    await remoteProbe('exec-sh', kubeconfigWith({ server: listenerUrl }, { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: '/bin/sh', args: ['-c', `touch ${marker}`] } }));
    await remoteProbe('auth-provider', kubeconfigWith({ server: listenerUrl }, { 'auth-provider': { name: 'gcp', config: { 'cmd-path': '/bin/sh', 'cmd-args': `-c "touch ${marker}"` } } }));
    for (const name of ['exec', 'exec-sh']) assert.match(conditionMessage(await degraded(name, 'KubeconfigInvalid'), 'Degraded'), /user field exec is refused: exec credential plugins are not run/);
    assert.match(conditionMessage(await degraded('auth-provider', 'KubeconfigInvalid'), 'Degraded'), /auth-provider plugins are not run/);
    assert.equal(existsSync(marker), false, 'no plugin ran');
    const view = await tenantView();
    assert.ok(!view.includes(marker) && !view.includes(PLANTED), 'the kubeconfig is never quoted');
  });

  test('file references aimed at the worker’s own token, certificate and CA are refused: nothing reaches the tenant’s listener', async () => {
    const pki = pkiPaths(join(cluster.stateDir, 'pki'));
    await remoteProbe('token-file', kubeconfigWith({ server: listenerUrl, 'certificate-authority-data': caData }, { 'token-file': workerTokenFile }));
    await remoteProbe('tokenfile', kubeconfigWith({ server: listenerUrl, 'certificate-authority-data': caData }, { tokenFile: workerTokenFile }));
    await remoteProbe('client-cert', kubeconfigWith({ server: listenerUrl, 'certificate-authority-data': caData }, { 'client-certificate': pki.adminCert, 'client-key': pki.adminKey }));
    await remoteProbe('ca-file', kubeconfigWith({ server: listenerUrl, 'certificate-authority': pki.caCert }, {}));
    for (const name of ['token-file', 'tokenfile', 'client-cert', 'ca-file']) {
      const probe = await degraded(name, 'KubeconfigInvalid');
      assert.match(conditionMessage(probe, 'Degraded'), /file references are not read/);
      assert.ok(!JSON.stringify(probe.status).includes(workerToken), 'the token file is never read into the status');
    }
    // A well-formed kubeconfig to the same listener is used (so the listener works), with the tenant's inline token only.
    await remoteProbe('inline', kubeconfigWith({ server: listenerUrl, 'certificate-authority-data': caData }, { token: 'tenant-inline-token-1234' }));
    await waitFor('the inline kubeconfig reaches the listener', async () => listenerRequests.length > 0, 60_000);
    assert.ok(listenerRequests.every((r) => r.authorization === 'Bearer tenant-inline-token-1234'), JSON.stringify(listenerRequests));
    assert.ok(!listenerRequests.some((r) => r.authorization?.includes(workerToken)), 'the worker’s token never left');
  });

  test('a kubeconfig pointing back at the operator’s API server gets the tenant’s identity only: no foreign pod in the status', async () => {
    await remoteProbe('back-home', kubeconfigWith({ server: cluster.server, 'certificate-authority-data': caData }, { token: tenantToken }), {}, 'kube-system');
    await remoteProbe('back-anonymous', kubeconfigWith({ server: cluster.server, 'certificate-authority-data': caData }, {}), {}, 'kube-system');
    for (const name of ['back-home', 'back-anonymous']) {
      const probe = await degraded(name, 'TargetListFailed');
      // A remote API server's answer is not told (review 12): a 403 and a 401 read the same.
      assert.equal(conditionMessage(probe, 'Degraded'), 'Cannot list pods in namespace kube-system: the remote API server answered with an error');
      assert.equal(probe.status?.targets, undefined);
      assert.ok(!JSON.stringify(probe.status).includes('victim'), 'no foreign pod in the status');
    }
  });

  test('transport Direct with spec.cluster is refused: a remote API server could name any IP:port', async () => {
    await remoteProbe('direct-remote', kubeconfigWith({ server: listenerUrl, 'certificate-authority-data': caData }, { token: 'tenant-inline-token-1234' }), { pprof: { transport: 'Direct' } });
    const probe = await degraded('direct-remote', 'DirectNotAllowed');
    assert.match(conditionMessage(probe, 'Degraded'), /--allow-remote-direct/);
  });

  test('spec.cluster in a namespace the admin did not enable: refused before any Secret is read', async () => {
    const otherProbes = new TestProbes(tenant, OTHER_NS);
    await remoteProbe('not-enabled', kubeconfigWith({ server: cluster.server, 'certificate-authority-data': caData }, { token: tenantToken }), {}, 'kube-system', otherProbes);
    const probe = await degraded('not-enabled', 'RemoteClusterNotAllowed', otherProbes);
    assert.match(conditionMessage(probe, 'Degraded'), /not allowed in namespace team-b/);
    const secretReads = readFileSync(auditLogPath(cluster), 'utf8')
      .split('\n')
      .filter((line) => line.includes(`system:serviceaccount:${RELEASE_NS}:`) && line.includes('"resource":"secrets"') && line.includes(`"namespace":"${OTHER_NS}"`));
    assert.deepEqual(secretReads, [], 'the worker never tried to read a Secret in team-b');
  });

  test('ceilings over the spec: values beyond them are clamped and said so; probes past the per-namespace ceiling are not scheduled', async () => {
    const otherProbes = new TestProbes(tenant, OTHER_NS);
    await otherProbes.create('greedy', { selector: { matchLabels: { app: 'none' } }, pprof: { maxProfileBytes: 1024 ** 3, timeout: '5m' }, schedule: { interval: '5s', window: 100 } });
    const greedy = await waitFor('CeilingsApplied', async () => {
      const p = await otherProbes.get('greedy');
      return p?.status?.conditions?.some((c) => c.type === 'CeilingsApplied' && c.status === 'True') && p;
    }, 30_000);
    assert.equal(conditionMessage(greedy, 'CeilingsApplied'), "spec.pprof.maxProfileBytes 1073741824 lowered to the operator's ceiling 67108864; spec.pprof.timeout 300000ms lowered to the operator's ceiling 30000ms; spec.schedule.window 100 lowered to the operator's ceiling 24.");
    assert.match(conditionMessage(greedy, 'Ready'), /keeping 24 captures per target/);
    // The chart's ceiling is 20 probes per namespace; team-b now has 2 (not-enabled, greedy).
    // Oldest first by creationTimestamp (whole seconds), ties by name: the fillers must come a second later.
    const greedySecond = Date.parse(greedy.metadata.creationTimestamp ?? '');
    while (Date.now() < greedySecond + 1100) await new Promise((resolve) => setTimeout(resolve, 100));
    for (let i = 0; i < 19; i++) await otherProbes.create(`filler-${String(i).padStart(2, '0')}`, { selector: { matchLabels: { app: 'none' } } });
    const newest = await waitFor('the 21st probe is held back', async () => {
      const p = await otherProbes.get('filler-18');
      return p?.status?.conditions?.some((c) => c.type === 'Ready' && c.reason === 'NamespaceProbeLimit') && p;
    }, 60_000).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
    assert.match(conditionMessage(newest, 'Ready'), /more than 20 probes \(operator ceiling\)/);
    assert.equal((await otherProbes.get('filler-00'))?.status?.conditions?.find((c) => c.type === 'Ready')?.reason, 'Scheduled', 'the older ones are scheduled');
  });

  test('pathPrefix cannot climb out of the pod proxy (the API server refuses it)', async () => {
    for (const pathPrefix of ['/debug/../../../../api/v1/namespaces/kube-system/secrets', '/a/%2e%2e/b', '/x?y', '/debug//pprof', '/.hidden']) {
      await assert.rejects(tenantProbes.create(`climb-${Math.random().toString(36).slice(2, 8)}`, { selector: { matchLabels: { app: 'hostile' } }, pprof: { pathPrefix } }), (err: { code?: number }) => err.code === 422, pathPrefix);
    }
  });

  test('hostile targets: a gzip bomb, planted secrets in HTML and JSON errors, an endless and a silent answer all fail safely', async () => {
    await tenantProbes.create('hostile', { selector: { matchLabels: { app: 'hostile' } }, pprof: { timeout: '3s' } });
    const probe = await waitFor('every hostile target reported', async () => {
      const p = await tenantProbes.get('hostile');
      return (p?.status?.targets ?? []).filter((t) => t.lastErrorReason).length === 5 && p;
    }, 120_000, 1000).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
    const reasons = Object.fromEntries((probe.status?.targets ?? []).map((t) => [t.name, t.lastErrorReason]));
    assert.deepEqual(reasons, { 'hostile-bomb': 'TooLarge', 'hostile-endless': 'Timeout', 'hostile-html-secret': 'Http500', 'hostile-json-secret': 'Http403', 'hostile-slow': 'Timeout' });
    const messages = Object.fromEntries((probe.status?.targets ?? []).map((t) => [t.name, t.lastError]));
    assert.match(messages['hostile-html-secret'] ?? '', /the target answered HTTP 500 \(text\/html, \d+ bytes\)/);
    assert.match(messages['hostile-json-secret'] ?? '', /the target answered HTTP 403 \(application\/json, \d+ bytes\)/);

    const view = await tenantView();
    assert.ok(!view.includes(PLANTED), 'the planted secret is in no status or Event');
    for (const op of operators) assert.ok(!op.output().includes(PLANTED), `the planted secret is not in the ${op.identity} log`);

    const worker = operators.find((o) => o.identity === 'security-worker');
    assert.ok(worker);
    const status = readFileSync(`/proc/${worker.pid}/status`, 'utf8');
    const peakMiB = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
    console.log(`# worker peak RSS after a 1 GiB gzip bomb (about 1 MiB on the wire) and 4 other hostile targets: ${peakMiB.toFixed(0)} MiB`);
    assert.ok(peakMiB > 0 && peakMiB < 400, `worker memory stayed bounded (${peakMiB} MiB)`);
  });

  test('a deleted probe’s metric series are removed by the worker too', async () => {
    const worker = operators.find((o) => o.identity === 'security-worker');
    assert.ok(worker);
    const series = async (): Promise<string[]> => (await (await fetch(`http://127.0.0.1:${worker.port}/metrics`, { headers: bearer(metricsToken) })).text()).split('\n').filter((l) => l.includes('probe="hostile"'));
    await waitFor('the worker exports the hostile probe', async () => (await series()).length > 0, 30_000);
    await tenantProbes.delete('hostile');
    await waitFor('its series are gone from the worker', async () => (await series()).length === 0, 30_000).catch(async (err: Error) => assert.fail(`${err.message}\n${(await series()).join('\n')}`));
  });

  test('a gzip bomb and a big profile: bounded memory, and the event loop keeps its heartbeat (figures)', async () => {
    const limits = { maxBytes: 64 * MiB, maxInflatedBytes: 256 * MiB, maxRatio: 50 };
    /** Runs `fn` while sampling the event loop: its longest stall, the wall time and the external memory it added. */
    const measure = async (what: string, fn: () => Promise<unknown> | unknown): Promise<{ ms: number; stallMs: number }> => {
      const delay = monitorEventLoopDelay({ resolution: 10 });
      delay.enable();
      // The histogram's first tick only sets its baseline: a stall before it would go unseen.
      await new Promise((resolve) => setTimeout(resolve, 50));
      const before = process.memoryUsage().arrayBuffers;
      const started = performance.now();
      await Promise.resolve().then(fn).catch((err: unknown) => err);
      const ms = performance.now() - started;
      // One more turn so a stall at the very end is sampled too.
      await new Promise((resolve) => setTimeout(resolve, 20));
      delay.disable();
      const stallMs = delay.max / 1e6;
      console.log(`# ${what}: ${ms.toFixed(0)} ms, longest event-loop stall ${stallMs.toFixed(0)} ms, external memory +${((process.memoryUsage().arrayBuffers - before) / MiB).toFixed(1)} MiB`);
      return { ms, stallMs };
    };
    const bomb = gzipSync(Buffer.alloc(1024 * MiB), { level: 9 });
    const bombOnLoop = await measure(`gzip bomb (${(bomb.length / MiB).toFixed(1)} MiB to 1 GiB), decoded on the loop`, () => decodeHeapProfile(bomb, limits));
    assert.ok(bombOnLoop.ms < 1000, 'the streaming inflate stops the bomb early');
    assert.throws(() => decodeHeapProfile(bomb, limits), (err: unknown) => err instanceof ProfileError && err.code === 'TooLarge');

    const big = bigProfile(150_000);
    const onLoop = await measure(`${(big.length / MiB).toFixed(1)} MiB profile of 150,000 samples, decoded on the loop`, () => decodeHeapProfile(big, limits));
    // A budget well under what decoding this profile takes on this machine (the thread decodes it cold, slower than the loop did), so the gate must refuse it however fast the decoder is.
    const budgetMs = Math.max(100, Math.round(onLoop.ms / 3));
    const gate = new DecodeGate({ maxDecodeMs: budgetMs, maxHeapMiB: 512 });
    const roomyGate = new DecodeGate({ maxDecodeMs: 1000, maxHeapMiB: 512 });
    try {
      let refused: unknown;
      const gated = await measure(`the same profile through the decode gate (${budgetMs} ms budget)`, () => gate.check('proto', big, limits).catch((err: unknown) => (refused = err)));
      assert.ok(refused instanceof ProfileError && refused.code === 'TooLarge' && new RegExp(`longer than ${budgetMs} ms to decode`).test(refused.message), String(refused));
      assert.ok(gated.stallMs < Math.max(500, onLoop.stallMs / 4), `the gate keeps the loop responsive (${gated.stallMs} ms vs ${onLoop.stallMs} ms)`);
      const bombGated = await measure('the gzip bomb through the decode gate', () => roomyGate.check('proto', bomb, limits));
      assert.ok(bombGated.stallMs < 500);
      // A real profile passes the gate.
      await roomyGate.check('proto', readFileSync(repoPath('test', 'pprof', 'testdata', 'go1.26', 'heap-008.pb.gz')), limits);
    } finally {
      await Promise.all([gate.close(), roomyGate.close()]);
    }
  });

  test('2,000 listed pods: targets and Events per round stay capped', async () => {
    const core = admin.makeApiClient(CoreV1Api);
    const names = Array.from({ length: 2000 }, (_, i) => `crowd-${String(i).padStart(4, '0')}`);
    for (let i = 0; i < names.length; i += 50) {
      await Promise.all(
        names.slice(i, i + 50).map((name) =>
          core.createNamespacedPod({ namespace: TENANT_NS, body: { metadata: { name, labels: { app: 'crowd' } }, spec: { nodeName: cluster.nodeName, containers: [{ name: 'c', image: 'none' }] } } }),
        ),
      );
    }
    await waitFor('kwok runs the crowd', async () => (await core.listNamespacedPod({ namespace: TENANT_NS, labelSelector: 'app=crowd', fieldSelector: 'status.phase=Running', limit: 2000 })).items.length === 2000, 120_000, 1000);
    await tenantProbes.create('crowd', { selector: { matchLabels: { app: 'crowd' } }, pprof: { timeout: '1s' } });
    const probe = await waitFor('a crowd round done', async () => {
      const p = await tenantProbes.get('crowd');
      return (p?.status?.targetCount ?? 0) > 0 && p;
    }, 180_000, 1000).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
    assert.equal(probe.status?.targetCount, MAX_TARGETS, 'only the first pods by name are captured');
    assert.ok((probe.status?.targetsOmitted ?? 0) > 0);
    assert.equal((probe.status?.targets ?? []).length, 20, 'the status lists at most 20 targets');
    const events = (await core.listNamespacedEvent({ namespace: TENANT_NS, fieldSelector: 'involvedObject.name=crowd' })).items.filter((e) => e.reason === 'CaptureFailed');
    console.log(`# 2,000 matching pods: ${probe.status?.targetCount} captured, ${events.length} CaptureFailed Events after the first round`);
    assert.ok(events.length <= MAX_EVENTS, `${events.length} Events`);
    assert.ok(events.some((e) => /more targets started failing this round/.test(e.message ?? '')), 'the rest are summed up in one Event');
  });

  test('a kubeconfig Secret rewritten 3,000 times leaves one client, and many Secrets no more than the cache bound', async () => {
    const core = admin.makeApiClient(CoreV1Api);
    const registry = new ClusterRegistry(admin, { remoteNamespaces: new Set([TENANT_NS]), maxClients: 32, remoteServers: AddressAllowlist.parse(['127.0.0.1/32']) });
    const kubeconfig = kubeconfigWith({ server: cluster.server, 'certificate-authority-data': caData }, { token: tenantToken });
    await core.createNamespacedSecret({ namespace: TENANT_NS, body: { metadata: { name: 'rotating', labels: { [REMOTE_CLUSTER_LABEL]: 'true' } }, stringData: { kubeconfig } } });
    const probe = (secret: string): MapLeakProbe => ({
      apiVersion: 'mapleak.io/v1alpha1',
      kind: 'MapLeakProbe',
      metadata: { name: 'p', namespace: TENANT_NS, uid: 'u' },
      spec: { cluster: { kubeconfigSecretRef: { name: secret, key: 'kubeconfig' }, namespace: TENANT_NS } } as unknown as MapLeakProbe['spec'],
    });
    const started = Date.now();
    let most = 0;
    for (let i = 0; i < 3000; i++) {
      await core.replaceNamespacedSecret({ name: 'rotating', namespace: TENANT_NS, body: { metadata: { name: 'rotating', labels: { [REMOTE_CLUSTER_LABEL]: 'true' } }, stringData: { kubeconfig: `${kubeconfig}\n# rewrite ${i}\n` } } });
      await registry.forProbe(probe('rotating'), core);
      most = Math.max(most, registry.remoteClients);
    }
    assert.equal(most, 1, 'each rewrite replaces the previous client');
    for (let i = 0; i < 100; i++) {
      await core.createNamespacedSecret({ namespace: TENANT_NS, body: { metadata: { name: `many-${i}`, labels: { [REMOTE_CLUSTER_LABEL]: 'true' } }, stringData: { kubeconfig } } });
      await registry.forProbe(probe(`many-${i}`), core);
    }
    console.log(`# 3,000 rewrites of one Secret: at most ${most} client; 100 Secrets: ${registry.remoteClients} clients (bound 32); ${((Date.now() - started) / 1000).toFixed(0)} s`);
    assert.equal(registry.remoteClients, 32);
    registry.close();
  });
});

/** A valid gzipped heap profile with `samples` distinct two-frame stacks, as a large service might serve. */
function bigProfile(samples: number): Buffer {
  const strings = new StringTable();
  const type = (t: string, unit: string): ValueType => new ValueType({ type: strings.dedup(t), unit: strings.dedup(unit) });
  const functions: ProfileFunction[] = [];
  const locations: Location[] = [];
  for (let i = 1; i <= samples; i++) {
    functions.push(new ProfileFunction({ id: i, name: strings.dedup(`example.com/svc/pkg${i % 97}.handler${i}`), filename: strings.dedup(`/src/pkg${i % 97}/handler.go`) }));
    locations.push(new Location({ id: i, address: 0x400000 + i * 16, line: [new Line({ functionId: i, line: i % 1000 })] }));
  }
  const sample = Array.from({ length: samples }, (_, i) => new Sample({ locationId: [i + 1, ((i * 7) % samples) + 1], value: [1, 4096, 1, 4096] }));
  const profile = new Profile({
    stringTable: strings,
    sampleType: [type('alloc_objects', 'count'), type('alloc_space', 'bytes'), type('inuse_objects', 'count'), type('inuse_space', 'bytes')],
    periodType: type('space', 'bytes'),
    period: 524288,
    function: functions,
    location: locations,
    sample,
    timeNanos: BigInt(Date.now()) * 1_000_000n,
  });
  return gzipSync(profile.encode(), { level: 1 });
}

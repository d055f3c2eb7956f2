// The Helm chart (charts/mapleakprobe) and the plain manifests generated from
// it (manifests/), against a real kube-apiserver 1.36 (test/cluster): lint,
// values schema, the CRD copy, manifests freshness, least-privilege RBAC,
// deterministic offline rendering, server-side dry runs of every object (also
// PodSecurity "restricted" on the pod templates), a real helm install and
// upgrade, and `kubectl apply -f manifests/` done with server-side apply.
// Starts (and tears down) its own cluster "chart". No kube-controller-manager:
// Deployments and StatefulSets never get pods, which is fine here.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import * as https from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
// Plain YAML parsing: k8s.loadAllYaml deserializes into typed models and drops
// unknown fields, which would hide exactly the mistakes these tests look for.
// js-yaml is a dependency of @kubernetes/client-node.
import yaml from 'js-yaml';
import { operatorConfig } from '../../src/cli/operator.js';
import { applyManifestFile, loadKubeConfig, startCluster, stopCluster, waitForCrdsEstablished, type Cluster } from '../cluster/cluster.js';
import { repoPath } from '../support/paths.js';
import { waitFor } from '../support/wait.js';

const CLUSTER = 'chart';
const CHART = repoPath('charts', 'mapleakprobe');
const RELEASE = 'mapleakprobe';
const NAMESPACE = 'mapleakprobe';
const DRY_RUN_NAMESPACE = 'chart-dry-run';
const ALL_FEATURES = repoPath('test', 'chart', 'fixtures', 'all-features.yaml');
const KUBE_VERSION = /^KUBERNETES_VERSION=(\S+)$/m.exec(readFileSync(repoPath('test', 'cluster', 'go', 'versions.env'), 'utf8'))?.[1] ?? '1.36.0';
const run = promisify(execFile);
const SENTINEL_VALUES = [
  'redis.mode=external,redis.external.maxmemory=4gb',
  'redis.external.sentinel.masterName=mymaster',
  'redis.external.sentinel.addresses={sentinel-0.redis:26379,sentinel-1.redis:26379,sentinel-2.redis:26379}',
  'redis.external.sentinel.auth.existingSecret=sentinel-auth',
  'redis.external.existingSecret=redis-auth',
  'redis.external.tls.enabled=true',
  'networkPolicy.externalRedis.extraPorts={26379}',
].join(',');

type Obj = k8s.KubernetesObject & Record<string, unknown>;
interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

// Exactly what the operator's code calls (see the RBAC section of the chart README).
const CONTROLLER_CLUSTER_RULES: PolicyRule[] = [
  { apiGroups: ['mapleak.io'], resources: ['mapleakprobes'], verbs: ['get', 'list', 'watch', 'patch'] },
  { apiGroups: ['mapleak.io'], resources: ['mapleakprobes/status'], verbs: ['patch'] },
  { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] },
];
const CONTROLLER_LEASE_RULES: PolicyRule[] = [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }];
const WORKER_RULES: PolicyRule[] = [
  { apiGroups: ['mapleak.io'], resources: ['mapleakprobes'], verbs: ['get'] },
  { apiGroups: ['mapleak.io'], resources: ['mapleakprobes/status'], verbs: ['patch'] },
  { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
  { apiGroups: [''], resources: ['pods/proxy'], verbs: ['get'] },
  { apiGroups: [''], resources: ['pods/log'], verbs: ['get'] },
  { apiGroups: [''], resources: ['events'], verbs: ['create'] },
];
const SECRETS_RULE: PolicyRule = { apiGroups: [''], resources: ['secrets'], verbs: ['get'] };

let cluster: Cluster | undefined;
let kc: k8s.KubeConfig;
let client: k8s.KubernetesObjectApi;

function requireCluster(): Cluster {
  if (!cluster) throw new Error('cluster did not start');
  return cluster;
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function helm(args: string[], options: { allowFailure?: boolean } = {}): Promise<RunResult> {
  const c = requireCluster();
  const env = {
    ...process.env,
    HELM_CACHE_HOME: join(c.stateDir, 'helm', 'cache'),
    HELM_CONFIG_HOME: join(c.stateDir, 'helm', 'config'),
    HELM_DATA_HOME: join(c.stateDir, 'helm', 'data'),
  };
  try {
    const { stdout, stderr } = await run(join(c.binDir, 'helm'), args, { env, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    const result = { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(err) };
    if (!options.allowFailure) throw new Error(`helm ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
    return result;
  }
}

/** `helm template` offline, like CI and scripts/generate-manifests.mjs. */
async function template(extra: string[] = [], namespace = NAMESPACE): Promise<Obj[]> {
  const { stdout } = await helm(['template', RELEASE, CHART, '--namespace', namespace, '--kube-version', KUBE_VERSION, ...extra]);
  return parseYaml(stdout);
}

function parseYaml(text: string): Obj[] {
  return (yaml.loadAll(text) as Array<Obj | null>).filter((o): o is Obj => Boolean(o?.kind));
}

function find(objects: Obj[], kind: string, name: string): Obj {
  const found = objects.find((o) => o.kind === kind && o.metadata?.name === name);
  assert.ok(found, `${kind} ${name} is rendered (have: ${objects.map((o) => `${o.kind}/${o.metadata?.name}`).join(', ')})`);
  return found;
}

function podSpec(o: Obj): k8s.V1PodSpec {
  const spec = (o as unknown as k8s.V1Deployment).spec?.template.spec;
  assert.ok(spec, `${o.kind} ${o.metadata?.name} has a pod template`);
  return spec;
}

function envOf(o: Obj): Map<string, k8s.V1EnvVar> {
  return new Map((podSpec(o).containers[0]?.env ?? []).map((e) => [e.name, e]));
}

/** Every leaf of `sent` is in `got` (the API server neither dropped nor renamed anything). */
function assertSubset(sent: unknown, got: unknown, path: string): void {
  if (Array.isArray(sent)) {
    assert.ok(Array.isArray(got), `${path}: array kept`);
    assert.equal(got.length, sent.length, `${path}: length kept`);
    sent.forEach((item, i) => assertSubset(item, got[i], `${path}[${i}]`));
  } else if (sent !== null && typeof sent === 'object') {
    assert.ok(got !== null && typeof got === 'object', `${path}: object kept`);
    for (const [key, value] of Object.entries(sent)) assertSubset(value, (got as Record<string, unknown>)[key], `${path}.${key}`);
  } else {
    assert.equal(String(got), String(sent), `${path}: value kept`);
  }
}

// Raw JSON requests: KubernetesObjectApi serializes through client-node's
// typed models, which silently drop fields they do not know (including
// `from` in NetworkPolicy rules and `x-kubernetes-*` in CRD schemas). Here
// the API server sees exactly the rendered object, with fieldValidation=Strict.
async function request(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<Obj> {
  const server = new URL(kc.getCurrentCluster()?.server ?? '');
  const options: https.RequestOptions = { method, hostname: server.hostname, port: server.port, path, headers: { Accept: 'application/json', 'Content-Type': contentType } };
  await kc.applyToHTTPSOptions(options);
  const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = https.request(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
  if (status >= 400) throw new Error(`${method} ${path}: HTTP ${status}: ${(JSON.parse(text) as { message?: string }).message ?? text}`);
  return JSON.parse(text) as Obj;
}

const discovery = new Map<string, { name: string; kind: string; namespaced: boolean }[]>();

async function collectionPath(object: Obj): Promise<string> {
  const apiVersion = object.apiVersion ?? '';
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  let resources = discovery.get(apiVersion);
  if (!resources) {
    resources = ((await request('GET', base)) as unknown as { resources: { name: string; kind: string; namespaced: boolean }[] }).resources;
    discovery.set(apiVersion, resources);
  }
  const resource = resources.find((r) => r.kind === object.kind && !r.name.includes('/'));
  if (!resource) throw new Error(`the API server does not serve ${object.kind} in ${apiVersion}`);
  return `${base}${resource.namespaced ? `/namespaces/${object.metadata?.namespace ?? 'default'}` : ''}/${resource.name}`;
}

/** Server-side apply of the object exactly as rendered (kubectl apply --server-side). */
async function serverSideApply(object: Obj, dryRun = false): Promise<Obj> {
  const query = `fieldManager=chart-test&force=true&fieldValidation=Strict${dryRun ? '&dryRun=All' : ''}`;
  return request('PATCH', `${await collectionPath(object)}/${object.metadata?.name}?${query}`, object, 'application/apply-patch+yaml');
}

async function dryRunApply(objects: Obj[]): Promise<void> {
  for (const object of objects) {
    const what = `${object.kind} ${object.metadata?.namespace ?? ''}/${object.metadata?.name}`;
    let result: Obj;
    try {
      result = await serverSideApply(object, true);
    } catch (err) {
      throw new Error(`server-side dry run of ${what} failed: ${(err as Error).message}`);
    }
    const withoutMetadata = (o: Obj): Record<string, unknown> => Object.fromEntries(Object.entries(o).filter(([key]) => key !== 'metadata'));
    assertSubset(withoutMetadata(object), withoutMetadata(result), what);
    assertSubset(object.metadata?.labels ?? {}, result.metadata?.labels ?? {}, `${what} labels`);
  }
}

/** PodSecurity admission ("restricted" in the dry-run namespace) judges every pod template. */
async function dryRunPods(objects: Obj[], namespace: string): Promise<void> {
  for (const o of objects.filter((x) => x.kind === 'Deployment' || x.kind === 'StatefulSet')) {
    const spec = structuredClone(podSpec(o));
    // The StatefulSet controller adds a volume per claim template.
    for (const claim of (o as unknown as k8s.V1StatefulSet).spec?.volumeClaimTemplates ?? []) {
      const name = claim.metadata?.name ?? '';
      spec.volumes = [...(spec.volumes ?? []), { name, persistentVolumeClaim: { claimName: `${name}-${o.metadata?.name}-0` } }];
    }
    const pod: Obj = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `${o.metadata?.name}-dry-run`, namespace, labels: (o as unknown as k8s.V1Deployment).spec?.template.metadata?.labels ?? {} },
      spec: spec as unknown as Record<string, unknown>,
    };
    try {
      await request('POST', `${await collectionPath(pod)}?dryRun=All&fieldValidation=Strict`, pod);
    } catch (err) {
      throw new Error(`pod of ${o.kind} ${o.metadata?.name} is not accepted in a PodSecurity "restricted" namespace: ${(err as Error).message}`);
    }
  }
}

async function readObject<T extends k8s.KubernetesObject>(apiVersion: string, kind: string, name: string, namespace?: string): Promise<T | undefined> {
  try {
    return (await client.read({ apiVersion, kind, metadata: { name, ...(namespace ? { namespace } : {}) } })) as T;
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

async function redisPassword(): Promise<string> {
  const secret = await readObject<k8s.V1Secret>('v1', 'Secret', `${RELEASE}-redis`, NAMESPACE);
  const encoded = secret?.data?.['redis-password'];
  assert.ok(encoded, 'the Redis password Secret exists with key redis-password');
  return Buffer.from(encoded, 'base64').toString('utf8');
}

async function can(serviceAccount: string, attributes: k8s.V1ResourceAttributes): Promise<boolean> {
  const api = kc.makeApiClient(k8s.AuthorizationV1Api);
  const review = await api.createSubjectAccessReview({
    body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec: { user: `system:serviceaccount:${NAMESPACE}:${serviceAccount}`, resourceAttributes: attributes } },
  });
  return review.status?.allowed === true;
}

before(async () => {
  cluster = await startCluster({ name: CLUSTER });
  kc = loadKubeConfig(cluster);
  client = k8s.KubernetesObjectApi.makeApiClient(kc);
});

after(async () => {
  await stopCluster(CLUSTER);
});

describe('chart: static checks', () => {
  test('helm lint --strict passes with the default values, every feature on, and external Redis', async () => {
    await helm(['lint', '--strict', CHART, '--kube-version', KUBE_VERSION]);
    await helm(['lint', '--strict', CHART, '--kube-version', KUBE_VERSION, '-f', ALL_FEATURES]);
    await helm(['lint', '--strict', CHART, '--kube-version', KUBE_VERSION, '--set', 'redis.mode=external,redis.external.maxmemory=4gb,redis.external.url=redis://redis.example:6379']);
  });

  test('values.schema.json rejects unknown keys at every level', async () => {
    for (const key of ['bogus', 'worker.bogus', 'redis.bundled.persistence.bogus', 'metrics.serviceMonitor.bogus', 'controller.resources.bogus', 'redis.bundled.image.bogus', 'networkPolicy.apiServer.bogus']) {
      const set = key.includes('=') ? key : `${key}=1`;
      const result = await helm(['template', RELEASE, CHART, '--kube-version', KUBE_VERSION, '--set', set], { allowFailure: true });
      assert.notEqual(result.code, 0, `--set ${set} must fail`);
      assert.match(result.stderr, /additional properties 'bogus' not allowed/, `--set ${set}: ${result.stderr}`);
    }
    const badMode = await helm(['template', RELEASE, CHART, '--kube-version', KUBE_VERSION, '--set', 'redis.mode=sentinel'], { allowFailure: true });
    assert.notEqual(badMode.code, 0, 'redis.mode must be bundled or external');
    const noUrl = await helm(['template', RELEASE, CHART, '--kube-version', KUBE_VERSION, '--set', 'redis.mode=external,redis.external.maxmemory=4gb'], { allowFailure: true });
    assert.match(noUrl.stderr, /redis.mode external needs exactly one of redis.external.url, redis.external.sentinel.addresses or redis.external.cluster.nodes \(set: none\)/);
    const two = await helm(['template', RELEASE, CHART, '--kube-version', KUBE_VERSION, '--set', 'redis.mode=external,redis.external.maxmemory=4gb,redis.external.url=redis://r:6379,redis.external.cluster.nodes={n:7000}'], { allowFailure: true });
    assert.match(two.stderr, /exactly one of .* \(set: url, cluster\)/);
    const noMaster = await helm(['template', RELEASE, CHART, '--kube-version', KUBE_VERSION, '--set', 'redis.mode=external,redis.external.maxmemory=4gb,redis.external.sentinel.addresses={s:26379}'], { allowFailure: true });
    assert.match(noMaster.stderr, /redis.external.sentinel.addresses needs redis.external.sentinel.masterName/);
    const badNode = await helm(['template', RELEASE, CHART, '--kube-version', KUBE_VERSION, '--set', 'redis.mode=external,redis.external.maxmemory=4gb,redis.external.cluster.nodes={no-port}'], { allowFailure: true });
    assert.notEqual(badNode.code, 0, 'cluster nodes are host:port');
    const noLeader = await helm(['template', RELEASE, CHART, '--kube-version', KUBE_VERSION, '--set', 'controller.leaderElection.enabled=false'], { allowFailure: true });
    assert.match(noLeader.stderr, /needs controller.replicas=1/);
  });

  test("the Redis budget per namespace is derived from the Redis' maxmemory: the namespaces that may fill it at once fit in 3/4 of it", async () => {
    const budgetOf = async (set?: string): Promise<number> => {
      const args = podSpec(find(await template(set ? ['--set', set] : []), 'Deployment', 'mapleakprobe-worker')).containers[0]?.args ?? [];
      return operatorConfig(args.slice(1)).ceilings?.maxRedisBytesPerNamespace ?? Number.NaN;
    };
    const values = yaml.load(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as { limits: { redisNamespacesAtBudget: number; maxSummaryBytes: string; maxStoredProfileBytes: string }; redis: { bundled: { maxmemory: string } } };
    assert.equal(values.redis.bundled.maxmemory, '768mb');
    const maxmemory = 768 * 1024 * 1024;
    const budget = await budgetOf();
    assert.equal(budget, 96 * 1024 * 1024);
    assert.ok(values.limits.redisNamespacesAtBudget * budget <= 0.75 * maxmemory, 'namespaces × budget within 3/4 of maxmemory');
    // What the quarter of headroom must hold at least: one capture admitted just below maxmemory.
    assert.ok(maxmemory / 4 > 10 * 1024 * 1024, `${values.limits.maxSummaryBytes} + ${values.limits.maxStoredProfileBytes}`);
    assert.equal(await budgetOf('redis.bundled.maxmemory=2gb,limits.redisNamespacesAtBudget=4'), (2 * 1024 ** 3 * 3) / 16);
    assert.equal(await budgetOf('redis.bundled.maxmemory=1g'), 125_000_000, 'Redis units: g is 10^9');
    assert.equal(await budgetOf('limits.maxRedisBytesPerNamespace=200Mi'), 200 * 1024 * 1024, 'a value given wins');
    assert.equal(await budgetOf('redis.mode=external,redis.external.url=redis://r:6379,redis.external.maxmemory=4gb'), 512 * 1024 * 1024);
    const unknown = await helm(['template', RELEASE, CHART, '--kube-version', KUBE_VERSION, '--set', 'redis.mode=external,redis.external.url=redis://r:6379'], { allowFailure: true });
    assert.match(unknown.stderr, /limits.maxRedisBytesPerNamespace is derived from the Redis' maxmemory .* set one of them/);
  });

  test('values.schema.json closes every object: additionalProperties false, or a typed map', () => {
    const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as Record<string, unknown>;
    const open: string[] = [];
    const walk = (node: unknown, path: string): void => {
      if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${path}[${i}]`));
      if (node === null || typeof node !== 'object') return;
      const s = node as Record<string, unknown>;
      if (s.type === 'object') {
        const ap = s.additionalProperties;
        const passthrough = typeof s.description === 'string' && s.description.includes('passed through as is');
        if (s.properties !== undefined && ap !== false) open.push(path);
        if (s.properties === undefined && (ap === undefined || ap === true) && !passthrough) open.push(path);
      }
      for (const [k, v] of Object.entries(s)) walk(v, `${path}/${k}`);
    };
    walk(schema, '#');
    assert.deepEqual(open, [], 'objects that accept unknown keys');
  });

  test("the chart's crds/ is an exact copy of crds/ (the single source of truth)", () => {
    const chartCrds = readdirSync(join(CHART, 'crds')).sort();
    assert.deepEqual(chartCrds, readdirSync(repoPath('crds')).filter((f) => f.endsWith('.yaml')).sort());
    for (const file of chartCrds) {
      assert.ok(
        readFileSync(join(CHART, 'crds', file)).equals(readFileSync(repoPath('crds', file))),
        `charts/mapleakprobe/crds/${file} differs from crds/${file}: run \`npm run manifests\``,
      );
    }
  });

  test('manifests/ is a fresh render of the chart (run `npm run manifests` after changing it)', async () => {
    const c = requireCluster();
    const result = await run(process.execPath, [repoPath('scripts', 'generate-manifests.mjs'), '--check'], { env: { ...process.env, HELM: join(c.binDir, 'helm') } }).catch(
      (err: { stdout?: string; stderr?: string }) => {
        throw new Error(`manifests/ is stale: ${err.stderr ?? ''}${err.stdout ?? ''}`);
      },
    );
    assert.match(result.stdout, /up to date/);
    const files = readdirSync(repoPath('manifests')).sort();
    assert.deepEqual(files, ['00-namespace.yaml', '01-crds.yaml', '02-mapleakprobe.yaml']);
    const kinds = files.map((f) => parseYaml(readFileSync(repoPath('manifests', f), 'utf8')).map((o) => o.kind));
    assert.deepEqual(kinds[0], ['Namespace']);
    assert.deepEqual(kinds[1], ['CustomResourceDefinition']);
    assert.ok(!kinds[2]?.includes('Secret'), 'manifests/ carries no password: the user creates the Secret');
    assert.ok(!kinds[2]?.includes('Namespace') && !kinds[2]?.includes('CustomResourceDefinition'));
  });

  test('RBAC is exactly the least-privilege set, on two ServiceAccounts', async () => {
    const objects = await template();
    const rules = (kind: string, name: string): PolicyRule[] => (find(objects, kind, name) as unknown as k8s.V1ClusterRole).rules as PolicyRule[];
    assert.deepEqual(rules('ClusterRole', 'mapleakprobe-controller'), CONTROLLER_CLUSTER_RULES);
    assert.deepEqual(rules('Role', 'mapleakprobe-controller-leader-election'), CONTROLLER_LEASE_RULES);
    assert.deepEqual(rules('ClusterRole', 'mapleakprobe-worker'), WORKER_RULES, 'no Secret access by default');
    // HTTP authentication (both components serve it), and the roles users bind to read over HTTP.
    assert.deepEqual(rules('ClusterRole', 'mapleakprobe-http-auth'), [
      { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
      { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
    ]);
    assert.deepEqual(rules('ClusterRole', 'mapleakprobe-viewer'), [{ apiGroups: ['mapleak.io'], resources: ['mapleakprobes'], verbs: ['get', 'list', 'watch'] }]);
    assert.deepEqual(rules('ClusterRole', 'mapleakprobe-profile-reader'), [{ apiGroups: ['mapleak.io'], resources: ['mapleakprobes/profiles'], verbs: ['get'] }]);
    assert.deepEqual(rules('ClusterRole', 'mapleakprobe-metrics-reader'), [{ nonResourceURLs: ['/metrics'], verbs: ['get'] }]);
    assert.deepEqual(
      objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role').map((o) => o.metadata?.name),
      ['mapleakprobe-http-auth', 'mapleakprobe-viewer', 'mapleakprobe-profile-reader', 'mapleakprobe-metrics-reader', 'mapleakprobe-controller', 'mapleakprobe-worker', 'mapleakprobe-controller-leader-election'],
      'no other roles',
    );
    // Kubeconfig Secrets: one Role per namespace the admin names, never a ClusterRole on Secrets.
    const withSecrets = await template(['--set', 'remoteClusters.kubeconfigSecretNamespaces={team-a,team-b}']);
    assert.deepEqual((find(withSecrets, 'ClusterRole', 'mapleakprobe-worker') as unknown as k8s.V1ClusterRole).rules, WORKER_RULES);
    const secretRoles = withSecrets.filter((o) => o.kind === 'Role' && o.metadata?.name === 'mapleakprobe-worker-kubeconfig-secrets');
    assert.deepEqual(secretRoles.map((o) => [o.metadata?.namespace, (o as unknown as k8s.V1Role).rules]), [['team-a', [SECRETS_RULE]], ['team-b', [SECRETS_RULE]]]);
    const secretBindings = withSecrets.filter((o) => o.kind === 'RoleBinding' && o.metadata?.name === 'mapleakprobe-worker-kubeconfig-secrets') as unknown as k8s.V1RoleBinding[];
    assert.deepEqual(secretBindings.map((b) => [b.metadata?.namespace, b.subjects]), ['team-a', 'team-b'].map((ns) => [ns, [{ kind: 'ServiceAccount', name: 'mapleakprobe-worker', namespace: NAMESPACE }]]));
    const workerArgs = podSpec(find(withSecrets, 'Deployment', 'mapleakprobe-worker')).containers[0]?.args ?? [];
    assert.equal(workerArgs[workerArgs.indexOf('--kubeconfig-secret-namespaces') + 1], 'team-a,team-b', 'the worker allows spec.cluster exactly where it may read Secrets');
    const binding = (kind: string, name: string) => find(objects, kind, name) as unknown as k8s.V1ClusterRoleBinding;
    assert.deepEqual(binding('ClusterRoleBinding', 'mapleakprobe-controller').subjects, [{ kind: 'ServiceAccount', name: 'mapleakprobe-controller', namespace: NAMESPACE }]);
    assert.deepEqual(binding('RoleBinding', 'mapleakprobe-controller-leader-election').subjects, [{ kind: 'ServiceAccount', name: 'mapleakprobe-controller', namespace: NAMESPACE }]);
    assert.deepEqual(binding('ClusterRoleBinding', 'mapleakprobe-worker').subjects, [{ kind: 'ServiceAccount', name: 'mapleakprobe-worker', namespace: NAMESPACE }]);
    assert.deepEqual(binding('ClusterRoleBinding', 'mapleakprobe-http-auth').subjects, [
      { kind: 'ServiceAccount', name: 'mapleakprobe-controller', namespace: NAMESPACE },
      { kind: 'ServiceAccount', name: 'mapleakprobe-worker', namespace: NAMESPACE },
    ]);
    assert.ok(!objects.some((o) => o.metadata?.name === 'mapleakprobe-metrics-reader' && o.kind === 'ClusterRoleBinding'), 'no metrics reader bound by default');
    const prometheus = await template(['--set', 'httpAuth.metricsReaders[0].name=prometheus-k8s,httpAuth.metricsReaders[0].namespace=monitoring']);
    assert.deepEqual((find(prometheus, 'ClusterRoleBinding', 'mapleakprobe-metrics-reader') as unknown as k8s.V1ClusterRoleBinding).subjects, [{ kind: 'ServiceAccount', name: 'prometheus-k8s', namespace: 'monitoring' }]);
    assert.equal(podSpec(find(objects, 'Deployment', 'mapleakprobe-controller')).serviceAccountName, 'mapleakprobe-controller');
    assert.equal(podSpec(find(objects, 'Deployment', 'mapleakprobe-worker')).serviceAccountName, 'mapleakprobe-worker');
    const rbacOff = await template(['--set', 'rbac.create=false']);
    assert.ok(!rbacOff.some((o) => o.kind?.includes('Role')), 'rbac.create=false renders no roles');
  });

  test('Deployments: roles, leader election, downward API, probes, security context', async () => {
    const objects = await template();
    const controller = find(objects, 'Deployment', 'mapleakprobe-controller');
    const worker = find(objects, 'Deployment', 'mapleakprobe-worker');
    assert.equal((controller as unknown as k8s.V1Deployment).spec?.replicas, 2);
    assert.equal((worker as unknown as k8s.V1Deployment).spec?.replicas, 2);
    const c = podSpec(controller).containers[0];
    const w = podSpec(worker).containers[0];
    assert.ok(c && w);
    assert.equal(c.image, 'ghcr.io/mapleakprobe/mapleakprobe:0.1.0');
    const limits = [
      '--max-profile-bytes', '64Mi', '--max-inflated-bytes', '256Mi', '--max-compression-ratio', '50', '--max-decode-time', '5s', '--max-request-timeout', '30s',
      '--max-symbol-requests', '64', '--max-symbol-answer-bytes', '1Mi', '--max-debug1-bytes', '32Mi', '--min-debug1-interval', '10m', '--max-capture-time', '90s',
      '--max-inflight-bytes', '192Mi', '--max-knowledge-bytes', '128Mi', '--max-knowledge-bytes-per-namespace', '32Mi', '--max-targets-per-probe', '50', '--max-probes-per-namespace', '20', '--min-interval', '30s',
      '--max-window', '24', '--max-redis-bytes-per-target', '128Mi', '--max-redis-bytes-per-namespace', '100663296', '--max-stored-profile-bytes', '8Mi', '--max-usages-per-capture', '1000', '--max-summary-bytes', '2Mi', '--max-events-per-round', '5', '--max-incidents', '10', '--incident-retention', '168h',
      '--max-trigger-follows', '50', '--min-trigger-interval', '1m', '--trigger-poll-interval', '5s', '--max-findings', '20',
      '--max-remote-pod-watches', '100', '--max-remote-pod-watch-time', '15m', '--max-remote-pod-watch-bytes', '4Mi',
    ];
    assert.deepEqual(c.args, ['operator', '--role', 'controller', '--port', '8080', '--resync-interval', '60s', '--lease-name', 'mapleakprobe-controller', ...limits, '--shutdown-timeout', '25s']);
    assert.deepEqual(w.args, ['operator', '--role', 'worker', '--port', '8080', '--concurrency', '4', '--target-concurrency', '4', ...limits, '--shutdown-timeout', '25s']);
    // Every flag the chart passes is one the operator parses.
    assert.doesNotThrow(() => operatorConfig((w.args ?? []).slice(1)));
    assert.doesNotThrow(() => operatorConfig((c.args ?? []).slice(1)));
    for (const d of [controller, worker]) {
      const env = envOf(d);
      assert.equal(env.get('POD_NAMESPACE')?.valueFrom?.fieldRef?.fieldPath, 'metadata.namespace');
      assert.equal(env.get('POD_NAME')?.valueFrom?.fieldRef?.fieldPath, 'metadata.name');
      assert.equal(env.get('REDIS_URL')?.value, 'redis://mapleakprobe-redis:6379');
      assert.deepEqual(env.get('REDIS_PASSWORD')?.valueFrom?.secretKeyRef, { name: 'mapleakprobe-redis', key: 'redis-password' });
      assert.equal(env.get('LOG_LEVEL')?.value, 'info');
      const container = podSpec(d).containers[0];
      assert.deepEqual(container?.ports, [{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
      assert.equal(container?.livenessProbe?.httpGet?.path, '/healthz');
      assert.equal(container?.readinessProbe?.httpGet?.path, '/readyz');
      assert.equal(container?.livenessProbe?.httpGet?.port, 'http');
      assert.equal(container?.securityContext?.readOnlyRootFilesystem, true);
      assert.equal(container?.securityContext?.allowPrivilegeEscalation, false);
      assert.deepEqual(container?.securityContext?.capabilities?.drop, ['ALL']);
      assert.equal(podSpec(d).securityContext?.runAsUser, 65532);
      assert.equal(podSpec(d).securityContext?.runAsNonRoot, true);
      assert.equal(podSpec(d).securityContext?.seccompProfile?.type, 'RuntimeDefault');
      assert.ok(podSpec(d).volumes?.some((v) => v.name === 'tmp' && v.emptyDir), '/tmp emptyDir');
      assert.equal(podSpec(d).terminationGracePeriodSeconds, 30);
    }
    // Each namespace's share of the worker slots: by default the operator's own (half of its --concurrency), else the value.
    assert.equal(operatorConfig((w.args ?? []).slice(1)).maxActiveRoundsPerNamespace, 2);
    const shared = await template(['--set', 'limits.maxActiveRoundsPerNamespace=3']);
    const sharedArgs = podSpec(find(shared, 'Deployment', 'mapleakprobe-worker')).containers[0]?.args ?? [];
    assert.equal(sharedArgs[sharedArgs.indexOf('--max-active-rounds-per-namespace') + 1], '3');
    assert.equal(operatorConfig(sharedArgs.slice(1)).maxActiveRoundsPerNamespace, 3);
    // One value: the operator's own deadline follows the grace period, 5 s inside it.
    const longGrace = await template(['--set', 'terminationGracePeriodSeconds=90']);
    for (const name of ['mapleakprobe-controller', 'mapleakprobe-worker']) {
      const spec = podSpec(find(longGrace, 'Deployment', name));
      assert.equal(spec.terminationGracePeriodSeconds, 90);
      const args = spec.containers[0]?.args ?? [];
      assert.equal(args[args.indexOf('--shutdown-timeout') + 1], '85s');
      assert.equal(operatorConfig(args.slice(1)).shutdownTimeoutMs, 85_000);
    }
    const tooShort = await helm(['template', RELEASE, CHART, '--set', 'terminationGracePeriodSeconds=5'], { allowFailure: true });
    assert.notEqual(tooShort.code, 0);
    assert.match(tooShort.stderr, /terminationGracePeriodSeconds/);
    const noElection = await template(['--set', 'controller.leaderElection.enabled=false,controller.replicas=1']);
    assert.ok(podSpec(find(noElection, 'Deployment', 'mapleakprobe-controller')).containers[0]?.args?.includes('--no-leader-elect'));
    const service = find(objects, 'Service', 'mapleakprobe') as unknown as k8s.V1Service;
    assert.deepEqual(service.spec?.selector, { 'app.kubernetes.io/name': 'mapleakprobe', 'app.kubernetes.io/instance': RELEASE });
    assert.deepEqual(service.spec?.ports, [{ name: 'http', port: 8080, targetPort: 'http', protocol: 'TCP' }]);
  });

  test('Redis password: deterministic offline; from a value; from an existing Secret; external Redis', async () => {
    const first = await helm(['template', RELEASE, CHART, '-n', NAMESPACE, '--kube-version', KUBE_VERSION]);
    const second = await helm(['template', RELEASE, CHART, '-n', NAMESPACE, '--kube-version', KUBE_VERSION]);
    assert.equal(first.stdout, second.stdout, 'helm template renders the same output every time');
    const defaults = parseYaml(first.stdout);
    assert.ok(!defaults.some((o) => o.kind === 'Secret'), 'offline, no Secret (and no random password) is rendered');
    const redis = find(defaults, 'StatefulSet', 'mapleakprobe-redis') as unknown as k8s.V1StatefulSet;
    const container = redis.spec?.template.spec?.containers[0];
    assert.equal(container?.image, 'redis:7.4-alpine');
    assert.match(container?.args?.[0] ?? '', /--appendonly yes --maxmemory-policy noeviction/);
    assert.match(container?.args?.[0] ?? '', /--requirepass "\$REDIS_PASSWORD"/);
    assert.equal(redis.spec?.volumeClaimTemplates?.[0]?.spec?.resources?.requests?.storage, '2Gi');

    const withPassword = await template(['--set', 'redis.auth.password=s3cret']);
    const secret = find(withPassword, 'Secret', 'mapleakprobe-redis') as unknown as k8s.V1Secret;
    assert.equal(Buffer.from(secret.data?.['redis-password'] ?? '', 'base64').toString(), 's3cret');

    const existing = await template(['--set', 'redis.auth.existingSecret=my-redis,redis.auth.existingSecretKey=pw']);
    assert.ok(!existing.some((o) => o.kind === 'Secret'));
    assert.deepEqual(envOf(find(existing, 'Deployment', 'mapleakprobe-worker')).get('REDIS_PASSWORD')?.valueFrom?.secretKeyRef, { name: 'my-redis', key: 'pw' });

    const external = await template(['--set', 'redis.mode=external,redis.external.maxmemory=4gb,redis.external.url=rediss://redis.example:6380/2,redis.external.existingSecret=ext,redis.external.existingSecretKey=password']);
    assert.ok(!external.some((o) => o.kind === 'StatefulSet' || o.kind === 'Secret' || o.metadata?.name === 'mapleakprobe-redis'));
    const env = envOf(find(external, 'Deployment', 'mapleakprobe-controller'));
    assert.equal(env.get('REDIS_URL')?.value, 'rediss://redis.example:6380/2');
    assert.deepEqual(env.get('REDIS_PASSWORD')?.valueFrom?.secretKeyRef, { name: 'ext', key: 'password' });
    const noPassword = await template(['--set', 'redis.mode=external,redis.external.maxmemory=4gb,redis.external.url=redis://redis.example:6379']);
    assert.ok(!envOf(find(noPassword, 'Deployment', 'mapleakprobe-controller')).has('REDIS_PASSWORD'));
  });

  test('Redis Sentinel and Redis Cluster: the operator gets the addresses, the mode is the one the operator parses, passwords come from Secrets', async () => {
    const sentinel = await template(['--set', SENTINEL_VALUES]);
    assert.ok(!sentinel.some((o) => o.kind === 'StatefulSet'), 'no bundled Redis');
    for (const name of ['mapleakprobe-controller', 'mapleakprobe-worker']) {
      const env = envOf(find(sentinel, 'Deployment', name));
      assert.equal(env.has('REDIS_URL'), false);
      assert.equal(env.get('REDIS_SENTINELS')?.value, 'sentinel-0.redis:26379,sentinel-1.redis:26379,sentinel-2.redis:26379');
      assert.equal(env.get('REDIS_SENTINEL_MASTER')?.value, 'mymaster');
      assert.equal(env.get('REDIS_TLS')?.value, 'true');
      assert.deepEqual(env.get('REDIS_PASSWORD')?.valueFrom?.secretKeyRef, { name: 'redis-auth', key: 'redis-password' });
      assert.deepEqual(env.get('REDIS_SENTINEL_PASSWORD')?.valueFrom?.secretKeyRef, { name: 'sentinel-auth', key: 'sentinel-password' });
      const parsed = operatorConfig([], { REDIS_SENTINELS: env.get('REDIS_SENTINELS')?.value, REDIS_SENTINEL_MASTER: env.get('REDIS_SENTINEL_MASTER')?.value, REDIS_TLS: env.get('REDIS_TLS')?.value });
      assert.equal(parsed.redis.mode, 'sentinel');
    }
    const policy = find(sentinel, 'NetworkPolicy', 'mapleakprobe') as unknown as k8s.V1NetworkPolicy;
    const redisPorts = policy.spec?.egress?.map((rule) => (rule.ports ?? []).map((p) => p.port)).find((ports) => ports.includes(6379));
    assert.deepEqual(redisPorts, [6379, 26379], 'egress to the sentinels too');

    const cluster = await template(['--set', 'redis.mode=external,redis.external.maxmemory=4gb,redis.external.cluster.nodes={redis-0.redis:6379,redis-1.redis:6379},redis.external.existingSecret=redis-auth']);
    const env = envOf(find(cluster, 'Deployment', 'mapleakprobe-worker'));
    assert.equal(env.get('REDIS_CLUSTER_NODES')?.value, 'redis-0.redis:6379,redis-1.redis:6379');
    assert.equal(env.has('REDIS_URL') || env.has('REDIS_SENTINELS') || env.has('REDIS_TLS') || env.has('REDIS_SENTINEL_PASSWORD'), false);
    assert.equal(operatorConfig([], { REDIS_CLUSTER_NODES: env.get('REDIS_CLUSTER_NODES')?.value }).redis.mode, 'cluster');
  });

  test('bundled Redis: maxmemory with noeviction by default, and an alert before it is full', async () => {
    const defaults = await template();
    const args = (find(defaults, 'StatefulSet', 'mapleakprobe-redis') as unknown as k8s.V1StatefulSet).spec?.template.spec?.containers[0]?.args?.[0] ?? '';
    assert.match(args, /--maxmemory-policy noeviction --maxmemory 768mb/);
    const rule = find(await template(['--set', 'metrics.prometheusRule.enabled=true,metrics.prometheusRule.redisMemoryRatio=0.9']), 'PrometheusRule', 'mapleakprobe') as Obj & {
      spec: { groups: { rules: { alert: string; expr: string; for: string }[] }[] };
    };
    const alert = rule.spec.groups.flatMap((g) => g.rules).find((r) => r.alert === 'MapLeakProbeRedisNearMaxmemory');
    assert.equal(alert?.expr, 'max by (node) (mapleak_redis_used_memory_bytes) / max by (node) (mapleak_redis_maxmemory_bytes > 0) > 0.9');
    assert.equal(alert?.for, '5m');
    const source = readFileSync(repoPath('src', 'queue', 'redis-metrics.ts'), 'utf8');
    for (const name of ['mapleak_redis_used_memory_bytes', 'mapleak_redis_maxmemory_bytes', 'mapleak_redis_capture_bytes']) assert.ok(source.includes(`'${name}'`), `${name} is exported by the operator`);
    const badRatio = await helm(['template', RELEASE, CHART, '--kube-version', KUBE_VERSION, '--set', 'metrics.prometheusRule.redisMemoryRatio=1.5'], { allowFailure: true });
    assert.notEqual(badRatio.code, 0, 'the ratio is a fraction');
  });

  test('monitoring: ServiceMonitor, PrometheusRule alerts, Grafana dashboard', async () => {
    const objects = await template(['-f', ALL_FEATURES]);
    type Endpoint = { port: string; path: string; bearerTokenFile?: string; authorization?: unknown };
    const monitor = find(objects, 'ServiceMonitor', 'mapleakprobe') as Obj & { spec: { endpoints: Endpoint[] } };
    assert.equal(monitor.apiVersion, 'monitoring.coreos.com/v1');
    assert.deepEqual(monitor.spec.endpoints.map((e) => [e.port, e.path]), [['http', '/metrics']]);
    // /metrics needs a bearer token: a Secret's (all-features), or else Prometheus's own ServiceAccount token.
    assert.deepEqual(monitor.spec.endpoints[0]?.authorization, { type: 'Bearer', credentials: { name: 'prometheus-scrape-token', key: 'token' } });
    const ownToken = find(await template(['--set', 'metrics.serviceMonitor.enabled=true']), 'ServiceMonitor', 'mapleakprobe') as Obj & { spec: { endpoints: Endpoint[] } };
    assert.equal(ownToken.spec.endpoints[0]?.bearerTokenFile, '/var/run/secrets/kubernetes.io/serviceaccount/token');
    assert.equal(ownToken.spec.endpoints[0]?.authorization, undefined);
    assert.equal(monitor.metadata?.labels?.release, 'kube-prometheus-stack');
    const rule = find(objects, 'PrometheusRule', 'mapleakprobe') as Obj & { spec: { groups: { rules: { alert: string; expr: string }[] }[] } };
    const exprs = Object.fromEntries(rule.spec.groups.flatMap((g) => g.rules).map((r) => [r.alert, r.expr]));
    assert.match(exprs.MapLeakProbeLeaking ?? '', /mapleak_probe_verdict\{verdict="Leaking"\}\) == 1/);
    assert.match(exprs.MapLeakProbeRetaining ?? '', /mapleak_probe_verdict\{verdict="Retaining"\}\) == 1/);
    assert.match(exprs.MapLeakProbeCapturesFailing ?? '', /rate\(mapleak_captures_total\{result!="ok"\}\[15m\]\)\) > 0/);

    const dashboardFile = readFileSync(join(CHART, 'dashboards', 'mapleakprobe.json'), 'utf8');
    const dashboard = JSON.parse(dashboardFile) as { panels: { title: string; targets: { expr: string }[] }[] };
    const exprsOf = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)).join('\n');
    for (const metric of ['mapleak_captures_total', 'mapleak_capture_duration_seconds_bucket', 'mapleak_queue_jobs', 'mapleak_map_inuse_bytes', 'mapleak_probe_verdict', 'mapleak_reconcile_errors_total']) {
      assert.ok(exprsOf.includes(metric), `the dashboard charts ${metric}`);
    }
    const configMap = find(objects, 'ConfigMap', 'mapleakprobe-dashboard') as unknown as k8s.V1ConfigMap;
    assert.equal(configMap.metadata?.labels?.grafana_dashboard, '1');
    assert.equal(configMap.data?.['mapleakprobe.json'], dashboardFile.trimEnd());

    const defaults = await template();
    for (const kind of ['ServiceMonitor', 'PrometheusRule', 'ConfigMap', 'PodDisruptionBudget']) {
      assert.ok(!defaults.some((o) => o.kind === kind), `${kind} is off by default`);
    }
  });

  test('NetworkPolicy is on by default and admits only the release namespace and the peers the admin lists', async () => {
    // As rendered YAML (the client's V1NetworkPolicy types call `from` `_from`).
    type Peer = Record<string, unknown>;
    type Policy = { spec?: { policyTypes?: string[]; ingress?: { from?: Peer[] }[]; egress?: { to?: Peer[]; ports?: { port?: number | string }[] }[] } };
    const operatorPolicy = (objects: Obj[]): Policy => find(objects, 'NetworkPolicy', 'mapleakprobe') as unknown as Policy;
    const defaults = operatorPolicy(await template());
    assert.deepEqual(defaults.spec?.policyTypes, ['Ingress', 'Egress']);
    assert.deepEqual(defaults.spec?.ingress?.map((r) => r.from), [[{ podSelector: {} }]], 'ingress only from pods of the release namespace');
    const egressPorts = (defaults.spec?.egress ?? []).flatMap((r) => (r.ports ?? []).map((p) => p.port));
    assert.ok(!egressPorts.includes(6060), 'no Direct pprof egress unless namespaces are listed');

    const listed = operatorPolicy(await template(['--set', 'networkPolicy.directTargetNamespaces={shop},networkPolicy.ingressFrom[0].namespaceSelector.matchLabels.team=monitoring']));
    assert.deepEqual(listed.spec?.ingress?.[0]?.from, [{ podSelector: {} }, { namespaceSelector: { matchLabels: { team: 'monitoring' } } }]);
    const pprofRule = listed.spec?.egress?.find((r) => r.ports?.some((p) => p.port === 6060));
    assert.deepEqual(pprofRule?.to, [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'shop' } }, podSelector: {} }]);
  });

  test('remoteClusters.cidrs and podCidrs are the one source for the worker\'s allowlists and the NetworkPolicy egress to remote clusters', async () => {
    type Rule = { to?: { ipBlock?: { cidr: string } }[]; ports?: { port?: number | string }[] };
    const egress = (objects: Obj[]): Rule[] => (find(objects, 'NetworkPolicy', 'mapleakprobe') as unknown as { spec: { egress: Rule[] } }).spec.egress;
    const ipRules = (objects: Obj[]): { cidrs: string[]; ports: (number | string | undefined)[] }[] =>
      egress(objects)
        .filter((r) => r.to?.some((peer) => peer.ipBlock))
        .map((r) => ({ cidrs: (r.to ?? []).map((peer) => peer.ipBlock?.cidr ?? '?'), ports: (r.ports ?? []).map((p) => p.port) }));
    const workerArgs = (objects: Obj[]): string[] => podSpec(find(objects, 'Deployment', 'mapleakprobe-worker')).containers[0]?.args ?? [];
    const flag = (args: string[], name: string): string | undefined => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);

    // Off by default: no flag, no rule (the worker then dials no remote server at all).
    const defaults = await template();
    assert.equal(flag(workerArgs(defaults), '--remote-cluster-cidrs'), undefined);
    assert.deepEqual(ipRules(defaults), []);
    // Enabled without addresses: still no flag and no rule (spec.cluster stays disabled, RemoteClusterNotAllowed).
    assert.deepEqual(ipRules(await template(['--set', 'remoteClusters.kubeconfigSecretNamespaces={team-a}'])), []);

    const cidrs = ['203.0.113.0/24', '2001:db8:10::/48'];
    const enabled = await template(['--set', `remoteClusters.kubeconfigSecretNamespaces={team-a},remoteClusters.cidrs={${cidrs.join(',')}}`]);
    assert.equal(flag(workerArgs(enabled), '--remote-cluster-cidrs'), cidrs.join(','), 'the worker checks every dial against the list');
    assert.equal(flag(workerArgs(enabled), '--remote-pod-cidrs'), undefined);
    assert.deepEqual(ipRules(enabled), [{ cidrs, ports: [443, 6443] }], 'the NetworkPolicy opens exactly those addresses, on the API server ports');
    assert.equal(flag(podSpec(find(enabled, 'Deployment', 'mapleakprobe-controller')).containers[0]?.args ?? [], '--remote-cluster-cidrs'), undefined, 'the controller dials no remote cluster');

    const direct = await template(['--set', `remoteClusters.kubeconfigSecretNamespaces={team-a},remoteClusters.cidrs={${cidrs.join(',')}},remoteClusters.allowDirect=true,remoteClusters.podCidrs={10.8.0.0/14}`]);
    assert.ok(workerArgs(direct).includes('--allow-remote-direct'));
    assert.equal(flag(workerArgs(direct), '--remote-pod-cidrs'), '10.8.0.0/14');
    assert.deepEqual(ipRules(direct), [{ cidrs, ports: [443, 6443] }, { cidrs: ['10.8.0.0/14'], ports: [6060] }], 'remote pods: the listed pod network, on the pprof ports');
    // The rendered flag is one the operator parses into the same list.
    const parsed = operatorConfig(workerArgs(direct).slice(1));
    assert.deepEqual([parsed.remoteClusterCidrs, parsed.remotePodCidrs], [cidrs, ['10.8.0.0/14']]);

    // Not a CIDR: refused by the chart's schema before anything renders.
    const bad = await helm(['template', RELEASE, CHART, '--set', 'remoteClusters.cidrs={10.0.0.0/8;rm}'], { allowFailure: true });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /remoteClusters\/cidrs\/0/);
  });

  test('metric names used by the chart exist in src/observability/metrics.ts', () => {
    const source = readFileSync(repoPath('src', 'observability', 'metrics.ts'), 'utf8');
    for (const name of ['mapleak_captures_total', 'mapleak_capture_duration_seconds', 'mapleak_queue_jobs', 'mapleak_map_inuse_bytes', 'mapleak_probe_verdict', 'mapleak_reconcile_errors_total', 'mapleak_reconciles_total', 'mapleak_leader']) {
      assert.ok(source.includes(`'${name}'`), `${name} is exported by the operator`);
    }
  });
});

describe('chart: against the API server', () => {
  test('every rendered object passes a server-side dry run (default, every feature, external Redis)', async () => {
    await applyManifestFile(kc, repoPath('test', 'chart', 'fixtures', 'monitoring-crds.yaml'));
    await waitForCrdsEstablished(kc, ['servicemonitors.monitoring.coreos.com', 'prometheusrules.monitoring.coreos.com']);
    await serverSideApply({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: DRY_RUN_NAMESPACE, labels: { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' } },
    });
    const variants: string[][] = [
      [],
      ['-f', ALL_FEATURES],
      ['--set', 'redis.mode=external,redis.external.maxmemory=4gb,redis.external.url=redis://redis.example:6379,redis.external.existingSecret=ext,networkPolicy.enabled=true'],
      ['--set', SENTINEL_VALUES],
      ['--set', 'redis.bundled.persistence.enabled=false,controller.replicas=1,controller.leaderElection.enabled=false'],
      ['--set', 'metrics.serviceMonitor.enabled=true'],
    ];
    for (const extra of variants) {
      const objects = await template(extra, DRY_RUN_NAMESPACE);
      await dryRunApply(objects);
      await dryRunPods(objects, DRY_RUN_NAMESPACE);
    }
    // The CRD itself, as manifests/ and helm install apply it.
    await dryRunApply(parseYaml(readFileSync(join(CHART, 'crds', 'mapleakprobes.yaml'), 'utf8')));
  });

  test('the pod check catches a non-compliant pod (PodSecurity restricted is enforced)', async () => {
    const [worker] = (await template([], DRY_RUN_NAMESPACE)).filter((o) => o.kind === 'Deployment');
    assert.ok(worker);
    const spec = podSpec(worker);
    const container = spec.containers[0];
    assert.ok(container);
    container.securityContext = { ...container.securityContext, allowPrivilegeEscalation: true };
    await assert.rejects(dryRunPods([worker], DRY_RUN_NAMESPACE), /restricted/);
  });

  test('helm install, then helm upgrade (worker replicas) into namespace mapleakprobe', async () => {
    const c = requireCluster();
    const kube = ['--kubeconfig', c.kubeconfigPath, '--namespace', NAMESPACE];
    const install = await helm(['install', RELEASE, CHART, ...kube, '--create-namespace']);
    assert.match(install.stdout, /STATUS: deployed/);
    assert.match(install.stdout, /kubectl get mlp -A/, 'NOTES.txt tells what to do next');
    assert.match(install.stdout, /port-forward svc\/mapleakprobe 8080:8080/);

    // helm installed the CRD from the chart's crds/.
    await waitForCrdsEstablished(kc, ['mapleakprobes.mapleak.io']);
    const probe = await client.create({
      apiVersion: 'mapleak.io/v1alpha1',
      kind: 'MapLeakProbe',
      metadata: { name: 'chart-example', namespace: 'default' },
      spec: { selector: { matchLabels: { app: 'example' } }, schedule: { interval: '2m' } },
    });
    assert.equal(probe.metadata?.name, 'chart-example');

    const deployment = (name: string) => readObject<k8s.V1Deployment>('apps/v1', 'Deployment', name, NAMESPACE);
    assert.equal((await deployment('mapleakprobe-controller'))?.spec?.replicas, 2);
    assert.equal((await deployment('mapleakprobe-worker'))?.spec?.replicas, 2);
    assert.ok(await readObject('apps/v1', 'StatefulSet', 'mapleakprobe-redis', NAMESPACE));
    const password = await redisPassword();
    assert.match(password, /^[A-Za-z0-9]{32}$/, 'helm install generated a password');

    // The bound roles give exactly the expected access (SubjectAccessReview).
    const expectations: [string, k8s.V1ResourceAttributes, boolean][] = [
      ['mapleakprobe-controller', { group: 'mapleak.io', resource: 'mapleakprobes', verb: 'watch' }, true],
      ['mapleakprobe-controller', { group: 'mapleak.io', resource: 'mapleakprobes', verb: 'patch', namespace: 'shop' }, true],
      ['mapleakprobe-controller', { group: 'mapleak.io', resource: 'mapleakprobes', subresource: 'status', verb: 'patch', namespace: 'shop' }, true],
      ['mapleakprobe-controller', { group: 'coordination.k8s.io', resource: 'leases', verb: 'update', namespace: NAMESPACE }, true],
      ['mapleakprobe-controller', { group: 'coordination.k8s.io', resource: 'leases', verb: 'update', namespace: 'default' }, false],
      ['mapleakprobe-controller', { group: 'mapleak.io', resource: 'mapleakprobes', verb: 'delete', namespace: 'shop' }, false],
      ['mapleakprobe-controller', { resource: 'pods', verb: 'watch', namespace: 'shop' }, true],
      ['mapleakprobe-controller', { resource: 'pods', verb: 'get', namespace: 'shop' }, false],
      ['mapleakprobe-controller', { resource: 'pods', subresource: 'proxy', verb: 'get', namespace: 'shop' }, false],
      ['mapleakprobe-worker', { resource: 'pods', subresource: 'proxy', verb: 'get', namespace: 'shop' }, true],
      ['mapleakprobe-worker', { resource: 'pods', subresource: 'proxy', verb: 'create', namespace: 'shop' }, false],
      ['mapleakprobe-controller', { group: 'authentication.k8s.io', resource: 'tokenreviews', verb: 'create' }, true],
      ['mapleakprobe-controller', { group: 'authorization.k8s.io', resource: 'subjectaccessreviews', verb: 'create' }, true],
      ['mapleakprobe-worker', { group: 'authentication.k8s.io', resource: 'tokenreviews', verb: 'create' }, true],
      ['mapleakprobe-worker', { group: 'authorization.k8s.io', resource: 'subjectaccessreviews', verb: 'create' }, true],
      ['mapleakprobe-worker', { group: 'mapleak.io', resource: 'mapleakprobes', subresource: 'profiles', verb: 'get', namespace: 'shop' }, false],
      ['mapleakprobe-worker', { resource: 'pods', subresource: 'log', verb: 'get', namespace: 'shop' }, true],
      ['mapleakprobe-worker', { resource: 'events', verb: 'create', namespace: 'shop' }, true],
      ['mapleakprobe-worker', { resource: 'secrets', verb: 'get', namespace: 'shop' }, false],
      ['mapleakprobe-worker', { resource: 'secrets', verb: 'list', namespace: 'shop' }, false],
      ['mapleakprobe-worker', { resource: 'pods', verb: 'get', namespace: 'shop' }, false],
      ['mapleakprobe-worker', { resource: 'pods', verb: 'delete', namespace: 'shop' }, false],
      ['mapleakprobe-worker', { group: 'mapleak.io', resource: 'mapleakprobes', verb: 'patch', namespace: 'shop' }, false],
      ['mapleakprobe-worker', { group: 'coordination.k8s.io', resource: 'leases', verb: 'get', namespace: NAMESPACE }, false],
    ];
    for (const [sa, attributes, allowed] of expectations) {
      assert.equal(await can(sa, attributes), allowed, `${sa} ${attributes.verb} ${attributes.resource}${attributes.subresource ? `/${attributes.subresource}` : ''} in ${attributes.namespace ?? 'all namespaces'}`);
    }

    const upgrade = await helm(['upgrade', RELEASE, CHART, ...kube, '--set', 'worker.replicas=3,remoteClusters.kubeconfigSecretNamespaces={default}']);
    assert.match(upgrade.stdout, /REVISION: 2/);
    assert.equal((await deployment('mapleakprobe-worker'))?.spec?.replicas, 3);
    assert.equal((await deployment('mapleakprobe-controller'))?.spec?.replicas, 2);
    assert.equal(await redisPassword(), password, 'the generated password survives helm upgrade');
    assert.equal(await can('mapleakprobe-worker', { resource: 'secrets', verb: 'get', namespace: 'default' }), true, 'a listed namespace grants Secret reads there');
    assert.equal(await can('mapleakprobe-worker', { resource: 'secrets', verb: 'get', namespace: 'shop' }), false, 'and nowhere else');

    const again = await helm(['upgrade', RELEASE, CHART, ...kube, '--reuse-values']);
    assert.match(again.stdout, /REVISION: 3/);
    assert.equal(await redisPassword(), password, 'and a second upgrade');
    assert.equal((await deployment('mapleakprobe-worker'))?.spec?.replicas, 3);
    await client.delete({ apiVersion: 'mapleak.io/v1alpha1', kind: 'MapLeakProbe', metadata: { name: 'chart-example', namespace: 'default' } });
  });

  test('kubectl apply -f manifests/ (server-side apply of every object, in file order) after helm uninstall', async () => {
    const c = requireCluster();
    await helm(['uninstall', RELEASE, '--kubeconfig', c.kubeconfigPath, '--namespace', NAMESPACE]);
    await waitFor(
      'helm uninstall to remove the release objects',
      async () => !(await readObject('apps/v1', 'Deployment', 'mapleakprobe-worker', NAMESPACE)) && !(await readObject('v1', 'Secret', `${RELEASE}-redis`, NAMESPACE)),
      30_000,
    );
    // The documented first step: the Redis password Secret.
    await serverSideApply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `${RELEASE}-redis`, namespace: NAMESPACE },
      stringData: { 'redis-password': 'from-the-docs' },
    });
    const files = readdirSync(repoPath('manifests')).sort();
    for (let round = 0; round < 2; round++) {
      for (const file of files) {
        const objects = parseYaml(readFileSync(repoPath('manifests', file), 'utf8'));
        assert.ok(objects.length > 0, `${file} holds objects`);
        for (const object of objects) await serverSideApply(object);
      }
    }
    const ns = await readObject<k8s.V1Namespace>('v1', 'Namespace', NAMESPACE);
    assert.equal(ns?.metadata?.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
    const objects = parseYaml(readFileSync(repoPath('manifests', '02-mapleakprobe.yaml'), 'utf8'));
    for (const o of objects) {
      assert.ok(await readObject(o.apiVersion ?? '', o.kind ?? '', o.metadata?.name ?? '', o.metadata?.namespace), `${o.kind} ${o.metadata?.name} exists`);
    }
    assert.equal((await readObject<k8s.V1Deployment>('apps/v1', 'Deployment', 'mapleakprobe-worker', NAMESPACE))?.spec?.replicas, 2);
    await dryRunPods(objects, NAMESPACE);
  });
});

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api, KubernetesObjectApi, loadAllYaml, type KubernetesObject } from '@kubernetes/client-node';
import type { MapLeakProbe } from '../../src/api/types.js';
import { auditLogPath, loadKubeConfig, runPod, stopCluster, type Cluster } from '../cluster/cluster.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { spawnOperator, type OperatorProcess } from '../support/operator-process.js';
import { repoPath } from '../support/paths.js';
import { startClusterWithCrd, TestProbes } from '../support/probes.js';
import { bearer, bindClusterRole, ensureServiceAccount, serviceAccountToken, tokenKubeconfig } from '../support/tokens.js';
import { waitFor } from '../support/wait.js';
import { REMOTE_CLUSTER_LABEL } from '../../src/clusters/registry.js';

const CLUSTER = 'rbac';
const RELEASE_NS = 'mapleakprobe';

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs?: string[];
}
type Rbac = KubernetesObject & { rules?: PolicyRule[]; roleRef?: { kind: string; name: string }; subjects?: { kind: string; name: string; namespace?: string }[] };

/** "group/resource[/subresource]:verb" for each permission a set of rules grants. */
function expand(rules: readonly PolicyRule[]): Set<string> {
  const granted = new Set<string>();
  for (const rule of rules) for (const group of rule.apiGroups ?? ['']) for (const resource of rule.resources ?? []) for (const verb of rule.verbs ?? []) granted.add(`${group}/${resource}:${verb}`);
  return granted;
}

describe("the chart's RBAC is exactly what the operator uses", () => {
  let cluster: Cluster;
  let redis: RedisServer;
  const operators: OperatorProcess[] = [];
  let rendered: KubernetesObject[] = [];
  /** ServiceAccount name → the role flag of the Deployment that runs as it. */
  const roleOfAccount = new Map<string, string>();
  /** A user holding the chart's reader ClusterRoles (metrics, probe data and profiles in default). */
  let readerToken: string;

  before(async () => {
    let kc;
    ({ cluster, kc } = await startClusterWithCrd(CLUSTER));
    redis = await startRedis();
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: RELEASE_NS } } });

    const helm = join(cluster.binDir, 'helm');
    // spec.cluster enabled for default: the worker gets a Role for Secrets there (the chart's default is off).
    const yaml = execFileSync(helm, ['template', 'mapleakprobe', repoPath('charts', 'mapleakprobe'), '--namespace', RELEASE_NS, '--set', 'remoteClusters.kubeconfigSecretNamespaces={default}'], { encoding: 'utf8' });
    rendered = loadAllYaml(yaml).filter(Boolean) as KubernetesObject[];
    for (const object of rendered) {
      if (object.kind !== 'Deployment') continue;
      const spec = (object as { spec: { template: { spec: { serviceAccountName: string; containers: { args?: string[] }[] } } } }).spec.template.spec;
      const args = spec.containers.flatMap((c) => c.args ?? []);
      const role = args[args.indexOf('--role') + 1] ?? 'all';
      roleOfAccount.set(spec.serviceAccountName, role);
    }
    assert.deepEqual([...roleOfAccount.values()].sort(), ['controller', 'worker'], 'one ServiceAccount per component');

    const api = KubernetesObjectApi.makeApiClient(kc);
    for (const object of rendered.filter((o) => ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(o.kind ?? ''))) {
      await api.create(object);
    }

    // Targets: a leaking pod, and a probe that reads a kubeconfig Secret (spec.cluster).
    await runPod(cluster, { name: 'leaky', labels: { app: 'leaky' }, path: 'test/targets/leaky' });
    await core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 'self-kubeconfig', labels: { [REMOTE_CLUSTER_LABEL]: 'true' } }, stringData: { kubeconfig: readFileSync(cluster.kubeconfigPath, 'utf8') } } });

    const reader = { namespace: 'default', name: 'reader' };
    await ensureServiceAccount(kc, reader.namespace, reader.name);
    await bindClusterRole(kc, 'mapleakprobe-metrics-reader', reader);
    for (const role of ['mapleakprobe-viewer', 'mapleakprobe-profile-reader']) await bindClusterRole(kc, role, reader, 'default');
    readerToken = await serviceAccountToken(kc, reader.namespace, reader.name);

    const dir = mkdtempSync(join(tmpdir(), 'mapleak-rbac-'));
    for (const [account, role] of roleOfAccount) {
      const token = (await core.createNamespacedServiceAccountToken({ name: account, namespace: RELEASE_NS, body: { spec: { audiences: [], expirationSeconds: 3600 } } })).status?.token;
      assert.ok(token, `TokenRequest for ${account}`);
      const kubeconfig = tokenKubeconfig(cluster, kc, account, token, join(dir, `${role}.kubeconfig`));
      operators.push(await spawnOperator({ kubeconfig, redisUrl: redis.url, identity: `rbac-${role}`, leaseNamespace: RELEASE_NS, httpToken: readerToken, args: ['--role', role, '--kubeconfig-secret-namespaces', 'default', '--remote-cluster-cidrs', '127.0.0.1/32'] }));
    }
  });

  after(async () => {
    for (const op of operators) await op.kill('SIGTERM');
    await redis?.stop();
    await stopCluster(CLUSTER);
  });

  test('a full capture round works with tokens minted for the chart’s ServiceAccounts, and every granted permission is used', async () => {
    const probes = new TestProbes(loadKubeConfig(cluster));
    const create = (name: string, extra: Record<string, unknown>): Promise<unknown> => probes.create(name, { selector: { matchLabels: { app: 'leaky' } }, ...extra });
    const get = (name: string): Promise<MapLeakProbe | undefined> => probes.get(name);
    const diagnostics = (): string => operators.map((o) => `--- ${o.identity}\n${o.output().slice(-3000)}`).join('\n');

    await create('local', {});
    await create('via-secret', { cluster: { kubeconfigSecretRef: { name: 'self-kubeconfig' }, namespace: 'default' } });
    await waitFor('local probe Leaking', async () => (await get('local'))?.status?.verdict === 'Leaking', 120_000, 1000).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
    await waitFor('via-secret probe captured', async () => ((await get('via-secret'))?.status?.targets?.[0]?.captures ?? 0) >= 1, 60_000, 1000).catch((err: Error) =>
      assert.fail(`${err.message}\n${diagnostics()}`),
    );
    // Both components serve the JSON API: an authenticated, authorised read from each.
    for (const op of operators) {
      const base = `http://127.0.0.1:${op.port}/api/v1/namespaces/default/mapleakprobes/local`;
      const detail = await fetch(base, { headers: bearer(readerToken) });
      assert.equal(detail.status, 200, `${op.identity}: probe data`);
      const captureId = ((await detail.json()) as { targets: { captures: { id: string }[] }[] }).targets[0]?.captures.at(-1)?.id;
      assert.ok(captureId, `${op.identity}: a capture listed`);
      assert.equal((await fetch(`${base}/captures/${captureId}/profile`, { headers: bearer(readerToken) })).status, 200, `${op.identity}: raw profile`);
    }
    await probes.delete('via-secret');
    await waitFor('finalizer removed by the controller', async () => (await get('via-secret')) === undefined, 30_000);
    // A few lease renewals.
    await new Promise((resolve) => setTimeout(resolve, 5000));

    const used = new Map<string, Set<string>>();
    const forbidden: string[] = [];
    for (const line of readFileSync(auditLogPath(cluster), 'utf8').split('\n')) {
      if (!line) continue;
      const event = JSON.parse(line) as { user: { username: string }; verb: string; objectRef?: { apiGroup?: string; resource?: string; subresource?: string }; responseStatus?: { code?: number }; requestURI: string };
      const prefix = `system:serviceaccount:${RELEASE_NS}:`;
      if (!event.user.username.startsWith(prefix) || !event.objectRef?.resource) continue;
      const account = event.user.username.slice(prefix.length);
      const permission = `${event.objectRef.apiGroup ?? ''}/${event.objectRef.resource}${event.objectRef.subresource ? `/${event.objectRef.subresource}` : ''}:${event.verb}`;
      if (event.responseStatus?.code === 403) forbidden.push(`${account} ${permission} ${event.requestURI}`);
      if (!used.has(account)) used.set(account, new Set());
      used.get(account)?.add(permission);
    }
    assert.deepEqual(forbidden, [], 'no request was forbidden');

    for (const [account, role] of roleOfAccount) {
      const bindings = rendered.filter((o) => (o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding') && (o as Rbac).subjects?.some((s) => s.kind === 'ServiceAccount' && s.name === account)) as Rbac[];
      const granted = new Set<string>();
      for (const binding of bindings) {
        const role = rendered.find((o) => o.kind === binding.roleRef?.kind && o.metadata?.name === binding.roleRef?.name) as Rbac | undefined;
        for (const permission of expand(role?.rules ?? [])) granted.add(permission);
      }
      const usedHere = used.get(account) ?? new Set();
      const unused = [...granted].filter((p) => !usedHere.has(p)).sort();
      const ungranted = [...usedHere].filter((p) => !granted.has(p)).sort();
      assert.deepEqual(ungranted, [], `${role}: used but not granted`);
      assert.deepEqual(unused, [], `${role}: granted but never used`);
    }
  });
});

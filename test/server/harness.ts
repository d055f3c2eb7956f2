// The operator's HTTP server as the chart deploys it, on a fresh local API
// server: the chart's ServiceAccounts and RBAC applied as helm renders them,
// the operator running as the chart's worker ServiceAccount (a token minted
// with TokenRequest, nothing else), and two team namespaces, each with a
// probe and one stored capture (a real Go 1.26 heap profile).
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubernetesObjectApi, loadAllYaml, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { Redis } from 'ioredis';
import { attributeProfile } from '../../src/analysis/attribute.js';
import { analyzeSeries } from '../../src/analysis/series.js';
import type { MapLeakProbe } from '../../src/api/types.js';
import { startOperator, type RunningOperator } from '../../src/cli/operator.js';
import { decodeHeapProfile } from '../../src/pprof/index.js';
import { SeriesStore } from '../../src/store/series-store.js';
import { stopCluster, type Cluster } from '../cluster/cluster.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { readFixture } from '../support/fixtures.js';
import { testOperatorConfig } from '../support/operator-config.js';
import { repoPath } from '../support/paths.js';
import { startClusterWithCrd, TestProbes } from '../support/probes.js';
import { serviceAccountToken, tokenKubeconfig } from '../support/tokens.js';

export const RELEASE_NS = 'mapleakprobe';
export const OPERATOR_ACCOUNT = 'mapleakprobe-worker';
export const TEAM_A = 'team-a';
export const TEAM_B = 'team-b';
export const PROBE = 'checkout';
export const CAPTURE_ID = 'c0ffee0123456789';

export const probePath = (namespace: string, name = PROBE): string => `/api/v1/namespaces/${namespace}/mapleakprobes/${name}`;
export const profilePath = (namespace: string): string => `${probePath(namespace)}/captures/${CAPTURE_ID}/profile`;

export interface AuthHarness {
  cluster: Cluster;
  kc: KubeConfig;
  redis: RedisServer;
  operator: RunningOperator;
  /** A temp dir for kubeconfigs. */
  dir: string;
  /** The stored profile's bytes (the same in both namespaces). */
  profileBytes: Buffer;
  /** The probes' uids: a leak of one shows in any answer that carries it. */
  probeUids: Record<string, string>;
  get(path: string, headers?: Record<string, string>): Promise<Response>;
  stop(): Promise<void>;
}

export async function startAuthHarness(clusterName: string): Promise<AuthHarness> {
  // A fresh API server: the assertions depend on which bindings exist.
  await stopCluster(clusterName);
  const { cluster, kc } = await startClusterWithCrd(clusterName);
  const redis = await startRedis();
  const core = kc.makeApiClient(CoreV1Api);
  for (const name of [RELEASE_NS, TEAM_A, TEAM_B]) await core.createNamespace({ body: { metadata: { name } } });

  const helm = join(cluster.binDir, 'helm');
  const yaml = execFileSync(helm, ['template', 'mapleakprobe', repoPath('charts', 'mapleakprobe'), '--namespace', RELEASE_NS], { encoding: 'utf8' });
  const api = KubernetesObjectApi.makeApiClient(kc);
  for (const object of (loadAllYaml(yaml) as KubernetesObject[]).filter((o) => ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(o?.kind ?? ''))) {
    await api.create(object);
  }

  const storeRedis = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  const store = new SeriesStore(storeRedis);
  const profileBytes = readFixture('go1.26', 'heap-008.pb.gz');
  const snapshot = { ...attributeProfile(decodeHeapProfile(profileBytes)), time: new Date() };
  const probeUids: Record<string, string> = {};
  for (const namespace of [TEAM_A, TEAM_B]) {
    const probe = (await new TestProbes(kc, namespace).create(PROBE, { selector: { matchLabels: { app: 'checkout' } } })) as MapLeakProbe;
    probeUids[namespace] = probe.metadata.uid ?? '';
    await store.recordTarget(`${namespace}/${PROBE}`, { name: 'checkout-0', namespace, uid: 'pod-uid-0', lastCaptureTime: snapshot.time.toISOString() }, 3600);
    await store.addCapture(`${namespace}/${PROBE}`, 'pod-uid-0', { id: CAPTURE_ID, snapshot, proto: profileBytes }, 12, 3600);
    // What the worker's round stores beside the series: the API serves it, never analysing on a request.
    await store.saveAnalysis(`${namespace}/${PROBE}`, 'pod-uid-0', analyzeSeries(await store.loadSeries(`${namespace}/${PROBE}`, 'pod-uid-0')), 3600);
  }

  const dir = mkdtempSync(join(tmpdir(), `mapleak-${clusterName}-`));
  const kubeconfig = tokenKubeconfig(cluster, kc, OPERATOR_ACCOUNT, await serviceAccountToken(kc, RELEASE_NS, OPERATOR_ACCOUNT), join(dir, 'worker.kubeconfig'));
  const operator = await startOperator(testOperatorConfig({ kubeconfigPath: kubeconfig }, redis.url, { role: 'worker', leaderElect: false, identity: `${clusterName}-operator` }));
  const base = `http://127.0.0.1:${operator.port}`;
  return {
    cluster,
    kc,
    redis,
    operator,
    dir,
    profileBytes,
    probeUids,
    get: (path, headers = {}) => fetch(base + path, { headers, signal: AbortSignal.timeout(20_000) }),
    stop: async () => {
      await operator.stop();
      storeRedis.disconnect();
      await redis.stop();
      await stopCluster(clusterName);
    },
  };
}

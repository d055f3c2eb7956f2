import { CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION, type Condition, type MapLeakProbe } from '../../src/api/types.js';
import { applyManifestFile, loadKubeConfig, startCluster, waitForCrdsEstablished, type Cluster } from '../cluster/cluster.js';
import { repoPath } from './paths.js';

/** A local cluster with the MapLeakProbe CRD installed and established. */
export async function startClusterWithCrd(name: string): Promise<{ cluster: Cluster; kc: KubeConfig }> {
  const cluster = await startCluster({ name });
  const kc = loadKubeConfig(cluster);
  await applyManifestFile(kc, repoPath('crds', 'mapleakprobes.yaml'));
  await waitForCrdsEstablished(kc, ['mapleakprobes.mapleak.io']);
  return { cluster, kc };
}

/** MapLeakProbes in one namespace, as a test (a user) creates and reads them. */
export class TestProbes {
  private readonly custom: CustomObjectsApi;

  constructor(
    kc: KubeConfig,
    readonly namespace = 'default',
  ) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
  }

  /** Creates a probe; `spec` is merged over a 5 s schedule. */
  create(name: string, spec: Record<string, unknown>): Promise<unknown> {
    return this.createObject({
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'MapLeakProbe',
      metadata: { name, namespace: this.namespace },
      spec: { schedule: { interval: '5s' }, ...spec },
    });
  }

  createObject(body: object): Promise<unknown> {
    return this.custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: this.namespace, plural: PLURAL, body });
  }

  async get(name: string): Promise<MapLeakProbe | undefined> {
    try {
      return (await this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: this.namespace, plural: PLURAL, name })) as MapLeakProbe;
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  }

  patchSpec(name: string, spec: Record<string, unknown>): Promise<unknown> {
    return this.custom.patchNamespacedCustomObject(
      { group: GROUP, version: VERSION, namespace: this.namespace, plural: PLURAL, name, body: { spec } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  delete(name: string): Promise<unknown> {
    return this.custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: this.namespace, plural: PLURAL, name });
  }
}

export function condition(probe: MapLeakProbe | undefined, type: string): Condition | undefined {
  return probe?.status?.conditions?.find((c) => c.type === type);
}

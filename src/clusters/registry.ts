import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { MapLeakProbe } from '../api/types.js';
import { reuseConnections } from './keep-alive.js';
import { kubeHttp, type KubeHttp } from './kube-http.js';

/** Where a probe's targets live: the operator's own cluster or one named by a kubeconfig Secret. */
export interface TargetCluster {
  /** "local" or "secret:ns/name/key@resourceVersion". */
  id: string;
  core: CoreV1Api;
  http: KubeHttp;
  /** Namespace the probe's selector applies in. */
  namespace: string;
}

export class ClusterConfigError extends Error {
  override readonly name = 'ClusterConfigError';
  constructor(
    readonly reason: 'KubeconfigSecretNotFound' | 'KubeconfigInvalid',
    message: string,
  ) {
    super(message);
  }
}

/**
 * One KubeConfig per cluster: the local one, and one per kubeconfig Secret
 * version (a changed Secret gives a new entry). Never logs the kubeconfig.
 */
export class ClusterRegistry {
  private local?: Promise<TargetCluster['http']>;
  private readonly remote = new Map<string, Promise<{ core: CoreV1Api; http: KubeHttp }>>();

  constructor(private readonly localConfig: KubeConfig) {}

  async forProbe(probe: MapLeakProbe, localCore: CoreV1Api): Promise<TargetCluster> {
    const ref = probe.spec.cluster;
    if (!ref) {
      this.local ??= kubeHttp(this.localConfig);
      return { id: 'local', core: localCore, http: await this.local, namespace: probe.metadata.namespace };
    }
    const { name, key } = ref.kubeconfigSecretRef;
    let secret;
    try {
      secret = await localCore.readNamespacedSecret({ name, namespace: probe.metadata.namespace });
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code === 404) {
        throw new ClusterConfigError('KubeconfigSecretNotFound', `Secret ${probe.metadata.namespace}/${name} not found; create it with a kubeconfig under key "${key}"`);
      }
      throw err;
    }
    const encoded = secret.data?.[key];
    if (!encoded) {
      throw new ClusterConfigError('KubeconfigInvalid', `Secret ${probe.metadata.namespace}/${name} has no key "${key}"`);
    }
    const id = `secret:${probe.metadata.namespace}/${name}/${key}@${secret.metadata?.resourceVersion ?? ''}`;
    let entry = this.remote.get(id);
    if (!entry) {
      entry = (async () => {
        const kc = new KubeConfig();
        try {
          kc.loadFromString(Buffer.from(encoded, 'base64').toString('utf8'));
        } catch (err) {
          throw new ClusterConfigError('KubeconfigInvalid', `Secret ${probe.metadata.namespace}/${name} key "${key}" is not a valid kubeconfig: ${(err as Error).message.split('\n')[0]}`);
        }
        if (!kc.getCurrentCluster()) throw new ClusterConfigError('KubeconfigInvalid', `kubeconfig in Secret ${probe.metadata.namespace}/${name} has no current context`);
        reuseConnections(kc);
        return { core: kc.makeApiClient(CoreV1Api), http: await kubeHttp(kc) };
      })();
      entry.catch(() => this.remote.delete(id));
      this.remote.set(id, entry);
    }
    const { core, http } = await entry;
    return { id, core, http, namespace: ref.namespace };
  }
}

import type { CoreV1Api } from '@kubernetes/client-node';
import type { KubeConfig } from '@kubernetes/client-node';
import type { MapLeakProbe } from '../api/types.js';
import { isIP } from 'node:net';
import { AddressAllowlist } from './address-allowlist.js';
import { DeadlineError, withDeadline } from './deadline.js';
import { DEFAULT_FOLLOW_SOCKETS, kubeHttp, remoteKubeHttp, type KubeHttp } from './kube-http.js';
import { KubeconfigRejected, parseTenantKubeconfig } from './kubeconfig.js';

/**
 * A kubeconfig Secret a probe may use must say so with this label: the
 * operator may read every Secret of the namespaces the admin listed, and
 * without an opt-in anyone who may create a probe there could borrow an
 * identity they may not read themselves (a CI deploy kubeconfig, say).
 */
export const REMOTE_CLUSTER_LABEL = 'mapleak.io/remote-cluster';

/** Where a probe's targets live: the operator's own cluster or one named by a kubeconfig Secret. */
export interface TargetCluster {
  /** "local" or "secret:ns/name/key@uid/resourceVersion". */
  id: string;
  remote: boolean;
  http: KubeHttp;
  /** Namespace the probe's selector applies in: always the probe's own on the local cluster. */
  namespace: string;
  /** A remote cluster's pod IPs are the tenant's data: Direct capture dials only these (--remote-pod-cidrs). */
  podAddresses?: AddressAllowlist;
}

export type ClusterConfigReason = 'KubeconfigSecretNotFound' | 'KubeconfigSecretNotLabelled' | 'KubeconfigInvalid' | 'RemoteClusterNotAllowed' | 'ClusterUnreachable';

/** A fixed reason and a message the operator wrote (never a Secret's or a server's text). */
export class ClusterConfigError extends Error {
  override readonly name = 'ClusterConfigError';
  constructor(
    readonly reason: ClusterConfigReason,
    message: string,
  ) {
    super(message);
  }
}

export interface ClusterRegistryOptions {
  /** Namespaces whose probes may use spec.cluster (the admin grants Secret reads there); "*" for all. */
  remoteNamespaces: ReadonlySet<string>;
  /** Honour insecure-skip-tls-verify in tenant kubeconfigs (--insecure-kubeconfig-tls). */
  allowInsecureTls: boolean;
  /** Remote clients kept at once (least recently used go first). */
  maxClients: number;
  /** Bound on reading a kubeconfig Secret. */
  timeoutMs: number;
  /** Addresses a remote API server may have (--remote-cluster-cidrs); empty: no remote cluster is dialled. */
  remoteServers: AddressAllowlist;
  /** Addresses a remote pod may have for Direct capture (--remote-pod-cidrs); empty: none. */
  remotePods: AddressAllowlist;
  /** Sockets of each cluster's pod log follows, apart from its request pool (KubeHttp.followAgent): the worker's --max-trigger-follows. */
  followSockets: number;
}

export const DEFAULT_CLUSTER_REGISTRY_OPTIONS: ClusterRegistryOptions = {
  remoteNamespaces: new Set(),
  allowInsecureTls: false,
  maxClients: 32,
  timeoutMs: 30_000,
  remoteServers: AddressAllowlist.parse([]),
  remotePods: AddressAllowlist.parse([]),
  followSockets: DEFAULT_FOLLOW_SOCKETS,
};

/** The same words for every server the allowlist refuses as written: nothing of the address is echoed. */
export const SERVER_NOT_ALLOWED = "the kubeconfig's server is not an address this operator may reach for remote clusters (--remote-cluster-cidrs)";

/**
 * One client per cluster: the local one, and one per kubeconfig Secret
 * version (a changed Secret replaces its entry; the cache is bounded).
 * Never logs or echoes the kubeconfig.
 */
export class ClusterRegistry {
  private local?: Promise<KubeHttp>;
  /** id → client; Map order is recency (oldest first). */
  private readonly remote = new Map<string, KubeHttp>();
  private readonly options: ClusterRegistryOptions;

  constructor(
    private readonly localConfig: KubeConfig,
    options: Partial<ClusterRegistryOptions> = {},
  ) {
    this.options = { ...DEFAULT_CLUSTER_REGISTRY_OPTIONS, ...options };
  }

  /** Remote clients held now (for tests and metrics). */
  get remoteClients(): number {
    return this.remote.size;
  }

  async forProbe(probe: MapLeakProbe, localCore: CoreV1Api): Promise<TargetCluster> {
    const ref = probe.spec.cluster;
    const namespace = probe.metadata.namespace;
    if (!ref) {
      this.local ??= kubeHttp(this.localConfig, this.options.followSockets);
      return { id: 'local', remote: false, http: await this.local, namespace };
    }
    if (!this.options.remoteNamespaces.has('*') && !this.options.remoteNamespaces.has(namespace)) {
      throw new ClusterConfigError('RemoteClusterNotAllowed', `spec.cluster is not allowed in namespace ${namespace}: the operator's admin has not enabled kubeconfig Secrets here (--kubeconfig-secret-namespaces)`);
    }
    if (this.options.remoteServers.empty) {
      throw new ClusterConfigError('RemoteClusterNotAllowed', "spec.cluster is disabled: the operator's admin has listed no addresses remote API servers may have (--remote-cluster-cidrs)");
    }
    const { name, key } = ref.kubeconfigSecretRef;
    const where = `Secret ${namespace}/${name}`;
    let secret;
    try {
      secret = await withDeadline(localCore.readNamespacedSecret({ name, namespace }), this.options.timeoutMs);
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code === 404) throw new ClusterConfigError('KubeconfigSecretNotFound', `${where} not found; create it with a kubeconfig under key "${key}"`);
      if (code === 403) throw new ClusterConfigError('ClusterUnreachable', `the operator may not read ${where} (HTTP 403); ask the admin to allow kubeconfig Secrets in this namespace`);
      if (err instanceof DeadlineError) throw new ClusterConfigError('ClusterUnreachable', `reading ${where} took longer than ${this.options.timeoutMs} ms`);
      throw new ClusterConfigError('ClusterUnreachable', `reading ${where} failed${typeof code === 'number' ? ` (HTTP ${code})` : ''}`);
    }
    if (secret.metadata?.labels?.[REMOTE_CLUSTER_LABEL] !== 'true') {
      throw new ClusterConfigError('KubeconfigSecretNotLabelled', `${where} is not labelled ${REMOTE_CLUSTER_LABEL}=true; its owner labels it to let probes use it`);
    }
    const encoded = secret.data?.[key];
    if (!encoded) throw new ClusterConfigError('KubeconfigInvalid', `${where} has no key "${key}"`);
    const secretId = `secret:${namespace}/${name}/${key}`;
    const id = `${secretId}@${secret.metadata?.uid ?? ''}/${secret.metadata?.resourceVersion ?? ''}`;
    let http = this.remote.get(id);
    if (http) {
      this.remote.delete(id);
    } else {
      let credentials;
      try {
        credentials = parseTenantKubeconfig(Buffer.from(encoded, 'base64'), { allowInsecureTls: this.options.allowInsecureTls });
      } catch (err) {
        if (err instanceof KubeconfigRejected) throw new ClusterConfigError('KubeconfigInvalid', `${where} key "${key}": ${err.message}`);
        throw err;
      }
      // An address the tenant wrote is refused before any client exists; a name is checked at every dial (kube-http).
      const host = new URL(credentials.server).hostname.replace(/^\[|\]$/g, '');
      if (isIP(host) && !this.options.remoteServers.allows(host)) throw new ClusterConfigError('RemoteClusterNotAllowed', SERVER_NOT_ALLOWED);
      http = remoteKubeHttp(credentials, this.options.remoteServers, this.options.followSockets);
      // Older versions of the same Secret are dead: drop them at once.
      for (const [other, client] of this.remote) {
        if (other.startsWith(`${secretId}@`)) this.evict(other, client);
      }
      while (this.remote.size >= this.options.maxClients) {
        const [oldest, client] = this.remote.entries().next().value as [string, KubeHttp];
        this.evict(oldest, client);
      }
    }
    this.remote.set(id, http);
    return { id, remote: true, http, namespace: ref.namespace, podAddresses: this.options.remotePods };
  }

  /** Ends every client's connections (operator shutdown). */
  close(): void {
    for (const [id, client] of this.remote) this.evict(id, client);
    void this.local?.then((c) => c.close(), () => undefined);
  }

  private evict(id: string, client: KubeHttp): void {
    this.remote.delete(id);
    client.close();
  }
}

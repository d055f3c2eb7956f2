import { KubeConfig } from '@kubernetes/client-node';

/** A failure the user can act on: one line on stderr, exit code 1. */
export class PluginError extends Error {
  override readonly name = 'PluginError';
}

export interface KubeContext {
  kc: KubeConfig;
  /** -n, else the context's namespace, else default. */
  namespace: string;
}

/** The user's own kubeconfig, as kubectl reads it (KUBECONFIG, ~/.kube/config, in-cluster), or --kubeconfig. */
export function loadUserKubeconfig(options: { kubeconfig?: string; context?: string; namespace?: string }): KubeContext {
  const kc = new KubeConfig();
  try {
    if (options.kubeconfig) kc.loadFromFile(options.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    throw new PluginError(`cannot read the kubeconfig: ${(err as Error).message.split('\n')[0]}`);
  }
  if (options.context) {
    if (!kc.getContexts().some((c) => c.name === options.context)) throw new PluginError(`context "${options.context}" is not in the kubeconfig`);
    kc.setCurrentContext(options.context);
  }
  if (!kc.getCurrentCluster()) throw new PluginError('the kubeconfig has no current cluster (kubectl config use-context NAME)');
  const contextNamespace = kc.getContextObject(kc.getCurrentContext())?.namespace;
  return { kc, namespace: options.namespace ?? contextNamespace ?? 'default' };
}

/**
 * What the API server said, for a person: who may not do what, and how to
 * check. `what` is e.g. `get pods/proxy` or `list mapleakprobes.mapleak.io`.
 */
export function explainApiError(err: unknown, what: string, namespace: string | undefined): Error {
  const code = (err as { code?: unknown }).code;
  const where = namespace ? ` in namespace ${namespace}` : ' in any namespace';
  const nsFlag = namespace ? ` -n ${namespace}` : ' -A';
  if (code === 401) return new PluginError('the API server did not accept your credentials (is the kubeconfig current?)');
  if (code === 403) return new PluginError(`forbidden: your RBAC does not allow ${what}${where} (check: kubectl auth can-i ${what}${nsFlag})`);
  if (code === 404) return new PluginError(`${what}: not found${where}`);
  if (typeof code === 'number') return new PluginError(`${what}${where}: the API server answered HTTP ${code}`);
  const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
  return new PluginError(`${what}${where}: cannot reach the API server (${message})`);
}

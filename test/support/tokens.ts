import { writeFileSync } from 'node:fs';
import { CoreV1Api, RbacAuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Cluster } from '../cluster/cluster.js';

const isConflict = (err: unknown): boolean => (err as { code?: number }).code === 409;

/** Creates a ServiceAccount unless it exists. */
export async function ensureServiceAccount(kc: KubeConfig, namespace: string, name: string): Promise<void> {
  await kc
    .makeApiClient(CoreV1Api)
    .createNamespacedServiceAccount({ namespace, body: { metadata: { name } } })
    .catch((err: unknown) => {
      if (!isConflict(err)) throw err;
    });
}

/** A token for a ServiceAccount, minted with the TokenRequest API (no controller-manager mints them here). */
export async function serviceAccountToken(kc: KubeConfig, namespace: string, name: string): Promise<string> {
  const token = (await kc.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({ name, namespace, body: { spec: { audiences: [], expirationSeconds: 3600 } } })).status?.token;
  if (!token) throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);
  return token;
}

/** Binds a ClusterRole to a ServiceAccount, in one namespace (RoleBinding) or cluster-wide (ClusterRoleBinding). */
export async function bindClusterRole(kc: KubeConfig, clusterRole: string, account: { namespace: string; name: string }, inNamespace?: string): Promise<void> {
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const body = {
    metadata: { name: `${clusterRole}--${account.namespace}--${account.name}` },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: clusterRole },
    subjects: [{ kind: 'ServiceAccount', name: account.name, namespace: account.namespace }],
  };
  const created = inNamespace ? rbac.createNamespacedRoleBinding({ namespace: inNamespace, body }) : rbac.createClusterRoleBinding({ body });
  await created.catch((err: unknown) => {
    if (!isConflict(err)) throw err;
  });
}

/**
 * A token that may read everything the operator serves over HTTP: a
 * ServiceAccount `default/mapleak-test-reader` bound to cluster-admin. For
 * tests whose subject is not authorisation (they still go through
 * TokenReview and SubjectAccessReview).
 */
export async function testReaderToken(kc: KubeConfig): Promise<string> {
  const account = { namespace: 'default', name: 'mapleak-test-reader' };
  await ensureServiceAccount(kc, account.namespace, account.name);
  await bindClusterRole(kc, 'cluster-admin', account);
  return serviceAccountToken(kc, account.namespace, account.name);
}

/** A kubeconfig file that authenticates with a bearer token (CA inline, as a pod's would be). */
export function tokenKubeconfig(cluster: Pick<Cluster, 'server'>, kc: KubeConfig, user: string, token: string, file: string): string {
  const caData = kc.getCurrentCluster()?.caData;
  if (!caData) throw new Error('the admin kubeconfig carries no inline CA');
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: cluster.server, 'certificate-authority-data': caData } }],
      users: [{ name: user, user: { token } }],
      contexts: [{ name: 'c', context: { cluster: 'c', user } }],
      'current-context': 'c',
    }),
  );
  return file;
}

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

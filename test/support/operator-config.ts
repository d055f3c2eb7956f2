import type { OperatorConfig } from '../../src/cli/operator.js';
import type { Cluster } from '../cluster/cluster.js';

/** An in-process operator for tests: all roles, any free HTTP port, the given cluster and Redis. */
export function testOperatorConfig(cluster: Pick<Cluster, 'kubeconfigPath'>, redisUrl: string, overrides: Partial<OperatorConfig> = {}): OperatorConfig {
  return {
    role: 'all',
    kubeconfig: cluster.kubeconfigPath,
    redis: { mode: 'standalone', url: redisUrl },
    port: 0,
    concurrency: 4,
    targetConcurrency: 4,
    leaderElect: true,
    leaseNamespace: 'default',
    leaseName: 'mapleakprobe-controller',
    identity: 'test-operator',
    resyncMs: 60_000,
    ...overrides,
    // Tests capture every few seconds for a minute: the production floor of one
    // debug=1 read per binary per 10 min would leave every record born after the
    // first capture to size signatures. Scaled down with the intervals, as they are.
    ceilings: { minDebug1IntervalMs: 0, ...overrides.ceilings },
  };
}

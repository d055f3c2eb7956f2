import assert from 'node:assert/strict';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { reuseConnections } from '../../src/clusters/keep-alive.js';
import { startCluster, stopCluster, type Cluster } from '../cluster/cluster.js';

describe('API connections against a real API server', () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await startCluster({ name: 'keepalive' });
  });
  after(() => stopCluster('keepalive'));

  async function handshakes(reuse: boolean): Promise<number> {
    const kc = new KubeConfig();
    kc.loadFromFile(cluster.kubeconfigPath);
    if (reuse) reuseConnections(kc);
    const core = kc.makeApiClient(CoreV1Api);
    const original = tls.connect;
    let count = 0;
    tls.connect = function (this: unknown, ...args: Parameters<typeof tls.connect>) {
      count++;
      return original.apply(this, args);
    } as typeof tls.connect;
    try {
      for (let i = 0; i < 20; i++) await core.listNamespace();
    } finally {
      tls.connect = original;
    }
    return count;
  }

  test('calls share one keep-alive connection instead of a TLS handshake each', async () => {
    assert.equal(await handshakes(false), 20, 'the library alone: one handshake per call');
    assert.ok((await handshakes(true)) <= 2);
  });
});

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { startOperator, type RunningOperator } from '../../src/cli/operator.js';
import { stopCluster } from '../cluster/cluster.js';
import { freeLoopbackPort, makeTestTls, startRedis, type RedisServer } from '../cluster/redis.js';
import { condition, startClusterWithCrd, TestProbes } from '../support/probes.js';
import { testOperatorConfig } from '../support/operator-config.js';
import { waitFor } from '../support/wait.js';
import { REMOTE_CLUSTER_LABEL } from '../../src/clusters/registry.js';

process.env.LOG_LEVEL ??= 'warn';

/**
 * spec.cluster lets a tenant name any https://host:port as its API server.
 * The status must not tell the tenant what answered there (nothing, a
 * refusal, a 404, a 403, a certificate for another name), or the worker
 * becomes the tenant's port scanner inside the operator's network.
 */
describe('a remote cluster\'s failed pod list: one fixed message whatever answered', () => {
  const CLUSTER = 'hyg-remote';
  let redis: RedisServer;
  let operator: RunningOperator;
  let probes: TestProbes;
  const servers: https.Server[] = [];

  /** A real HTTPS server on loopback answering every request with `status`. */
  async function httpsAnswering(status: number, tls: { cert: Buffer; key: Buffer }): Promise<number> {
    const server = https.createServer(tls, (_req, res) => res.writeHead(status, { 'content-type': 'application/json' }).end('{"kind":"Status","message":"planted-body-text"}'));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  }

  /** A tenant's log server: lists one Running pod, answers its proxy with 404, and its log with a line whose first token is 200 kB. */
  const sinceTimes: (string | null)[] = [];
  const HUGE_TOKEN = 'T'.repeat(200_000);
  async function hostileLogServer(tls: { cert: Buffer; key: Buffer }): Promise<number> {
    const server = https.createServer(tls, (req, res) => {
      const url = new URL(req.url ?? '/', 'https://x');
      if (url.pathname === '/api/v1/namespaces/apps/pods') {
        const pod = {
          metadata: { name: 'evil', namespace: 'apps', uid: '5b0d2c1e-0000-4000-8000-000000000001' },
          spec: { containers: [{ name: 'app', ports: [{ containerPort: 6060 }] }] },
          status: { phase: 'Running', podIP: '10.0.0.9', containerStatuses: [{ name: 'app', restartCount: 0 }] },
        };
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'PodList', metadata: {}, items: [pod] }));
      }
      if (url.pathname === '/api/v1/namespaces/apps/pods/evil/log') {
        sinceTimes.push(url.searchParams.get('sinceTime'));
        const stamp = new Date().toISOString();
        const gc = (n: number): string => `gc ${n} @${n}.000s 1%: 0.02+5+0.01 ms clock, 0.05+0/1/5+0.01 ms cpu, 60->61->40 MB, 80 MB goal, 0 MB stacks, 0 MB globals, 2 P`;
        return void res.writeHead(200, { 'content-type': 'text/plain' }).end(`${stamp} ${gc(sinceTimes.length)}\n${HUGE_TOKEN} ${gc(99)}\n`);
      }
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  }

  before(async () => {
    const tls = makeTestTls(mkdtempSync(join(tmpdir(), 'mapleak-remote-probing-')));
    const pem = { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) };
    const caData = readFileSync(tls.caFile).toString('base64');
    const [{ cluster, kc }, redisServer, closedPort, notFoundPort, forbiddenPort, logPort] = await Promise.all([
      startClusterWithCrd(CLUSTER),
      startRedis(),
      freeLoopbackPort(),
      httpsAnswering(404, pem),
      httpsAnswering(403, pem),
      hostileLogServer(pem),
    ]);
    redis = redisServer;
    probes = new TestProbes(kc);
    const kubeconfig = (server: string): string =>
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server, 'certificate-authority-data': caData } }],
        users: [{ name: 'u', user: { token: 'tenant-token-not-a-secret-here' } }],
        contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'c',
      });
    const targets: Record<string, string> = {
      closed: `https://127.0.0.1:${closedPort}`,
      'not-found': `https://127.0.0.1:${notFoundPort}`,
      forbidden: `https://127.0.0.1:${forbiddenPort}`,
      // The certificate names 127.0.0.1 only: reached as localhost, TLS fails with the certificate's names in Node's message.
      'wrong-name': `https://localhost:${notFoundPort}`,
    };
    const logs = { 'hostile-log': `https://127.0.0.1:${logPort}` };
    const core = kc.makeApiClient(CoreV1Api);
    await Promise.all(Object.entries({ ...targets, ...logs }).map(([name, server]) => core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: `kc-${name}`, labels: { [REMOTE_CLUSTER_LABEL]: 'true' } }, stringData: { kubeconfig: kubeconfig(server) } } })));
    operator = await startOperator(testOperatorConfig(cluster, redis.url, { leaderElect: false, identity: 'remote-probing-test', kubeconfigSecretNamespaces: ['default'], remoteClusterCidrs: ['127.0.0.1/32'] }));
    await Promise.all(Object.keys({ ...targets, ...logs }).map((name) => probes.create(name, { selector: { matchLabels: { app: 'x' } }, cluster: { kubeconfigSecretRef: { name: `kc-${name}` }, namespace: 'apps' } })));
  });

  after(async () => {
    await operator?.stop();
    await redis?.stop();
    for (const server of servers) {
      server.closeAllConnections();
      server.close();
    }
    await stopCluster(CLUSTER);
  });

  const listFailure = (name: string): Promise<string> =>
    waitFor(`${name}: Degraded TargetListFailed`, async () => {
      const c = condition(await probes.get(name), 'Degraded');
      return c?.reason === 'TargetListFailed' && c.message;
    }, 60_000, 500);

  test('nothing listening, a certificate for another name: "could not be reached"; a 404 or a 403: "answered with an error"; nothing more', async () => {
    const [closed, wrongName, notFound, forbidden] = await Promise.all(['closed', 'wrong-name', 'not-found', 'forbidden'].map(listFailure));
    assert.equal(closed, 'Cannot list pods in namespace apps: the remote API server could not be reached');
    assert.equal(wrongName, closed, 'a TLS failure reads as nothing listening');
    assert.equal(notFound, 'Cannot list pods in namespace apps: the remote API server answered with an error');
    assert.equal(forbidden, notFound, 'the status code is not told');
    for (const message of [closed, wrongName, notFound, forbidden]) assert.doesNotMatch(message, /pprof|ECONN|HTTP \d|planted|localhost|127\.0\.0\.1/);
  });

  test('a log line whose first token is not a time: never kept as the place to resume, never sent back as sinceTime', async () => {
    await waitFor('three gctrace reads of the hostile log', async () => sinceTimes.length >= 3, 60_000, 500);
    assert.equal(sinceTimes[0], null, 'the first read starts at the beginning');
    for (const since of sinceTimes.slice(1)) {
      assert.ok(since !== null, 'later reads resume at the last line that had a time');
      assert.ok(since.length <= 40, `sinceTime of ${since.length} characters`);
      assert.match(since, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
    }
  });
});

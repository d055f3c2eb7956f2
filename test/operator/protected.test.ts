import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { MapLeakProbe } from '../../src/api/types.js';
import { startOperator, type RunningOperator } from '../../src/cli/operator.js';
import { CREDENTIALS_LABEL } from '../../src/worker/target-access.js';
import { runPod, stopCluster, type Cluster } from '../cluster/cluster.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { testOperatorConfig } from '../support/operator-config.js';
import { condition, startClusterWithCrd, TestProbes } from '../support/probes.js';
import { waitFor } from '../support/wait.js';

process.env.LOG_LEVEL ??= 'warn';
const CLUSTER = 'protected';
const NS = 'default';
const TOKEN = 'pprof-token-5d1c9e7a3b';
const SERVER_NAME = 'pprof.leaky.test';
const BASIC = { username: 'scraper', password: 'pw-8e41b0c2' };

/** A CA and a certificate for SERVER_NAME signed by it (the pod IP is not known in advance). */
function makeCertificates(dir: string): { ca: string; cert: string; key: string } {
  const ssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  };
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=pprof test CA');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', `/CN=${SERVER_NAME}`);
  execFileSync('sh', ['-c', `printf "subjectAltName=DNS:${SERVER_NAME}\\n" > san.ext`], { cwd: dir });
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '1', '-extfile', 'san.ext');
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
}

describe('operator against pprof endpoints behind TLS and credentials', () => {
  let cluster: Cluster;
  let kc: KubeConfig;
  let redis: RedisServer;
  let operator: RunningOperator;
  let probes: TestProbes;
  let core: CoreV1Api;
  const work = mkdtempSync(join(tmpdir(), 'mapleak-protected-op-'));

  const direct = (extra: Record<string, unknown>): Record<string, unknown> => ({
    selector: { matchLabels: { app: 'guarded' } },
    schedule: { interval: '5s', window: 12 },
    pprof: { transport: 'Direct', scheme: 'HTTPS', tls: { ca: { configMap: { name: 'pprof-ca', key: 'ca.pem' } }, serverName: SERVER_NAME }, ...extra },
  });
  const settled = (name: string): Promise<MapLeakProbe> =>
    waitFor(`${name} to settle`, async () => {
      const p = await probes.get(name);
      const degraded = condition(p, 'Degraded');
      return degraded?.status === 'True' || (p?.status?.verdict && p.status.verdict !== 'Unknown') ? p : undefined;
    }, 120_000, 1000);

  before(async () => {
    ({ cluster, kc } = await startClusterWithCrd(CLUSTER));
    probes = new TestProbes(kc, NS);
    core = kc.makeApiClient(CoreV1Api);
    redis = await startRedis();
    const certs = makeCertificates(work);
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'pprof-ca' }, data: { 'ca.pem': readFileSync(certs.ca, 'utf8') } } });
    await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'pprof-token', labels: { [CREDENTIALS_LABEL]: 'true' } }, stringData: { token: TOKEN } } });
    await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'unlabelled-token' }, stringData: { token: TOKEN } } });
    await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'pprof-basic', labels: { [CREDENTIALS_LABEL]: 'true' } }, stringData: BASIC } });
    await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'two-line-token', labels: { [CREDENTIALS_LABEL]: 'true' } }, stringData: { token: `${TOKEN}\nX-Injected: 1` } } });
    await core.createNamespace({ body: { metadata: { name: 'elsewhere' } } });
    await Promise.all([
      runPod(cluster, { name: 'guarded', labels: { app: 'guarded' }, path: 'test/targets/leaky', args: ['-tls-cert', certs.cert, '-tls-key', certs.key, '-require-bearer', TOKEN, '-require-basic', `${BASIC.username}:${BASIC.password}`] }),
      runPod(cluster, { name: 'tls-open', labels: { app: 'tls-open' }, path: 'test/targets/leaky', args: ['-tls-cert', certs.cert, '-tls-key', certs.key] }),
    ]);
    operator = await startOperator(testOperatorConfig(cluster, redis.url, { leaseNamespace: NS, pprofCredentialsNamespaces: [NS] }));
  });

  after(async () => {
    await operator?.stop();
    await redis?.stop();
    await stopCluster(CLUSTER);
  });

  test('the API server refuses credentials with the pod proxy (it would strip them)', async () => {
    await assert.rejects(probes.create('proxied-token', { selector: { matchLabels: { app: 'guarded' } }, pprof: { authorization: { credentials: { name: 'pprof-token', key: 'token' } } } }), (err: unknown) => {
      assert.match(String((err as { body?: unknown }).body), /need transport Direct/);
      return true;
    });
  });

  test('Direct over HTTPS with a CA from a ConfigMap and a bearer token from a labelled Secret: Leaking, symbolized', async () => {
    await probes.create('guarded', direct({ authorization: { credentials: { name: 'pprof-token', key: 'token' } } }));
    const probe = await waitFor('guarded to reach Leaking', async () => {
      const p = await probes.get('guarded');
      return p?.status?.verdict === 'Leaking' && p;
    }, 120_000, 1000);
    const maps = probe.status?.findings?.filter((f) => f.kind === 'map') ?? [];
    assert.ok(maps.length > 0 && maps.every((f) => f.evidence === 'symbolized'), JSON.stringify(maps.map((f) => [f.site.line, f.pattern, f.evidence])));
    assert.equal(condition(probe, 'Degraded')?.status, 'False');
  });

  test('basic auth from a labelled Secret works the same way', async () => {
    await probes.create('basic', direct({ basicAuth: { username: { name: 'pprof-basic', key: 'username' }, password: { name: 'pprof-basic', key: 'password' } } }));
    const probe = await waitFor('basic to reach Leaking', async () => {
      const p = await probes.get('basic');
      return p?.status?.verdict === 'Leaking' ? p : undefined;
    }, 120_000, 1000);
    assert.equal(condition(probe, 'Degraded')?.status, 'False');
  });

  test('in a namespace the admin did not list, no Secret is read', async () => {
    const elsewhere = new TestProbes(kc, 'elsewhere');
    await elsewhere.create('guarded', direct({ authorization: { credentials: { name: 'pprof-token', key: 'token' } } }));
    const probe = await waitFor('elsewhere/guarded degraded', async () => {
      const p = await elsewhere.get('guarded');
      return condition(p, 'Degraded')?.status === 'True' ? p : undefined;
    }, 60_000, 1000);
    assert.equal(condition(probe, 'Degraded')?.reason, 'PprofCredentialsNotAllowed');
  });

  test('a Secret without the label is not read out, and says why', async () => {
    await probes.create('unlabelled', direct({ authorization: { credentials: { name: 'unlabelled-token', key: 'token' } } }));
    const probe = await settled('unlabelled');
    assert.equal(condition(probe, 'Degraded')?.reason, 'PprofSecretNotLabelled');
    assert.match(condition(probe, 'Degraded')?.message ?? '', new RegExp(`not labelled ${CREDENTIALS_LABEL}=true`));
  });

  test('a missing Secret, a missing key and a value that is no header line each fail with their own reason, never quoting the value', async () => {
    const cases = [
      ['missing-secret', { name: 'no-such-secret', key: 'token' }, 'PprofSecretNotFound'],
      ['missing-key', { name: 'pprof-token', key: 'nope' }, 'PprofSecretInvalid'],
      ['two-lines', { name: 'two-line-token', key: 'token' }, 'PprofSecretInvalid'],
    ] as const;
    for (const [name, credentials] of cases) await probes.create(name, direct({ authorization: { credentials } }));
    for (const [name, , reason] of cases) {
      const probe = await settled(name);
      assert.equal(condition(probe, 'Degraded')?.reason, reason, name);
      assert.ok(!JSON.stringify(probe.status).includes(TOKEN), `${name}: the value is not quoted`);
    }
  });

  test('without the token the target answers 401, reported as such', async () => {
    await probes.create('no-token', direct({}));
    const probe = await waitFor('no-token target error', async () => {
      const p = await probes.get('no-token');
      return p?.status?.targets?.[0]?.lastErrorReason ? p : undefined;
    }, 60_000, 1000);
    assert.equal(probe.status?.targets?.[0]?.lastErrorReason, 'Http401');
  });

  test('scheme HTTPS through the pod proxy (the API server speaks TLS to the pod)', async () => {
    await probes.create('tls-open', { selector: { matchLabels: { app: 'tls-open' } }, schedule: { interval: '5s', window: 12 }, pprof: { scheme: 'HTTPS' } });
    const probe = await settled('tls-open');
    assert.equal(condition(probe, 'Degraded')?.status, 'False', JSON.stringify(probe.status?.conditions));
    assert.ok((probe.status?.targets?.[0]?.captures ?? 0) >= 2);
    assert.ok(probe.status?.findings?.some((f) => f.kind === 'map' && f.evidence === 'symbolized'));
  });

  test('the token never appears in any status or Event', async () => {
    for (const name of ['guarded', 'basic', 'unlabelled', 'no-token', 'tls-open']) {
      assert.ok(!JSON.stringify(await probes.get(name)).includes(TOKEN), `${name} status`);
    }
    const events = await core.listNamespacedEvent({ namespace: NS });
    assert.ok(!JSON.stringify(events.items).includes(TOKEN) && !JSON.stringify(events.items).includes(BASIC.password), 'Events');
  });
});

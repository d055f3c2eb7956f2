// Redis over TLS in sentinel and cluster mode (--redis-tls / REDIS_TLS), on
// real redis-server processes whose every link is TLS (clients,
// replication, sentinels, cluster bus), with a throwaway CA handed to Node
// as NODE_EXTRA_CA_CERTS, as the chart does. Without the CA the connection
// must fail: the certificate is verified, not merely accepted.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { makeTestTls, startRedisCluster, startSentinelSet, type RedisClusterSet, type SentinelSet, type TestTls } from '../cluster/redis.js';

const run = promisify(execFile);
const CLIENT = new URL('./tls-client.js', import.meta.url).pathname;

interface ClientAnswer {
  value?: string;
  status?: { mode: string; master?: string; primaries?: number };
  error?: string;
}

async function connectAs(env: Record<string, string>): Promise<ClientAnswer> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('REDIS_') && name !== 'NODE_EXTRA_CA_CERTS'));
  const { stdout } = await run(process.execPath, [CLIENT], { env: { ...clean, ...env }, timeout: 30_000 });
  return JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as ClientAnswer;
}

describe('Redis over TLS: sentinel and cluster', () => {
  let dir: string;
  let tls: TestTls;
  let sentinel: SentinelSet;
  let cluster: RedisClusterSet;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mapleak-redis-tls-'));
    tls = makeTestTls(dir);
    [sentinel, cluster] = await Promise.all([startSentinelSet({ tls }), startRedisCluster({ primaries: 3, tls })]);
  });
  after(async () => {
    await Promise.all([sentinel?.stop(), cluster?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  test('sentinel: the sentinels and the master over TLS, both passwords, the master as resolved', async () => {
    const env = { REDIS_SENTINELS: sentinel.sentinelAddresses, REDIS_SENTINEL_MASTER: sentinel.masterName, REDIS_TLS: 'true', REDIS_PASSWORD: sentinel.password, REDIS_SENTINEL_PASSWORD: sentinel.sentinelPassword };
    const answer = await connectAs({ ...env, NODE_EXTRA_CA_CERTS: tls.caFile });
    assert.deepEqual(answer, { value: 'over tls', status: { mode: 'sentinel', master: `127.0.0.1:${sentinel.primary.port}` } });
    // ioredis reports a refused sentinel certificate only as "Connection is closed"; what matters is that nothing is reached.
    const untrusted = await connectAs({ ...env, TLS_CLIENT_WAIT_MS: '3000' });
    assert.ok(untrusted.error && untrusted.value === undefined, `without the CA the sentinels are not reached: ${JSON.stringify(untrusted)}`);
  });

  test('cluster: every node over TLS, the primaries counted', async () => {
    const env = { REDIS_CLUSTER_NODES: cluster.seeds, REDIS_TLS: 'true', REDIS_PASSWORD: cluster.password };
    const answer = await connectAs({ ...env, NODE_EXTRA_CA_CERTS: tls.caFile });
    assert.deepEqual(answer, { value: 'over tls', status: { mode: 'cluster', primaries: 3 } });
    const untrusted = await connectAs({ ...env, TLS_CLIENT_WAIT_MS: '3000' });
    assert.ok(untrusted.error && untrusted.value === undefined, `without the CA the cluster is not reached: ${JSON.stringify(untrusted)}`);
  });
});

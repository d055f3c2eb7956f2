// The Redis settings of `mapleak operator`: one mode out of flags and
// environment, checked once, with errors that name the flag and never a secret.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { operatorConfig } from '../../src/cli/operator.js';
import { UsageError } from '../../src/cli/units.js';
import { describeRedis, parseRedisConfig, RedisConfigError } from '../../src/queue/connection.js';
import { queuePrefix } from '../../src/queue/names.js';

const SECRET = 'hunter2-never-shown';

function rejects(flags: Parameters<typeof parseRedisConfig>[0], env: NodeJS.ProcessEnv, message: RegExp): void {
  assert.throws(
    () => parseRedisConfig(flags, env),
    (err: unknown) => {
      assert.ok(err instanceof RedisConfigError, String(err));
      assert.match(err.message, message);
      assert.ok(!err.message.includes(SECRET), 'the error quotes no secret');
      return true;
    },
  );
}

describe('Redis connection settings', () => {
  test('standalone: the default address, REDIS_URL, and a flag over its variable', () => {
    assert.deepEqual(parseRedisConfig({}, {}), { mode: 'standalone', url: 'redis://127.0.0.1:6379' });
    assert.deepEqual(parseRedisConfig({}, { REDIS_URL: 'rediss://r.example:6380/2', REDIS_PASSWORD: SECRET }), { mode: 'standalone', url: 'rediss://r.example:6380/2', password: SECRET });
    assert.deepEqual(parseRedisConfig({ url: 'redis://flag:6379' }, { REDIS_URL: 'redis://env:6379' }), { mode: 'standalone', url: 'redis://flag:6379' });
  });

  test('sentinel: addresses (IPv6, default port 26379), the master name, and both passwords from the environment', () => {
    const config = parseRedisConfig(
      { sentinels: 's1.example:26380, [fd00::1]:26381,s3.example', sentinelMaster: 'mymaster', tls: true },
      { REDIS_PASSWORD: SECRET, REDIS_SENTINEL_PASSWORD: `${SECRET}-s` },
    );
    assert.deepEqual(config, {
      mode: 'sentinel',
      sentinels: [
        { host: 's1.example', port: 26380 },
        { host: 'fd00::1', port: 26381 },
        { host: 's3.example', port: 26379 },
      ],
      masterName: 'mymaster',
      tls: true,
      password: SECRET,
      sentinelPassword: `${SECRET}-s`,
    });
    assert.deepEqual(parseRedisConfig({}, { REDIS_SENTINELS: '10.0.0.1:26379', REDIS_SENTINEL_MASTER: 'm' }), { mode: 'sentinel', sentinels: [{ host: '10.0.0.1', port: 26379 }], masterName: 'm', tls: false });
    assert.equal(describeRedis(config), 'sentinel master "mymaster" via s1.example:26380,[fd00::1]:26381,s3.example:26379 (tls)');
  });

  test('cluster: seed nodes, REDIS_TLS, and the BullMQ prefix becomes a hash tag', () => {
    const config = parseRedisConfig({}, { REDIS_CLUSTER_NODES: 'n1:7000,n2:7001', REDIS_TLS: 'true', REDIS_PASSWORD: SECRET });
    assert.deepEqual(config, { mode: 'cluster', nodes: [{ host: 'n1', port: 7000 }, { host: 'n2', port: 7001 }], tls: true, password: SECRET });
    assert.equal(describeRedis(config), 'cluster seeds n1:7000,n2:7001 (tls)');
    assert.equal(queuePrefix('cluster'), '{mapleak}');
    assert.equal(queuePrefix('standalone'), 'bull', "an existing Redis keeps BullMQ's keys");
    assert.equal(queuePrefix('sentinel'), 'bull');
  });

  test('modes are mutually exclusive, whether set by flag or by environment', () => {
    rejects({ url: 'redis://a:6379', sentinels: 's:26379', sentinelMaster: 'm' }, {}, /choose one Redis mode: --redis-url \(REDIS_URL\) and --redis-sentinels/);
    rejects({ clusterNodes: 'n:7000' }, { REDIS_URL: 'redis://a:6379' }, /choose one Redis mode/);
    rejects({ sentinels: 's:26379', sentinelMaster: 'm' }, { REDIS_CLUSTER_NODES: 'n:7000' }, /--redis-sentinels \(REDIS_SENTINELS\) and --redis-cluster-nodes/);
  });

  test('incomplete or malformed settings are refused with the flag named', () => {
    rejects({ sentinels: 's:26379' }, {}, /--redis-sentinels needs --redis-sentinel-master NAME/);
    rejects({ sentinelMaster: 'm' }, {}, /--redis-sentinel-master \(REDIS_SENTINEL_MASTER\) needs --redis-sentinels/);
    rejects({ sentinels: 's:26379', sentinelMaster: 'bad name' }, {}, /--redis-sentinel-master must be a sentinel master name/);
    rejects({ sentinels: ' , ', sentinelMaster: 'm' }, {}, /lists no address/);
    rejects({ clusterNodes: 'n:70000' }, {}, /--redis-cluster-nodes: port of "n:70000" is not 1-65535/);
    rejects({ clusterNodes: 'n:0' }, {}, /port of "n:0"/);
    rejects({ clusterNodes: 'fd00::1:7000' }, {}, /"fd00::1:7000" is not HOST:PORT/);
    rejects({ clusterNodes: 'a b:7000' }, {}, /is not HOST:PORT/);
    rejects({ clusterNodes: Array.from({ length: 65 }, (_, i) => `n${i}:7000`).join(',') }, {}, /65 addresses; at most 64/);
    rejects({ url: 'http://r:6379' }, {}, /must start with redis:\/\/ or rediss:\/\//);
    rejects({ url: 'not a url' }, {}, /is not a URL/);
    rejects({ url: `redis://:${SECRET}@r:6379` }, {}, /must not hold a password: set REDIS_PASSWORD/);
    // ioredis would take these query parameters as options and authenticate with them.
    for (const query of [`?password=${SECRET}`, `?sentinelPassword=${SECRET}`, `?username=u&password=${SECRET}`, '#frag']) {
      rejects({ url: `redis://r:6379/0${query}` }, {}, /must not have a query or fragment/);
      rejects({}, { REDIS_URL: `redis://r:6379/0${query}` }, /must not have a query or fragment/);
    }
    rejects({}, { REDIS_SENTINEL_PASSWORD: SECRET }, /REDIS_SENTINEL_PASSWORD is set but the mode is not sentinel/);
    rejects({ tls: true }, {}, /--redis-tls is for sentinel and cluster modes/);
  });

  test('operatorConfig parses the Redis flags into one config, and a bad one is a usage error', () => {
    const config = operatorConfig(['--redis-cluster-nodes', '127.0.0.1:7000,127.0.0.1:7001'], { REDIS_PASSWORD: SECRET });
    assert.deepEqual(config.redis, { mode: 'cluster', nodes: [{ host: '127.0.0.1', port: 7000 }, { host: '127.0.0.1', port: 7001 }], tls: false, password: SECRET });
    assert.throws(() => operatorConfig(['--redis-url', 'redis://a:1', '--redis-cluster-nodes', 'n:7000'], {}), (err: unknown) => err instanceof UsageError && /choose one Redis mode/.test(err.message));
  });
});

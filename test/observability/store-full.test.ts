import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { ConnectionErrorReporter, errorKind, isConnectionError, isStoreFull } from '../../src/observability/connection-errors.js';
import { jsonLogger } from '../../src/observability/log.js';
import { OperatorMetrics } from '../../src/observability/metrics.js';
import { ProfileError } from '../../src/pprof/errors.js';
import { SeriesStore } from '../../src/store/series-store.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';

/** Review 3, finding 6: Redis' own refusals at maxmemory (noeviction), as a real redis-server sends them. */
describe('a full Redis (maxmemory, noeviction) is an outage of Redis', () => {
  let redis: RedisServer;
  let client: Redis;
  const refusals: Record<string, unknown> = {};

  before(async () => {
    redis = await startRedis();
    client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    await client.config('SET', 'maxmemory-policy', 'noeviction');
    await client.config('SET', 'maxmemory', '1');
    refusals.set = await client.set('k', 'v').catch((err: unknown) => err);
    refusals.multi = await client.multi().set('k', 'v').expire('k', 10).exec().catch((err: unknown) => err);
    refusals.script = await client.eval("return redis.call('SET', KEYS[1], 'v')", 1, 'k').catch((err: unknown) => err);
    refusals.writeRefusal = await new SeriesStore(client).writeRefusal();
  });
  after(async () => {
    await client.config('SET', 'maxmemory', '0').catch(() => undefined);
    client.disconnect();
    await redis.stop();
  });

  for (const what of ['set', 'multi', 'script', 'writeRefusal']) {
    test(`a refused ${what} is StoreFull, kind oom, and an outage`, () => {
      const err = refusals[what];
      assert.ok(err instanceof Error, `${what} was refused`);
      assert.equal(isStoreFull(err), true, (err as Error).message);
      assert.equal(errorKind(err), 'oom');
      assert.equal(isConnectionError(err), true);
    });
  }

  test('reads still work, and a profile error quoting the same words is not a store refusal', async () => {
    assert.equal(await client.get('missing'), null);
    assert.equal(isStoreFull(new ProfileError('NotAProfile', "first line: x OOM command not allowed when used memory > 'maxmemory'")), false);
    assert.equal(isStoreFull(new Error('EXECABORT planted by a target')), false);
  });

  test('the outage is Redis\' whoever met it, shows in the gauge and counter, and ends with the next write that goes through', async () => {
    const metrics = new OperatorMetrics(false);
    const lines: Record<string, unknown>[] = [];
    const reporter = new ConnectionErrorReporter(jsonLogger({}, 'info', (line) => lines.push(JSON.parse(line) as Record<string, unknown>)), metrics);
    // A round fails on it: the worker reports a failed round against the API server unless it is Redis' refusal.
    reporter.failure('kubernetes', 'capture-round', refusals.multi);
    assert.equal(reporter.storeFull(), true);
    assert.equal(reporter.failing('redis'), true);
    assert.equal(reporter.failing('kubernetes'), false);
    const gauge = async (): Promise<number | undefined> => (await metrics.dependencyReachable.get()).values.find((v) => v.labels.dependency === 'redis')?.value;
    assert.equal(await gauge(), 0);
    const { values } = await metrics.connectionErrors.get();
    assert.equal(values.find((v) => v.labels.component === 'writes' && v.labels.kind === 'oom')?.value, 1);
    reporter.writesSucceeded();
    assert.equal(reporter.storeFull(), false);
    assert.equal(await gauge(), 1);
    assert.deepEqual(lines.map((l) => l.msg), ['redis unreachable', 'redis recovered']);
  });
});

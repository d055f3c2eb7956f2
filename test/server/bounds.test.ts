// The pieces that bound authentication: header parsing, the caches and the cap on reviews in flight.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ExpiringCache } from '../../src/auth/cache.js';
import { ConcurrencyLimit, ReviewsBusyError } from '../../src/auth/limiter.js';
import { bearerToken, MAX_TOKEN_LENGTH } from '../../src/server/auth.js';

describe('bearerToken', () => {
  test('takes the token of an RFC 6750 Bearer header, the scheme in any case', () => {
    assert.equal(bearerToken('Bearer abc.DEF-123_~+/=='), 'abc.DEF-123_~+/==');
    assert.equal(bearerToken('bearer abc'), 'abc');
    assert.equal(bearerToken('BEARER   abc  '), 'abc');
  });

  test('refuses anything else without asking the API server', () => {
    for (const header of [undefined, '', 'Bearer', 'Bearer ', 'Basic YWxpY2U6eA==', 'Bearer a b', 'Bearer <script>', 'Bearer tok\u00e9n', `Bearer ${'a'.repeat(MAX_TOKEN_LENGTH + 1)}`]) {
      assert.equal(bearerToken(header), undefined, JSON.stringify(header?.slice(0, 40)));
    }
    assert.equal(bearerToken(`Bearer ${'a'.repeat(MAX_TOKEN_LENGTH)}`)?.length, MAX_TOKEN_LENGTH);
  });
});

describe('ExpiringCache', () => {
  test('an entry lives for its own time to live', () => {
    let now = 0;
    const cache = new ExpiringCache<string>(10, () => now);
    cache.set('a', 'allowed', 30_000);
    cache.set('d', 'denied', 5_000);
    now = 4_999;
    assert.deepEqual([cache.get('a'), cache.get('d')], ['allowed', 'denied']);
    now = 5_000;
    assert.deepEqual([cache.get('a'), cache.get('d')], ['allowed', undefined]);
    now = 30_000;
    assert.equal(cache.get('a'), undefined);
    assert.equal(cache.size, 0, 'expired entries are dropped when read');
  });

  test('a flood of distinct keys never holds more than maxEntries; the oldest go first', () => {
    const cache = new ExpiringCache<number>(100);
    for (let i = 0; i < 10_000; i++) cache.set(`k${i}`, i, 60_000);
    assert.equal(cache.size, 100);
    assert.equal(cache.get('k9899'), undefined);
    assert.equal(cache.get('k9900'), 9900);
    assert.equal(cache.get('k9999'), 9999);
  });
});

describe('ConcurrencyLimit', () => {
  test('runs at most maxInFlight at once, queues maxWaiting, refuses the rest at once', async () => {
    const limit = new ConcurrencyLimit(2, 3);
    let running = 0;
    let most = 0;
    const releases: (() => void)[] = [];
    const task = (): Promise<void> =>
      new Promise<void>((resolve) => {
        running++;
        most = Math.max(most, running);
        releases.push(() => {
          running--;
          resolve();
        });
      });
    const outcomes = Array.from({ length: 10 }, () => limit.run(task).then(
      () => 'ran',
      (err: unknown) => (err instanceof ReviewsBusyError ? 'busy' : 'other'),
    ));
    // The refusals are settled before any task finishes.
    const settled = await Promise.race([Promise.all(outcomes.slice(5)), new Promise((resolve) => setTimeout(() => resolve('pending'), 100))]);
    assert.deepEqual(settled, ['busy', 'busy', 'busy', 'busy', 'busy']);
    assert.equal(running, 2);
    while (releases.length > 0 || running > 0) {
      releases.shift()?.();
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.deepEqual(await Promise.all(outcomes), ['ran', 'ran', 'ran', 'ran', 'ran', 'busy', 'busy', 'busy', 'busy', 'busy']);
    assert.equal(most, 2);
    assert.equal(limit.active, 0, 'every slot given back');
  });

  test('a failing task gives its slot back', async () => {
    const limit = new ConcurrencyLimit(1, 0);
    await assert.rejects(limit.run(() => Promise.reject(new Error('API server down'))), /API server down/);
    assert.equal(await limit.run(() => Promise.resolve(42)), 42);
  });
});

// The series store's key layout in a real Redis: every key of a probe under
// its hash tag, and series written by an operator from before hash tags
// carried over on upgrade (TTLs kept) instead of lost.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { attributeProfile } from '../../src/analysis/attribute.js';
import { decodeHeapProfile } from '../../src/pprof/index.js';
import { SeriesStore, type StoredCaptureBytes } from '../../src/store/series-store.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { readFixture } from '../support/fixtures.js';

describe('series store key layout', () => {
  let redis: RedisServer;
  let client: Redis;
  const stored: StoredCaptureBytes[] = [];
  let store: SeriesStore;
  const proto = readFixture('go1.26', 'heap-001.pb.gz');
  const snapshot = (minute: number) => ({ ...attributeProfile(decodeHeapProfile(proto)), time: new Date(Date.UTC(2026, 10, 26, 4, minute)) });

  before(async () => {
    redis = await startRedis();
    client = new Redis(redis.url);
    store = new SeriesStore(client, undefined, { onCaptureStored: (bytes) => stored.push(bytes) });
  });
  after(async () => {
    client.disconnect();
    await redis.stop();
  });

  test('every key of a probe carries the probe as its hash tag; the store reports what each capture wrote', async () => {
    await store.addCapture('ns/tagged', 'pod-1', { id: 'c1', snapshot: snapshot(1), proto }, 12, 600);
    await store.recordTarget('ns/tagged', { name: 'a', namespace: 'ns', uid: 'pod-1' }, 600);
    await store.saveGc('ns/tagged', 'pod-1', { cycles: [] }, 10, 600);
    await store.firstSeen('ns/tagged', ['k'], new Date(), 600);
    const keys = (await client.keys('*')).sort();
    // The namespace's byte ledger carries the namespace as its own tag (namespace-ledger.ts).
    assert.deepEqual(keys, ['mlp:{ns/tagged}:c:c1', 'mlp:{ns/tagged}:firstseen', 'mlp:{ns/tagged}:p:c1', 'mlp:{ns/tagged}:t:pod-1:gc', 'mlp:{ns/tagged}:t:pod-1:series', 'mlp:{ns/tagged}:targets', 'mlp:{ns:ns}:stored', 'mlp:{ns:ns}:stored-bytes', 'mlp:{ns:ns}:stored-total']);
    assert.equal(stored.length, 1);
    assert.equal(stored[0]!.profile, proto.length);
    assert.equal(stored[0]!.summary, Number(await client.strlen('mlp:{ns/tagged}:c:c1')));
    await store.forgetProbe('ns/tagged');
    assert.deepEqual(await client.keys('*'), []);
  });

  test('keys of the layout before hash tags are renamed on start, TTLs kept, and the series reads back', async () => {
    // What an earlier operator wrote for probe ns/old (and one key already in the new layout).
    await client.set('mlp:ns/old:c:c1', JSON.stringify({ time: snapshot(1).time.toISOString(), mapImpl: 'swiss', evidence: 'symbolized', totals: snapshot(1).totals, usages: [], allocBytesByFunction: {} }), 'EX', 500);
    await client.set('mlp:ns/old:p:c1', proto, 'EX', 500);
    await client.zadd('mlp:ns/old:t:pod-1:series', snapshot(1).time.getTime(), 'c1');
    await client.expire('mlp:ns/old:t:pod-1:series', 500);
    await client.hset('mlp:ns/old:targets', 'pod-1', JSON.stringify({ name: 'a', namespace: 'ns', uid: 'pod-1' }));
    await client.set('mlp:{ns/new}:targets:x', '1');
    await client.set('other-app:ns/x:y', 'untouched');

    assert.equal(await store.adoptLegacyKeys(), 4);
    assert.equal(await store.adoptLegacyKeys(), 0, 'idempotent');
    assert.deepEqual((await client.keys('mlp:ns/old:*')).sort(), []);
    const ttl = await client.ttl('mlp:{ns/old}:c:c1');
    assert.ok(ttl > 400 && ttl <= 500, `TTL kept (${ttl} s)`);
    assert.deepEqual((await store.captures('ns/old', 'pod-1')).map((c) => c.id), ['c1']);
    assert.equal((await store.loadSeries('ns/old', 'pod-1')).length, 1);
    assert.ok((await store.profile('ns/old', 'c1'))?.equals(proto));
    assert.deepEqual((await store.targets('ns/old')).map((t) => t.uid), ['pod-1']);
    assert.equal(await client.get('other-app:ns/x:y'), 'untouched');
    assert.equal(await client.get('mlp:{ns/new}:targets:x'), '1');
  });
});

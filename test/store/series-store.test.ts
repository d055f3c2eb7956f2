import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { attributeProfile, siteKey, type Site, type SiteUsage } from '../../src/analysis/attribute.js';
import { analyzeSeries, type TimedSnapshot } from '../../src/analysis/series.js';
import { decodeHeapProfile } from '../../src/pprof/index.js';
import { SeriesStore, storedSnapshotJson } from '../../src/store/series-store.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { readFixture } from '../support/fixtures.js';

describe('series store in a real Redis', () => {
  let redis: RedisServer;
  let client: Redis;
  let store: SeriesStore;
  const proto = readFixture('go1.26', 'heap-001.pb.gz');
  const snapshot = (minute: number) => ({ ...attributeProfile(decodeHeapProfile(proto)), time: new Date(Date.UTC(2026, 10, 26, 4, minute)) });

  before(async () => {
    redis = await startRedis();
    client = new Redis(redis.url);
    store = new SeriesStore(client);
  });
  after(async () => {
    client.disconnect();
    await redis.stop();
  });

  test('a capture round-trips: the series comes back ordered and the raw profile byte for byte', async () => {
    await store.addCapture('ns/p', 'pod-1', { id: 'c2', snapshot: snapshot(2), proto }, 12, 600);
    await store.addCapture('ns/p', 'pod-1', { id: 'c1', snapshot: snapshot(1), proto }, 12, 600);
    const series = await store.loadSeries('ns/p', 'pod-1');
    assert.deepEqual(series.map((s) => s.time.getUTCMinutes()), [1, 2]);
    assert.ok(series[0]!.usages.length > 0);
    assert.ok(series[0]!.allocBytesByFunction instanceof Map);
    assert.equal(series[0]!.memProfileRate, snapshot(1).memProfileRate, 'the sampling rate, for the noise model');
    assert.ok(series[0]!.memProfileRate! > 0);
    assert.ok((await store.profile('ns/p', 'c1'))?.equals(proto));
  });

  test('the same capture id twice (a retried job) is stored once', async () => {
    await store.addCapture('ns/p', 'pod-1', { id: 'c2', snapshot: snapshot(3), proto }, 12, 600);
    const refs = await store.captures('ns/p', 'pod-1');
    assert.deepEqual(refs.map((r) => r.id), ['c1', 'c2']);
  });

  test('the window keeps only the newest captures', async () => {
    for (let i = 10; i < 20; i++) await store.addCapture('ns/w', 'pod-1', { id: `w${i}`, snapshot: snapshot(i), proto }, 4, 600);
    assert.deepEqual((await store.captures('ns/w', 'pod-1')).map((r) => r.id), ['w16', 'w17', 'w18', 'w19']);
    assert.equal(await store.profile('ns/w', 'w15'), null, 'a capture out of the window is deleted, profile included');
    assert.equal(await client.exists('mlp:{ns/w}:c:w10'), 0);
    assert.ok((await store.profile('ns/w', 'w16'))?.equals(proto));
  });

  test('targets of vanished pods and whole probes are forgotten', async () => {
    await store.recordTarget('ns/p', { name: 'a', namespace: 'ns', uid: 'pod-1' }, 600);
    await store.recordTarget('ns/p', { name: 'b', namespace: 'ns', uid: 'pod-2' }, 600);
    assert.equal(await store.forgetTargetsExcept('ns/p', new Set(['pod-2'])), 1);
    assert.deepEqual((await store.targets('ns/p')).map((t) => t.name), ['b']);
    assert.deepEqual(await store.loadSeries('ns/p', 'pod-1'), []);
    const first = await store.firstSeen('ns/p', ['k1'], new Date('2026-11-26T04:00:00Z'), 600);
    const later = await store.firstSeen('ns/p', ['k1', 'k2'], new Date('2026-11-26T05:00:00Z'), 600);
    assert.equal(first.get('k1'), '2026-11-26T04:00:00.000Z');
    assert.equal(later.get('k1'), '2026-11-26T04:00:00.000Z', 'first seen does not move');
    assert.equal(later.get('k2'), '2026-11-26T05:00:00.000Z');
    assert.ok((await store.forgetProbe('ns/p')) > 0);
    assert.deepEqual(await client.keys('mlp:{ns/p}:*'), []);
    assert.ok((await client.keys('mlp:{ns/w}:*')).length > 0, 'other probes untouched');
  });

  test('a thing said once: true the first time per probe, false after (from any client), gone with the probe', async () => {
    assert.equal(await store.firstTime('ns/said', 'skipped:pod-1', 600), true);
    assert.equal(await new SeriesStore(client).firstTime('ns/said', 'skipped:pod-1', 600), false, 'another worker asks');
    assert.equal(await store.firstTime('ns/said', 'skipped:pod-2', 600), true, 'another thing');
    assert.equal(await store.firstTime('ns/other', 'skipped:pod-1', 600), true, 'another probe');
    assert.ok((await client.ttl('mlp:{ns/said}:said:skipped:pod-1')) > 0, 'expires');
    await store.forgetProbe('ns/said');
    assert.equal(await store.firstTime('ns/said', 'skipped:pod-1', 600), true, 'a probe made again under the name says it again');
  });
});

describe('stored captures from before callers were part of a usage', () => {
  // A probe upgraded mid-window: its older captures keyed a library line by
  // its owner only, one usage named after the caller with the most bytes;
  // the newer ones have a usage per caller. The old usage must read as its
  // caller's, so that one series runs through the whole window.
  let redis: RedisServer;
  let client: Redis;
  const MiB = 1024 * 1024;
  const set: Site = { function: 'github.com/patrickmn/go-cache.(*cache).Set', file: '/go/pkg/mod/github.com/patrickmn/go-cache@v2.1.0+incompatible/cache.go', line: 61 };
  const remember: Site = { function: 'main.remember', file: '/app/main.go', line: 38 };
  const session: Site = { function: 'main.session', file: '/app/main.go', line: 42 };
  const usage = (caller: Site, inuse: number, alloc: number, key = siteKey(set, 'map', caller)): SiteUsage => ({
    key,
    site: set,
    caller,
    kind: 'map',
    evidence: 'symbolized',
    mapImpl: 'swiss',
    inuseBytes: inuse,
    allocBytes: alloc,
    inuseObjects: inuse / 40_960,
    allocObjects: alloc / 40_960,
    components: { groups: inuse },
    allocComponents: {},
  });
  const capture = (minute: number, usages: SiteUsage[]): TimedSnapshot => {
    const inuse = usages.reduce((a, u) => a + u.inuseBytes, 0);
    const alloc = usages.reduce((a, u) => a + u.allocBytes, 0);
    return { time: new Date(Date.UTC(2026, 11, 2, 3, minute)), mapImpl: 'swiss', usages, allocBytesByFunction: new Map([[set.function, alloc]]), totals: { inuseBytes: inuse, allocBytes: alloc, mapInuseBytes: inuse }, evidence: 'symbolized', memProfileRate: 512 * 1024 };
  };
  // main.remember's cache grows by 2 MiB a minute; main.session's stays at 9 MiB while it churns.
  const leak = (i: number): number => (4 + 2 * i) * MiB;
  const bounded = (i: number): { inuse: number; alloc: number } => ({ inuse: 9 * MiB, alloc: (9 + 3 * i) * MiB });

  before(async () => {
    redis = await startRedis();
    client = new Redis(redis.url);
  });
  after(async () => {
    client.disconnect();
    await redis.stop();
  });

  test("an old capture's usage with a caller meets the new captures' series of that caller", async () => {
    const store = new SeriesStore(client);
    for (let i = 0; i < 10; i++) {
      const b = bounded(i);
      // Captures 0-3 as the old engine stored them: one usage at the line, keyed by the owner only, the bytes of both caches.
      const json =
        i < 4
          ? storedSnapshotJson(capture(i, [usage(remember, leak(i) + b.inuse, leak(i) + b.alloc, siteKey(set, 'map'))]))
          : storedSnapshotJson(capture(i, [usage(remember, leak(i), leak(i)), usage(session, b.inuse, b.alloc)]));
      if (i < 4) assert.match(json, /"key":"map\\tgithub.com\/patrickmn\/go-cache.\(\*cache\).Set\\t[^"]*\\t61"/, 'stored in the old shape');
      await store.keepCapture('ns/upgraded', 'pod-1', { id: `c${i}`, time: new Date(Date.UTC(2026, 11, 2, 3, i)), json, proto: Buffer.from('pb') }, 12, 600);
    }
    const series = await store.loadSeries('ns/upgraded', 'pod-1');
    assert.equal(series.length, 10);
    assert.equal(series[0]?.usages[0]?.key, siteKey(set, 'map', remember), 'read as the key of its caller');
    const findings = analyzeSeries(series, { minMapBytes: 0, minGrowthBytesPerHour: 1024 * 1024, maxFindings: 100 }).findings;
    const ofRemember = findings.filter((f) => f.caller?.function === 'main.remember');
    assert.equal(ofRemember.length, 1, 'one series for the caller, not one per key shape');
    assert.deepEqual(
      ofRemember[0]?.series.map((p) => p.inuseBytes > 0),
      Array.from({ length: 10 }, () => true),
      'the old captures are in it',
    );
    assert.equal(findings.filter((f) => f.caller?.function === 'main.session').length, 1);
    assert.equal(findings.length, 2);
  });

  test('a finding keyed by its owner line only keeps its first sighting once its caller is part of its key', async () => {
    const store = new SeriesStore(client);
    const former = 'map|github.com/patrickmn/go-cache.(*cache).Set|cache.go|61';
    const withCaller = `${former}|main.remember|/app/main.go|38`;
    await store.firstSeen('ns/upgraded', [former], new Date('2026-12-01T10:00:00Z'), 600);
    const seen = await store.firstSeen('ns/upgraded', [withCaller, 'map|main.fill|main.go|90'], new Date('2026-12-02T03:00:00Z'), 600, new Map([[withCaller, former]]));
    assert.equal(seen.get(withCaller), '2026-12-01T10:00:00.000Z');
    assert.equal(seen.get('map|main.fill|main.go|90'), '2026-12-02T03:00:00.000Z', 'a key without a former one is new');
    const later = await store.firstSeen('ns/upgraded', [withCaller], new Date('2026-12-02T04:00:00Z'), 600);
    assert.equal(later.get(withCaller), '2026-12-01T10:00:00.000Z', 'kept under its new key');
  });
});

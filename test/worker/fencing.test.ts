// The store's fence for a probe deleted and re-created under the same name
// while a round of it runs (src/store/series-store.ts: claim, fenced writes,
// forgetOwn). Real Redis: a standalone server, and a three-primary cluster
// (the fenced writes are one Lua script over keys of one hash slot).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Cluster, Redis } from 'ioredis';
import { attributeProfile } from '../../src/analysis/attribute.js';
import { decodeHeapProfile } from '../../src/pprof/index.js';
import type { RedisClient } from '../../src/queue/connection.js';
import { fencedProbe, SeriesStore, storedSnapshotJson, type StoredIncident } from '../../src/store/series-store.js';
import { startRedis, startRedisCluster, type RedisClusterSet, type RedisServer } from '../cluster/redis.js';
import { readFixture } from '../support/fixtures.js';

const proto = readFixture('go1.26', 'heap-001.pb.gz');
const json = storedSnapshotJson({ ...attributeProfile(decodeHeapProfile(proto)), time: new Date() });
const probeObject = (uid: string, creationTimestamp: string) => ({ metadata: { namespace: 'shop', name: 'checkout', uid, creationTimestamp } });
const OLD = fencedProbe(probeObject('uid-old', '2026-12-01T10:00:00Z'));
const NEW = fencedProbe(probeObject('uid-new', '2026-12-01T10:05:00Z'));

async function keysOf(client: RedisClient): Promise<string[]> {
  const nodes = client instanceof Cluster ? client.nodes('master') : [client];
  return (await Promise.all(nodes.map((node) => node.keys('mlp:{shop/checkout}:*')))).flat().sort();
}

function fencingSpecification(name: string, connect: () => Promise<RedisClient>): void {
  describe(`fencing by the probe object a round started with (${name})`, () => {
    let client: RedisClient;
    let store: SeriesStore;
    const capture = (id: string) => ({ id, time: new Date(), json, proto });
    before(async () => {
      client = await connect();
      store = new SeriesStore(client);
    });
    after(() => client.disconnect());

    test('a round of a deleted probe writes nothing into the keys of the probe re-created under its name, and cannot take them back or wipe them', async () => {
      await store.forgetProbe('shop/checkout');
      assert.equal(await store.claim(OLD, 600), 'claimed', 'no owner yet: the first round claims');
      assert.equal(await store.addStoredCapture(OLD, 'pod-a', capture('old-1'), 12, 600), true);
      await store.recordTarget(OLD, { name: 'a', namespace: 'shop', uid: 'pod-a' }, 600);

      // The probe is deleted and re-created; the new probe's first round claims the name.
      assert.equal(await store.claim(NEW, 600), 'taken-over');
      assert.deepEqual(await keysOf(client), ['mlp:{shop/checkout}:owner'], 'the older probe\'s keys went with the take-over');
      assert.equal(await store.addStoredCapture(NEW, 'pod-b', capture('new-1'), 12, 600), true);
      await store.recordTarget(NEW, { name: 'b', namespace: 'shop', uid: 'pod-b' }, 600);
      const owned = await keysOf(client);

      // The stale round goes on: every write is a no-op.
      assert.equal(await store.addStoredCapture(OLD, 'pod-a', capture('old-2'), 12, 600), false);
      await store.recordTarget(OLD, { name: 'a', namespace: 'shop', uid: 'pod-a' }, 600);
      await store.saveGc(OLD, 'pod-a', { cycles: [] }, 10, 600);
      await store.firstSeen(OLD, ['finding-1'], new Date(), 600);
      await store.forgetTargetsExcept(OLD, new Set(['pod-a']));
      const incident: StoredIncident = { id: 'i1', pod: 'a', namespace: 'shop', podUid: 'pod-a', container: 'app', reason: 'OOMKilled', time: new Date().toISOString(), detectedTime: new Date().toISOString(), restartCount: 1, verdict: 'Leaking', captureIds: [], captures: [], findings: [] };
      assert.equal(await store.recordIncident(OLD, incident, new Date(Date.now() + 60_000)), 'fenced');
      await store.incidents(OLD, new Date(), 0);
      assert.equal(await store.claim(OLD, 600), 'newer-owner', 'an older probe never takes the name back');
      assert.equal(await store.forgetOwn(OLD), 0, 'nor wipes what the new probe keeps');

      assert.deepEqual(await keysOf(client), owned, 'the new probe\'s keys are as it wrote them');
      assert.deepEqual((await store.targets(NEW)).map((t) => t.uid), ['pod-b']);
      assert.deepEqual((await store.captures(NEW, 'pod-b')).map((c) => c.id), ['new-1']);
      assert.ok((await store.profile(NEW, 'new-1'))?.equals(proto));
      assert.equal(await client.ttl('mlp:{shop/checkout}:owner') > 0, true, 'the owner key has a TTL like every key');
    });

    test('things said once and the controller\'s clean-up are fenced too: a late clean-up of the deleted probe, or its trigger watcher, never touches the re-created probe\'s keys', async () => {
      await store.forgetProbe('shop/checkout');
      assert.equal(await store.claim(OLD, 600), 'claimed');
      assert.equal(await store.firstTime(OLD, 'trigger-skipped:uid-old:pod-a', 600), true);
      assert.equal(await store.firstTime(OLD, 'trigger-skipped:uid-old:pod-a', 600), false, 'said once');
      assert.equal(await store.claim(NEW, 600), 'taken-over');
      assert.equal(await store.addStoredCapture(NEW, 'pod-b', capture('new-1'), 12, 600), true);
      assert.equal(await store.firstTime(NEW, 'trigger-skipped:uid-new:pod-b', 600), true, 'the new probe says its own');
      const owned = await keysOf(client);
      assert.ok(owned.includes('mlp:{shop/checkout}:said:trigger-skipped:uid-new:pod-b'));

      // The old probe's watcher, still following its pods, says nothing and writes nothing.
      assert.equal(await store.firstTime(OLD, 'trigger-skipped:uid-old:pod-c', 600), false);
      // The controller's clean-up of the old probe runs late: the API server shows the new probe under the name.
      const asked: string[] = [];
      const liveUid = 'uid-new';
      const isGone = async (ownerUid: string) => {
        asked.push(ownerUid);
        return ownerUid !== liveUid;
      };
      assert.equal(await store.forgetGoneProbe('shop/checkout', isGone), 0);
      assert.deepEqual(asked, ['uid-new'], 'it asks about the owner of the keys, not the probe it was cleaning up');
      assert.deepEqual(await keysOf(client), owned, 'the new probe\'s series and said-once keys survive');

      // Deleted in turn: its clean-up (the API server no longer knows uid-new) takes everything, owner key last.
      assert.ok((await store.forgetGoneProbe('shop/checkout', async () => true)) > 0);
      assert.deepEqual(await keysOf(client), []);
      // A name with keys and no owner (from before owner keys) is cleaned while none claims it.
      await store.addStoredCapture('shop/checkout', 'pod-a', capture('legacy-1'), 12, 600);
      assert.ok((await store.forgetGoneProbe('shop/checkout', async () => assert.fail('no owner to ask about'))) > 0);
      assert.deepEqual(await keysOf(client), []);
    });

    test('an incident is recorded once per id: a second sighting of the same end writes nothing', async () => {
      await store.forgetProbe('shop/checkout');
      assert.equal(await store.claim(NEW, 600), 'claimed');
      const incident: StoredIncident = { id: 'i2', pod: 'b', namespace: 'shop', podUid: 'pod-b', container: 'app', reason: 'OOMKilled', time: new Date().toISOString(), detectedTime: new Date().toISOString(), restartCount: 0, restarted: false, verdict: 'Leaking', captureIds: [], captures: [], findings: [] };
      assert.equal(await store.recordIncident(NEW, incident, new Date(Date.now() + 60_000)), 'recorded');
      assert.equal(await store.recordIncident(NEW, { ...incident, reason: 'Error', verdict: 'Healthy' }, new Date(Date.now() + 120_000)), 'recorded-before');
      const kept = await store.storedIncidents(NEW);
      assert.deepEqual(kept.map((i) => [i.id, i.verdict, i.restarted]), [['i2', 'Leaking', false]], 'the first record stands');
      assert.equal(await store.recordIncident('shop/checkout', { ...incident, id: 'i3' }, new Date(Date.now() + 60_000)), 'recorded', 'unfenced (tools, tests): once per id too');
      assert.equal(await store.recordIncident('shop/checkout', { ...incident, id: 'i3' }, new Date(Date.now() + 60_000)), 'recorded-before');
      await store.forgetProbe('shop/checkout');
    });

    test('a round of a probe deleted with no successor forgets only what it owns; keys from before owner keys are adopted', async () => {
      await store.forgetProbe('shop/checkout');
      // An operator of the version before writes unfenced.
      await store.addStoredCapture('shop/checkout', 'pod-a', capture('legacy-1'), 12, 600);
      assert.equal(await store.claim(OLD, 600), 'claimed');
      assert.deepEqual((await store.captures(OLD, 'pod-a')).map((c) => c.id), ['legacy-1'], 'adopted as it was');
      assert.equal(await store.claim(OLD, 600), 'owned');
      assert.ok((await store.forgetOwn(OLD)) > 0);
      assert.deepEqual(await keysOf(client), []);
    });
  });
}

let single: RedisServer | undefined;
let cluster: RedisClusterSet | undefined;
fencingSpecification('standalone', async () => {
  single = await startRedis();
  return new Redis(single.url);
});
fencingSpecification('Redis Cluster, three primaries', async () => {
  cluster = await startRedisCluster({ primaries: 3 });
  const client = new Cluster(cluster.seeds.split(',').map((a) => ({ host: a.split(':')[0]!, port: Number(a.split(':')[1]) })), { redisOptions: { password: cluster.password } });
  await new Promise<void>((resolve, reject) => client.once('ready', resolve).once('error', reject));
  return client;
});
after(async () => {
  await single?.stop();
  await cluster?.stop();
});

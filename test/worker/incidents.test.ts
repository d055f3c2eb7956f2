import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { attributeProfile } from '../../src/analysis/attribute.js';
import { growingUpToEnd } from '../../src/analysis/incident.js';
import type { MapLeakProbe } from '../../src/api/types.js';
import { checkContainerStatus } from '../../src/clusters/pods.js';
import { decodeHeapProfile } from '../../src/pprof/index.js';
import { SeriesStore } from '../../src/store/series-store.js';
import { incidentEvent, latestSeriesByPod, PINNED_CAPTURES, recordIncident, restartedSince, seriesKeyOf } from '../../src/worker/incidents.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { readFixture } from '../support/fixtures.js';

const probe = { spec: { thresholds: { minMapBytes: 1 << 20, minGrowthBytesPerHour: 1 << 20, maxFindings: 10 } } } as MapLeakProbe;
const pod = (uid: string) => ({ name: 'app-0', namespace: 'shop', uid, container: 'server' });

describe('incidents in a real Redis: pins past the window, expiry after the retention, the count cap', () => {
  let redis: RedisServer;
  let client: Redis;
  let store: SeriesStore;
  const proto = readFixture('go1.26', 'heap-008.pb.gz');
  const attributed = attributeProfile(decodeHeapProfile(proto));
  /** `count` captures of one series, one a second, the last `endsAgoMs` before now; series TTL `ttlSeconds`. */
  const fillSeries = async (probeKey: string, series: string, count: number, ttlSeconds: number): Promise<string[]> => {
    const ids: string[] = [];
    for (let i = 0; i < count; i++) {
      const id = `${series.replace(/[^0-9a-z]/g, '')}c${i}`.padEnd(8, '0');
      await store.addCapture(probeKey, series, { id, snapshot: { ...attributed, time: new Date(Date.now() - (count - i) * 1000) }, proto }, 12, ttlSeconds);
      ids.push(id);
    }
    return ids;
  };

  before(async () => {
    redis = await startRedis();
    client = new Redis(redis.url);
    store = new SeriesStore(client);
  });
  after(async () => {
    client.disconnect();
    await redis.stop();
  });

  test('a restart ends the series: its last captures are pinned past the series TTL, until the retention', async () => {
    const ids = await fillSeries('shop/p1', 'uid-1', PINNED_CAPTURES + 1, 1);
    const finishedAt = new Date().toISOString();
    const incident = await recordIncident(
      store,
      probe,
      'shop/p1',
      pod('uid-1'),
      { restartCount: 1, lastTerminated: { reason: 'OOMKilled', exitCode: 137, finishedAt } },
      { name: 'app-0', namespace: 'shop', uid: 'uid-1' },
      { detectedAt: new Date(), retentionMs: 3000 },
    );
    assert.deepEqual(incident.captureIds, ids.slice(-PINNED_CAPTURES), 'the last captures before the end, oldest first');
    assert.equal(incident.reason, 'OOMKilled');
    assert.equal(incident.time, finishedAt);
    assert.equal(incident.restartCount, 1);
    assert.ok((await store.profileTtl('shop/p1', ids.at(-1)!)) > 1, 'pinned longer than the series TTL');

    await sleep(1500);
    assert.equal(await store.profile('shop/p1', ids[0]!), null, 'an unpinned capture expires with its series');
    assert.ok((await store.profile('shop/p1', ids.at(-1)!))?.equals(proto), 'a pinned raw profile is still there, byte for byte');
    assert.deepEqual((await store.incidents('shop/p1', new Date(Date.now() - 3000), 10)).map((i) => i.id), [incident.id]);

    await sleep(2000);
    assert.equal(await store.profile('shop/p1', ids.at(-1)!), null, 'gone after the retention');
    assert.deepEqual(await store.incidents('shop/p1', new Date(Date.now() - 3000), 10), []);
    assert.equal(await client.exists('mlp:shop/p1:incidents'), 0, 'the index is gone too');
  });

  test('the count cap: past the newest N, incidents are dropped with their pinned profiles at once', async () => {
    const kept: string[][] = [];
    const incidentIds: string[] = [];
    for (let restart = 1; restart <= 3; restart++) {
      const series = seriesKeyOf('uid-2', restart - 1);
      kept.push(await fillSeries('shop/p2', series, 2, 600));
      const incident = await recordIncident(
        store,
        probe,
        'shop/p2',
        pod('uid-2'),
        { restartCount: restart, lastTerminated: { reason: 'Error', exitCode: 1, finishedAt: new Date().toISOString() } },
        { name: 'app-0', namespace: 'shop', uid: 'uid-2', series, restartCount: restart - 1 },
        { detectedAt: new Date(), retentionMs: 600_000 },
      );
      incidentIds.push(incident.id);
      await sleep(20);
    }
    const listed = await store.incidents('shop/p2', new Date(Date.now() - 600_000), 2);
    assert.deepEqual(listed.map((i) => i.restartCount), [3, 2], 'newest first, at most 2');
    for (const id of kept[0]!) assert.equal(await store.profile('shop/p2', id), null, 'the dropped incident took its profiles');
    for (const id of kept[2]!) assert.ok(await store.profile('shop/p2', id));
    assert.equal((await store.storedIncidents('shop/p2')).length, 2);
  });

  test('a capture taken after the container ended is not its evidence (a restart between a round\'s pod list and its capture)', async () => {
    const ids = await fillSeries('shop/p3', 'uid-3', 3, 600);
    const series = await store.loadSeries('shop/p3', 'uid-3');
    const finishedAt = new Date((series[1]!.time.getTime() + series[2]!.time.getTime()) / 2).toISOString();
    const incident = await recordIncident(store, probe, 'shop/p3', pod('uid-3'), { restartCount: 1, lastTerminated: { reason: 'OOMKilled', finishedAt } }, { name: 'app-0', namespace: 'shop', uid: 'uid-3' }, { detectedAt: new Date(), retentionMs: 60_000 });
    assert.deepEqual(incident.captureIds, ids.slice(0, 2));
    assert.equal(incident.exitCode, undefined, 'no exit code when the pod status gave none');
  });
});

describe('incident rules', () => {
  test('growing up to the end: growing, and the last capture at its peak within √(B·R) sampling noise', () => {
    const rate = 512 * 1024;
    const peak = 64 << 20;
    const noise = Math.sqrt(peak * rate);
    assert.equal(growingUpToEnd({ pattern: 'growing', inuseBytes: peak, maxInuseBytes: peak }, rate), true);
    assert.equal(growingUpToEnd({ pattern: 'growing', inuseBytes: peak - noise * 0.9, maxInuseBytes: peak }, rate), true, 'a dip within the noise');
    assert.equal(growingUpToEnd({ pattern: 'growing', inuseBytes: peak - noise * 1.5, maxInuseBytes: peak }, rate), false, 'it had stopped before the end');
    assert.equal(growingUpToEnd({ pattern: 'retained', inuseBytes: peak, maxInuseBytes: peak }, rate), false);
  });

  test('a restart is a restartCount above the one the last followed series started at', () => {
    const record = { name: 'a', namespace: 'n', uid: 'u', restartCount: 2 };
    assert.equal(restartedSince(record, { restartCount: 3 }), record);
    assert.equal(restartedSince(record, { restartCount: 2 }), undefined);
    assert.equal(restartedSince(undefined, { restartCount: 5 }), undefined, 'a pod seen for the first time has no series to end');
    const older = { name: 'a', namespace: 'n', uid: 'u' };
    assert.equal(restartedSince(older, { restartCount: 1 }), older, 'records written before series per restart are restart 0');
    assert.equal(restartedSince(older, { restartCount: 0 }), undefined);
    const byPod = latestSeriesByPod([
      { name: 'a', namespace: 'n', uid: 'u', series: 'u.r2', restartCount: 2 },
      { name: 'a', namespace: 'n', uid: 'u' },
      { name: 'b', namespace: 'n', uid: 'v', series: 'v', restartCount: 0 },
    ]);
    assert.equal(byPod.get('u')?.series, 'u.r2', 'a pod\'s newest series is the one to compare with');
    assert.equal(byPod.get('v')?.series, 'v');
    assert.equal(seriesKeyOf('u', 0), 'u');
    assert.equal(seriesKeyOf('u', 3), 'u.r3');
  });

  test('container statuses from a (possibly hostile) API server are read field by field; the termination message never', () => {
    const checked = checkContainerStatus({
      name: 'server',
      restartCount: 4,
      containerID: 'containerd://' + 'a'.repeat(64),
      lastState: { terminated: { reason: 'OOMKilled', exitCode: 137, finishedAt: '2026-12-01T10:00:00Z', message: 'SECRET=hunter2' } },
    });
    assert.deepEqual(checked, { name: 'server', restartCount: 4, containerId: 'containerd://' + 'a'.repeat(64), lastTerminated: { reason: 'OOMKilled', exitCode: 137, finishedAt: '2026-12-01T10:00:00.000Z' } });
    const hostile = checkContainerStatus({
      name: 'server',
      restartCount: 1,
      containerID: 'x://../../etc',
      lastState: { terminated: { reason: '<script>alert(1)</script>', exitCode: 'nope', finishedAt: 'yesterday' } },
    });
    assert.deepEqual(hostile, { name: 'server', restartCount: 1, lastTerminated: { reason: 'Unknown' } });
    assert.equal(checkContainerStatus({ name: 'server', restartCount: -1 }), undefined);
    assert.equal(checkContainerStatus({ name: 'Bad Name', restartCount: 0 }), undefined);
  });

  test('the Event says what happened in the operator\'s words', () => {
    const { reason, message } = incidentEvent({
      id: 'abc', pod: 'app-0', namespace: 'shop', container: 'server', reason: 'OOMKilled', exitCode: 137, time: '2026-12-01T10:00:00.000Z', detectedTime: '2026-12-01T10:00:03.000Z', restartCount: 1, verdict: 'Leaking', captureIds: ['c1', 'c2'],
      findings: [{ function: 'main.(*store).put', file: '/src/main.go', line: 42, kind: 'map', pattern: 'growing', inuseBytes: 1 << 26, growthBytesPerHour: 1 << 30, growingUpToKill: true }],
    });
    assert.equal(reason, 'ContainerOOMKilled');
    assert.equal(message, 'app-0 container server: OOMKilled (exit code 137) at 2026-12-01T10:00:00.000Z, restart 1; verdict at its last capture: Leaking; top finding: main.(*store).put (main.go:42) growing up to the end; 2 captures kept (status.incidents, id abc)');
    assert.equal(incidentEvent({ ...{ id: 'x', pod: 'p', namespace: 'n', container: 'c', reason: 'Error', exitCode: 1, time: 't', detectedTime: 't', restartCount: 2, verdict: 'Unknown', captureIds: [], findings: [] } }).reason, 'ContainerRestarted');
  });
});

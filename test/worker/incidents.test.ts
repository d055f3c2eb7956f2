import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { attributeProfile } from '../../src/analysis/attribute.js';
import { printable } from '../../src/api/bounded.js';
import { growingUpToEnd, hasExpiredIncidents, incidentFindings, incidentsWithinRetention } from '../../src/analysis/incident.js';
import type { Finding } from '../../src/analysis/series.js';
import type { MapLeakProbe } from '../../src/api/types.js';
import { checkContainerStatus } from '../../src/clusters/pods.js';
import { ProfileError } from '../../src/pprof/errors.js';
import { decodeHeapProfile } from '../../src/pprof/index.js';
import { SeriesStore } from '../../src/store/series-store.js';
import { containerInstance, endInRunningPod, incidentEvent, incidentEvents, incidentId, latestSeriesByPod, PINNED_CAPTURES, plausibleEnd, recordIncident as record, restartedSince, seriesKeyOf } from '../../src/worker/incidents.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { readFixture } from '../support/fixtures.js';

const probe = { spec: { thresholds: { minMapBytes: 1 << 20, minGrowthBytesPerHour: 1 << 20, maxFindings: 10 } } } as MapLeakProbe;
const pod = (uid: string) => ({ name: 'app-0', namespace: 'shop', uid, container: 'server' });
/** recordIncident on an unfenced key: always kept. */
const recordIncident = async (...args: Parameters<typeof record>) => {
  const incident = await record(...args);
  assert.ok(incident, 'an unfenced incident is always kept');
  return incident;
};

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

  test("an analysis the decode thread refuses (its time, its heap) leaves the incident's verdict Unknown, with its captures kept; any other failure is not swallowed", async () => {
    const ids = await fillSeries('shop/p7', 'uid-7', 2, 600);
    const ended = { restartCount: 1, lastTerminated: { reason: 'OOMKilled', exitCode: 137, finishedAt: new Date().toISOString() } };
    const refused = () => Promise.reject(new ProfileError('TooLarge', 'the series analysis takes longer than 1 ms (limit)'));
    const incident = await recordIncident(store, probe, 'shop/p7', pod('uid-7'), ended, { name: 'app-0', namespace: 'shop', uid: 'uid-7' }, { detectedAt: new Date(), retentionMs: 60_000, analyze: refused });
    assert.equal(incident.verdict, 'Unknown');
    assert.deepEqual(incident.findings, []);
    assert.deepEqual(incident.captureIds, ids, 'the evidence is pinned all the same');
    await fillSeries('shop/p6', 'uid-6', 2, 600);
    const broken = () => Promise.reject(new Error('decode gate closed'));
    await assert.rejects(record(store, probe, 'shop/p6', pod('uid-6'), ended, { name: 'app-0', namespace: 'shop', uid: 'uid-6' }, { detectedAt: new Date(), retentionMs: 60_000, analyze: broken }), /decode gate closed/);
  });

  test('several restarts between two rounds are one incident that says how many it stands for', async () => {
    const ids = await fillSeries('shop/p4', 'uid-4.r2', 2, 600);
    const finishedAt = new Date().toISOString();
    const incident = await recordIncident(store, probe, 'shop/p4', pod('uid-4'), { restartCount: 5, lastTerminated: { reason: 'OOMKilled', exitCode: 137, finishedAt } }, { name: 'app-0', namespace: 'shop', uid: 'uid-4', series: 'uid-4.r2', restartCount: 2 }, { detectedAt: new Date(), retentionMs: 60_000 });
    assert.equal(incident.restarts, 3, 'restarts 3, 4 and 5 fell between the rounds');
    assert.equal(incident.restartCount, 5);
    assert.deepEqual(incident.captureIds, ids, 'the evidence is the series the first of them ended');
    assert.match(incidentEvent(incident).message, /restart 5 \(3 restarts since the last round\)/);
    const one = await recordIncident(store, probe, 'shop/p4', pod('uid-4'), { restartCount: 6 }, { name: 'app-0', namespace: 'shop', uid: 'uid-4', series: 'uid-4.r5', restartCount: 5 }, { detectedAt: new Date(), retentionMs: 60_000 });
    assert.equal(one.restarts, 1);
    assert.doesNotMatch(incidentEvent(one).message, /since the last round/);
  });

  test('a finishedAt in the future or before the series began is not believed: the incident is filed at detection, kept for the retention, not longer and not shorter', async () => {
    const retentionMs = 60_000;
    await fillSeries('shop/p5', 'uid-5', 2, 600);
    const detectedAt = new Date();
    const future = await recordIncident(store, probe, 'shop/p5', pod('uid-5'), { restartCount: 1, lastTerminated: { reason: 'OOMKilled', finishedAt: '9999-12-31T23:59:59.000Z' } }, { name: 'app-0', namespace: 'shop', uid: 'uid-5' }, { detectedAt, retentionMs });
    assert.equal(future.time, detectedAt.toISOString());
    assert.equal(future.captureIds.length, 2, 'the captures before detection are its evidence');
    const ttl = await store.profileTtl('shop/p5', future.captureIds[0]!);
    assert.ok(ttl > 0 && ttl <= retentionMs / 1000, `pinned for the retention, not until year 9999: ${ttl} s`);

    await fillSeries('shop/p5', 'uid-5.r1', 2, 600);
    const past = await recordIncident(store, probe, 'shop/p5', pod('uid-5'), { restartCount: 2, lastTerminated: { reason: 'Error', exitCode: 1, finishedAt: '1970-01-01T00:00:00.000Z' } }, { name: 'app-0', namespace: 'shop', uid: 'uid-5', series: 'uid-5.r1', restartCount: 1 }, { detectedAt, retentionMs });
    assert.equal(past.time, detectedAt.toISOString());
    assert.equal(past.captureIds.length, 2, 'a far-past end does not disown the evidence');
    assert.deepEqual((await store.incidents('shop/p5', new Date(Date.now() - retentionMs), 10)).map((i) => i.id).sort(), [future.id, past.id].sort(), 'and is not dropped as expired the moment it is recorded');

    const start = new Date('2026-12-01T10:00:00Z');
    const seen = new Date('2026-12-01T11:00:00Z');
    assert.equal(plausibleEnd('2026-12-01T10:30:00.000Z', start, seen), '2026-12-01T10:30:00.000Z');
    assert.equal(plausibleEnd('2026-12-01T11:00:00.001Z', start, seen), undefined);
    assert.equal(plausibleEnd('2026-12-01T09:59:59.999Z', start, seen), undefined);
    assert.equal(plausibleEnd('2026-12-01T09:00:00.000Z', undefined, seen), '2026-12-01T09:00:00.000Z', 'no captures: only the future is ruled out');
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

  test('a followed container that ended in a pod still Running is an incident only when nothing restarts it, once, and with the same id as the same end seen any other way', () => {
    const oom = { reason: 'OOMKilled', exitCode: 137 };
    const followed = { name: 'app-0', namespace: 'shop', uid: 'u1', series: 'u1', restartCount: 0 };
    const inPod = (restartPolicy: 'Always' | 'OnFailure' | 'Never', terminated?: { reason: string; exitCode?: number }, restartCount = 0) => ({ uid: 'u1', container: 'server', restartPolicy, instance: { restartCount, ...(terminated ? { terminated } : {}) } });
    assert.deepEqual(endInRunningPod(inPod('Never', oom), followed), { podUid: 'u1', container: 'server', restartCount: 0, termination: oom });
    assert.equal(endInRunningPod(inPod('Never', { reason: 'Error', exitCode: 1 }), followed)?.termination?.reason, 'Error');
    assert.equal(endInRunningPod(inPod('Always', oom), followed), undefined, 'Always: the restart makes the incident');
    assert.equal(endInRunningPod(inPod('OnFailure', oom), followed), undefined, 'OnFailure restarts an OOM kill');
    assert.equal(endInRunningPod(inPod('OnFailure', { reason: 'Completed', exitCode: 0 }), followed), undefined, 'completed: no incident');
    assert.equal(endInRunningPod(inPod('Never', { reason: 'Completed', exitCode: 0 }), followed), undefined, 'completed: no incident');
    assert.equal(endInRunningPod(inPod('Never'), followed), undefined, 'still running');
    assert.equal(endInRunningPod(inPod('Never', oom), undefined), undefined, 'never followed: no evidence, no incident');
    assert.equal(endInRunningPod(inPod('Never', oom), { ...followed, endRecorded: true }), undefined, 'recorded by an earlier round');
    assert.equal(endInRunningPod(inPod('Never', oom, 1), followed), undefined, 'another instance than the followed series');
    assert.equal(incidentId('server', 'u1'), incidentId('server', 'u1'));
    assert.notEqual(incidentId('server', 'u1'), incidentId('sidecar', 'u1'), 'keyed by container');
    assert.notEqual(incidentId('server', 'u1'), incidentId('server', 'u1.r1'), 'and by the series that ended');
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

  test('containerID churn without a restartCount change is no restart; a pod first seen restarted, or recreated under its name, has no series to end', () => {
    const status = (containerID: string) => checkContainerStatus({ name: 'server', restartCount: 3, containerID, lastState: { terminated: { reason: 'OOMKilled', exitCode: 137 } } })!;
    const record = { name: 'app-0', namespace: 'shop', uid: 'u1', series: 'u1.r3', restartCount: 3 };
    for (const id of ['containerd://' + 'a'.repeat(64), 'containerd://' + 'b'.repeat(64), 'cri-o://c']) {
      assert.equal(restartedSince(record, containerInstance([status(id)], 'server')), undefined, `containerID ${id.slice(0, 16)}: the kubelet counts restarts, a new id alone is not one`);
    }
    const firstSeen = containerInstance([status('containerd://x')], 'server');
    assert.equal(seriesKeyOf('u1', firstSeen.restartCount), 'u1.r3', 'followed as its own series');
    const previousByPod = latestSeriesByPod([record]);
    assert.equal(restartedSince(previousByPod.get('u2'), { restartCount: 7 }), undefined, 'a pod recreated under the same name has a new uid: no incident for the old one');
    assert.equal(restartedSince(record, { restartCount: 2 }), undefined, 'a restartCount that went down is no restart');
  });

  test('hostile container statuses: numbers outside the CRD\'s int32 are dropped, reasons outside the kubelet\'s words become Unknown', () => {
    const checked = (terminated: Record<string, unknown>, restartCount: unknown = 1) => checkContainerStatus({ name: 'server', restartCount, lastState: { terminated } });
    assert.equal(checked({ reason: 'OOMKilled', exitCode: 2 ** 31 })?.lastTerminated?.exitCode, undefined);
    assert.equal(checked({ reason: 'OOMKilled', exitCode: -(2 ** 31) })?.lastTerminated?.exitCode, -(2 ** 31));
    assert.equal(checked({ reason: 'OOMKilled', exitCode: 2 ** 31 - 1 })?.lastTerminated?.exitCode, 2 ** 31 - 1);
    assert.equal(checked({ reason: 'OOMKilled' }, 2 ** 40), undefined, 'a huge restartCount: the status is not read');
    assert.equal(checked({ reason: 'OOMKilled' }, 1.5), undefined);
    for (const reason of ['OOM\nKilled', 'OOMKilled\u202e', 'R'.repeat(65), '', 'Killed by: root']) assert.equal(checked({ reason })?.lastTerminated?.reason, 'Unknown', JSON.stringify(reason));
    assert.equal(checked({ reason: 'ContainerCannotRun' })?.lastTerminated?.reason, 'ContainerCannotRun');
  });

  test('findings from a hostile profile reach the status and the Event printable and within the CRD\'s ranges', () => {
    const finding = (site: { function: string; file: string; line: number }, inuseBytes = 1 << 20): Finding => ({ site, kind: 'map', pattern: 'growing', inuseBytes, maxInuseBytes: inuseBytes, growthBytesPerHour: 1 << 20 }) as unknown as Finding;
    const [forged, long, nan] = incidentFindings(
      [finding({ function: 'main.put\nWarning Forged event\u202e', file: '/src/\u0000main.go', line: -1 }), finding({ function: '\u{1F600}'.repeat(600), file: 'f', line: 2 ** 40 }), finding({ function: 'f', file: 'f', line: 7 }, Number.NaN)],
      512 * 1024,
    );
    assert.equal(forged!.function, 'main.put\ufffdWarning Forged event\ufffd');
    assert.equal(forged!.file, '/src/\ufffdmain.go');
    assert.equal(forged!.line, 0, 'a negative line is outside the CRD\'s minimum');
    assert.equal([...long!.function].length, 512, '512 code points, as the CRD counts them');
    assert.equal(long!.function.length, 1024, 'no surrogate pair is cut in half');
    assert.equal(long!.line, 0);
    assert.equal(nan!.inuseBytes, 0);
    assert.doesNotMatch(incidentEvent({ id: 'x', pod: 'p', namespace: 'n', container: 'c', reason: 'OOMKilled', time: 't', detectedTime: 't', restartCount: 1, verdict: 'Leaking', captureIds: [], findings: [forged!] }).message, /\n/);
    assert.equal(printable('main.(*store).put', 512), 'main.(*store).put', 'Go names pass unchanged');
  });

  test("an incident's findings keep their caller: two callers of one library line stay apart", () => {
    const site = { function: 'github.com/patrickmn/go-cache.(*cache).Set', file: 'cache.go', line: 61 };
    const finding = (caller: string, line: number): Finding => ({ site, caller: { function: caller, file: '/app/main.go', line }, kind: 'map', pattern: 'growing', inuseBytes: 1 << 20, maxInuseBytes: 1 << 20, growthBytesPerHour: 1 << 20 }) as unknown as Finding;
    const kept = incidentFindings([finding('main.remember', 38), finding('main.session\u202e', -2)], 512 * 1024);
    assert.deepEqual(kept.map((f) => f.caller), [
      { function: 'main.remember', file: '/app/main.go', line: 38 },
      { function: 'main.session\ufffd', file: '/app/main.go', line: 0 },
    ]);
  });

  test('a round\'s incident Events are capped: the rest are summed up in one', () => {
    const incident = (n: number, reason: string) => ({ id: `i${n}`, pod: `app-${n}`, namespace: 'shop', container: 'server', reason, time: 't', detectedTime: 't', restartCount: 1, verdict: 'Unknown' as const, captureIds: [], findings: [] });
    const many = Array.from({ length: 25 }, (_, n) => incident(n, n % 5 === 0 ? 'OOMKilled' : 'Error'));
    const events = incidentEvents(many, 10);
    assert.equal(events.length, 10);
    assert.deepEqual(events.slice(0, 9).map((e) => e.message.split(' ')[0]), many.slice(0, 9).map((i) => i.pod));
    assert.equal(events[9]!.message, '16 more containers restarted (3 OOMKilled) since the last round; see status.incidents (Events per round are capped at 10)');
    assert.equal(events[9]!.reason, 'ContainerOOMKilled');
    assert.equal(incidentEvents(many.slice(0, 10), 10).length, 10, 'up to the cap, one each');
  });

  test('incidents past the retention leave the status by the same rule everywhere', () => {
    const now = new Date('2026-12-01T12:00:00Z');
    const at = (iso: string) => ({ time: iso });
    const incidents = [at('2026-12-01T11:59:00Z'), at('2026-12-01T11:00:00Z'), at('2026-12-01T10:59:59Z')];
    assert.deepEqual(incidentsWithinRetention(incidents, now, 3600_000), incidents.slice(0, 2), 'exactly as old as the retention is still kept');
    assert.equal(hasExpiredIncidents({ status: { incidents: incidents as never } }, now, 3600_000), true);
    assert.equal(hasExpiredIncidents({ status: { incidents: incidents.slice(0, 2) as never } }, now, 3600_000), false);
    assert.equal(hasExpiredIncidents({}, now, 1), false);
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

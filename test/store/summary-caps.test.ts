import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { attributeProfile, usageKey, type SiteUsage } from '../../src/analysis/attribute.js';
import { analyzeSeries, DEFAULT_THRESHOLDS, type TimedSnapshot } from '../../src/analysis/series.js';
import { DEFAULT_CEILINGS, keptCaptures } from '../../src/api/ceilings.js';
import { decodeHeapProfile } from '../../src/pprof/index.js';
import { parseStoredSnapshot, SeriesStore, storedMemProfileRate, storedSnapshotJson } from '../../src/store/series-store.js';
import { capUsages, DEFAULT_MAX_SUMMARY_BYTES, DEFAULT_SUMMARY_CAPS, KEEP_USAGE_BYTES, pinsOverBudget } from '../../src/store/summary-caps.js';
import type { StoredIncident } from '../../src/store/series-store.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { captureWindow, loadStream, windowsOf, type StreamName } from '../verdicts/noise-windows.js';
import { fatProfile, manyCallersProfile } from './fat-profile.js';

const codePoints = (text: string): number => [...text].length;

describe('one capture stores a bounded summary, whatever the profile claims', () => {
  // Review 3, finding 1: 60,000 sites with 400-character names, 80 KiB each.
  const proto = fatProfile({ functions: 60_000, nameLength: 400, objectsPerSite: 10 });
  const snapshot: TimedSnapshot = { ...attributeProfile(decodeHeapProfile(proto)), time: new Date(Date.UTC(2026, 11, 1, 15)) };
  const json = storedSnapshotJson(snapshot);
  const stored = parseStoredSnapshot(Buffer.from(json));

  test('the hostile profile really is large: every site passes the 64 KiB filter', () => {
    assert.equal(snapshot.usages.filter((u) => u.inuseBytes >= KEEP_USAGE_BYTES).length, 60_000);
    assert.ok(proto.length < 1024 * 1024, `${proto.length} bytes of proto`);
  });

  test(`at most ${DEFAULT_SUMMARY_CAPS.maxUsages} usages, the largest, and under the per-capture byte ceiling`, () => {
    assert.equal(stored.usages.length, DEFAULT_SUMMARY_CAPS.maxUsages);
    const bytes = Buffer.byteLength(json);
    assert.ok(bytes <= DEFAULT_MAX_SUMMARY_BYTES, `summary ${bytes} bytes`);
    // The 92 MB the reviewer measured was about 100 times the proto; now it is of the proto's order.
    assert.ok(bytes < 4 * proto.length, `summary ${bytes} bytes for a ${proto.length}-byte proto`);
  });

  test('allocated bytes are kept only for functions a kept usage names', () => {
    const named = new Set(stored.usages.flatMap((u) => [u.site.function, ...(u.caller ? [u.caller.function] : [])]));
    assert.ok(stored.allocBytesByFunction.size > 0);
    for (const fn of stored.allocBytesByFunction.keys()) assert.ok(named.has(fn), fn.slice(0, 40));
  });

  test('names are cut at 512 code points; sites whose cut names coincide become one, their bytes summed', () => {
    const long = (suffix: string): SiteUsage => ({
      key: `other\tmain.${'é'.repeat(600)}${suffix}\t/src/x.go\t1`,
      site: { function: `main.${'é'.repeat(600)}${suffix}`, file: '/src/x.go', line: 1 },
      kind: 'other',
      evidence: 'none',
      mapImpl: 'unknown',
      inuseBytes: 1 << 20,
      allocBytes: 1 << 20,
      inuseObjects: 1,
      allocObjects: 1,
      components: {},
    });
    const kept = capUsages([long('a'), long('b')], DEFAULT_SUMMARY_CAPS);
    assert.equal(kept.length, 1);
    assert.equal(codePoints(kept[0]!.site.function), 512);
    assert.equal(kept[0]!.inuseBytes, 2 << 20);
    assert.ok(kept[0]!.key.includes(kept[0]!.site.function), 'the key is rebuilt from the cut name');
  });

  test('a function named __proto__ stays an ordinary entry', () => {
    const usage: SiteUsage = { key: 'other\t__proto__\t/x.go\t1', site: { function: '__proto__', file: '/x.go', line: 1 }, kind: 'other', evidence: 'none', mapImpl: 'unknown', inuseBytes: 1 << 20, allocBytes: 1 << 20, inuseObjects: 1, allocObjects: 1, components: {} };
    const back = parseStoredSnapshot(Buffer.from(storedSnapshotJson({ ...snapshot, usages: [usage], allocBytesByFunction: new Map([['__proto__', 5]]) })));
    assert.equal(back.allocBytesByFunction.get('__proto__'), 5);
  });

  test('the window counts summary and profile against --max-redis-bytes-per-target', () => {
    const captureBytes = Buffer.byteLength(json) + proto.length;
    const ceilings = { maxRedisBytesPerTarget: 8 * captureBytes };
    const kept = keptCaptures(12, captureBytes, ceilings);
    assert.equal(kept, 8);
    assert.ok(kept * captureBytes <= ceilings.maxRedisBytesPerTarget);
    // Only the proto counted, the window would have stayed at 12.
    assert.equal(keptCaptures(12, proto.length, ceilings), 12);
  });

  describe('in a real Redis', () => {
    let redis: RedisServer;
    let client: Redis;
    before(async () => {
      redis = await startRedis();
      client = new Redis(redis.url);
    });
    after(async () => {
      client.disconnect();
      await redis.stop();
    });

    test('a window of hostile captures takes at most --max-redis-bytes-per-target, the summary key at most the per-capture ceiling', async () => {
      const budget = 16 * 1024 * 1024;
      const store = new SeriesStore(client);
      const summary = Buffer.from(json);
      const window = keptCaptures(12, summary.length + proto.length, { maxRedisBytesPerTarget: budget });
      for (let i = 0; i < 12; i++) {
        await store.addStoredCapture('team-a/fat', 'pod-1', { id: `c${i}`, time: new Date(Date.UTC(2026, 11, 1, 15, i)), json: summary, proto }, window, 600);
      }
      const refs = await store.captures('team-a/fat', 'pod-1');
      assert.equal(refs.length, window);
      let total = 0;
      for (const ref of refs) {
        const c = await client.strlen(`mlp:{team-a/fat}:c:${ref.id}`);
        assert.ok(c <= DEFAULT_CEILINGS.maxSummaryBytes, `c: key of ${c} bytes`);
        total += c + (await client.strlen(`mlp:{team-a/fat}:p:${ref.id}`));
      }
      assert.ok(total <= budget, `${total} bytes kept for one target`);
    });

    test("incidents' pinned captures together take at most the probe's budget, the newest kept; the incidents stay", async () => {
      const store = new SeriesStore(client);
      const summary = Buffer.from(json);
      const captureBytes = summary.length + proto.length;
      const budget = 4 * captureBytes; // room for 4 of the 9 pinned captures
      const incidents: StoredIncident[] = [];
      for (let n = 0; n < 3; n++) {
        const captures = [0, 1, 2].map((i) => ({ id: `i${n}c${i}`, time: new Date(Date.UTC(2026, 11, 1, 10 + n, i)).toISOString(), podUid: `pod-${n}` }));
        for (const ref of captures) await store.addStoredCapture('team-a/pins', ref.podUid, { id: ref.id, time: new Date(ref.time), json: summary, proto }, 12, 600);
        const incident: StoredIncident = {
          id: `incident-${n}`, pod: `app-${n}`, namespace: 'team-a', container: 'app', reason: 'OOMKilled', time: new Date(Date.UTC(2026, 11, 1, 10 + n, 5)).toISOString(), detectedTime: new Date().toISOString(),
          restartCount: 1, verdict: 'Leaking', captureIds: captures.map((c) => c.id), findings: [], podUid: `pod-${n}`, captures,
        };
        await store.recordIncident('team-a/pins', incident, new Date(Date.now() + 3600_000));
        incidents.push(incident);
      }
      const kept = await store.incidents('team-a/pins', new Date(Date.UTC(2026, 0, 1)), 10, budget);
      assert.deepEqual(kept.map((i) => i.id), ['incident-2', 'incident-1', 'incident-0'], 'every incident stays, newest first');
      const present = async (id: string): Promise<boolean> => (await client.exists(`mlp:{team-a/pins}:c:${id}`, `mlp:{team-a/pins}:p:${id}`)) === 2;
      const pinned = [];
      for (const incident of incidents) for (const ref of incident.captures) if (await present(ref.id)) pinned.push(ref.id);
      assert.deepEqual(pinned.sort(), ['i1c2', 'i2c0', 'i2c1', 'i2c2'], 'the newest incident whole, then the newest capture of the one before');
      let total = 0;
      for (const id of pinned) total += (await client.strlen(`mlp:{team-a/pins}:c:${id}`)) + (await client.strlen(`mlp:{team-a/pins}:p:${id}`));
      assert.ok(total <= budget, `${total} pinned bytes`);
    });
  });

  test('pins over budget: newest first, a capture already gone costs nothing', () => {
    assert.deepEqual(pinsOverBudget([{ id: 'a', bytes: 5 }, { id: 'gone', bytes: 0 }, { id: 'b', bytes: 5 }, { id: 'c', bytes: 1 }], 10), ['c']);
    assert.deepEqual(pinsOverBudget([{ id: 'huge', bytes: 11 }, { id: 'small', bytes: 3 }], 10), ['huge']);
  });
});

describe('the caps change nothing for real services (recorded streams)', () => {
  const STREAMS: StreamName[] = ['leaky-go1.19', 'leaky-go1.26', 'services-go1.19', 'services-go1.26'];
  for (const name of STREAMS) {
    test(`${name}: every capture far under the caps, and every window's findings the same as without them`, async () => {
      const raw = await loadStream(name);
      const stored = raw.map((s) => parseStoredSnapshot(Buffer.from(storedSnapshotJson(s))));
      const unbounded = { maxUsages: Number.MAX_SAFE_INTEGER, maxNameCodePoints: Number.MAX_SAFE_INTEGER };
      const uncapped = raw.map((s) => parseStoredSnapshot(Buffer.from(storedSnapshotJson(s, unbounded))));
      for (const s of raw) {
        const kept = capUsages(s.usages, unbounded).length;
        assert.ok(kept * 10 <= DEFAULT_SUMMARY_CAPS.maxUsages, `${kept} usages kept of a capture`);
        assert.ok(Buffer.byteLength(storedSnapshotJson(s)) * 10 <= DEFAULT_MAX_SUMMARY_BYTES);
      }
      const thresholds = { ...DEFAULT_THRESHOLDS, maxFindings: 50 };
      for (const w of windowsOf(raw.length)) {
        assert.deepEqual(analyzeSeries(captureWindow(stored, w), thresholds), analyzeSeries(captureWindow(uncapped, w), thresholds), `window at ${w.start}`);
      }
    });
  }
});

describe("a stored capture's MemProfileRate is read from its tail, without parsing it", () => {
  const base: TimedSnapshot = {
    time: new Date(Date.UTC(2026, 11, 1)),
    mapImpl: 'swiss',
    evidence: 'none',
    usages: [],
    allocBytesByFunction: new Map(),
    totals: { inuseBytes: 0, allocBytes: 0, mapInuseBytes: 0 },
  };

  test('the rate the capture was sampled at, and undefined when it did not say', () => {
    assert.equal(storedMemProfileRate(Buffer.from(storedSnapshotJson({ ...base, memProfileRate: 524288 }))), 524288);
    assert.equal(storedMemProfileRate(Buffer.from(storedSnapshotJson({ ...base, memProfileRate: 1 }))), 1);
    assert.equal(storedMemProfileRate(Buffer.from(storedSnapshotJson(base))), undefined);
  });

  test('a function a target named "memProfileRate" cannot pass for it', () => {
    const site = { function: 'memProfileRate', file: '', line: 0 };
    const usage: SiteUsage = { key: 'other\tmemProfileRate\t\t0', site, kind: 'other', evidence: 'none', mapImpl: 'unknown', inuseBytes: 1 << 20, allocBytes: 7, inuseObjects: 1, allocObjects: 1, components: {} };
    const forged = { ...base, allocBytesByFunction: new Map([['memProfileRate', 7]]), usages: [usage] };
    const json = Buffer.from(storedSnapshotJson(forged));
    assert.match(json.toString(), /"memProfileRate":7\}\}$/, 'the forged name is the last entry');
    assert.equal(storedMemProfileRate(json), undefined);
    assert.equal(parseStoredSnapshot(json).memProfileRate, undefined);
  });
});

describe('a library line with thousands of callers stays within the usage cap', () => {
  // Each caller of a library line is a usage of its own (siteKey): a hostile profile can give one line as many as it has stacks.
  const proto = manyCallersProfile({ callers: 5000, objectsPerCaller: 10 });
  const snapshot: TimedSnapshot = { ...attributeProfile(decodeHeapProfile(proto)), time: new Date(Date.UTC(2026, 11, 2, 3)) };

  test('one usage per caller in the capture, never more usages than stacks', () => {
    assert.equal(snapshot.usages.length, 5000);
    assert.equal(new Set(snapshot.usages.map((u) => u.key)).size, 5000);
    assert.ok(snapshot.usages.every((u) => u.site.function === 'github.com/acme/cache.(*Cache).Set' && u.caller?.function.startsWith('main.caller')));
  });

  for (const maxUsages of [DEFAULT_SUMMARY_CAPS.maxUsages, 50]) {
    test(`stored: at most ${maxUsages} usages (--max-usages-per-capture), the largest callers`, () => {
      const stored = parseStoredSnapshot(Buffer.from(storedSnapshotJson(snapshot, { ...DEFAULT_SUMMARY_CAPS, maxUsages })));
      assert.equal(stored.usages.length, maxUsages);
      const smallestKept = Math.min(...stored.usages.map((u) => u.inuseBytes));
      assert.equal(snapshot.usages.filter((u) => u.inuseBytes >= smallestKept).length, maxUsages, 'the largest are the ones kept');
      assert.equal(new Set(stored.usages.map((u) => u.key)).size, maxUsages);
    });
  }

  test("callers whose names are cut to the same 512 code points become one usage, their bytes summed", () => {
    const long = 'main.' + 'x'.repeat(600);
    const twins = attributeProfile(decodeHeapProfile(manyCallersProfile({ callers: 2, objectsPerCaller: 10, callerName: (i) => `${long}${i}` })));
    assert.equal(twins.usages.length, 2);
    const stored = parseStoredSnapshot(Buffer.from(storedSnapshotJson({ ...twins, time: new Date(0) })));
    assert.equal(stored.usages.length, 1);
    assert.equal(stored.usages[0]?.inuseBytes, twins.usages[0]!.inuseBytes + twins.usages[1]!.inuseBytes);
    assert.equal(stored.usages[0]?.key, usageKey(stored.usages[0]!));
  });
});

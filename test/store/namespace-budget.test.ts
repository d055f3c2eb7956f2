// The per-namespace Redis byte budget (--max-redis-bytes-per-namespace) and
// the stored-profile cap (--max-stored-profile-bytes), in a real Redis and a
// real Redis Cluster: what a namespace's c:/p: keys hold (their STRLENs)
// stays within the budget and equals what its ledger counts, across window
// trims, TTL expiry, incident pins, probe deletion and concurrent writers.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Cluster, Redis } from 'ioredis';
import type { SeriesAnalysis } from '../../src/analysis/series.js';
import { primaries, type RedisClient } from '../../src/queue/connection.js';
import { SeriesStore, fencedProbe, type KeptCapture, type StoredIncident } from '../../src/store/series-store.js';
import { NamespaceStoreBudgetError } from '../../src/store/store-budget.js';
import { LEDGER_EXPIRY_SLACK_MS } from '../../src/store/namespace-ledger.js';
import { startRedis, startRedisCluster, type RedisClusterSet, type RedisServer } from '../cluster/redis.js';

const KiB = 1024;
const BUDGET = 100 * KiB;

/** A capture of exactly `summary` + `profile` value bytes (the store never parses either). */
function capture(id: string, minute: number, summary: number, profile: number): { id: string; time: Date; json: string; proto: Buffer } {
  return { id, time: new Date(Date.UTC(2026, 11, 1, 20, minute)), json: 'j'.repeat(summary), proto: Buffer.alloc(profile, 7) };
}

/** Σ STRLEN of what a namespace's budget counts (c:/p: keys, series' gc and analysis keys) on every primary, and the keys. */
async function storedBytes(client: RedisClient, namespace: string): Promise<{ bytes: number; keys: string[] }> {
  let bytes = 0;
  const keys: string[] = [];
  for (const node of primaries(client)) {
    const counted = (await Promise.all([`mlp:{${namespace}/*}:[cp]:*`, `mlp:{${namespace}/*}:t:*:gc`, `mlp:{${namespace}/*}:t:*:analysis`].map((pattern) => node.keys(pattern)))).flat();
    for (const key of counted) {
      keys.push(key);
      bytes += await node.strlen(key);
    }
  }
  return { bytes, keys: keys.sort() };
}

const kept = (outcome: KeptCapture): string => (outcome.kind === 'kept' ? outcome.profile : outcome.kind);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The same specification against each topology: `connect` gives a client and a prefix of its own. */
function specifyBudget(topology: string, connect: () => RedisClient) {
  describe(`namespace budget (${topology})`, () => {
    let client: RedisClient;
    let store: SeriesStore;
    const expectTrue = async (namespace: string): Promise<number> => {
      const { bytes } = await storedBytes(client, namespace);
      assert.equal(await store.namespaceBytes(namespace), bytes, `${namespace}: the ledger counts exactly what its c:/p: keys hold`);
      return bytes;
    };

    before(() => {
      client = connect();
      store = new SeriesStore(client, 'mlp', { maxBytesPerNamespace: BUDGET, maxStoredProfileBytes: 30 * KiB });
    });
    after(() => client.disconnect());

    test('captures are kept whole while they fit, then without their raw profile, then refused; another namespace is untouched', async () => {
      // Three probes of one namespace: three hash slots (spread over primaries on a cluster).
      assert.equal(kept(await store.keepCapture('fill/a', 'pod-1', capture('a1', 1, 10 * KiB, 20 * KiB), 12, 600)), 'kept');
      assert.equal(kept(await store.keepCapture('fill/b', 'pod-1', capture('b1', 1, 10 * KiB, 20 * KiB), 12, 600)), 'kept');
      assert.equal(await expectTrue('fill'), 60 * KiB);
      // 90 KiB: 28 KiB more do not fit, its 8 KiB summary does.
      assert.equal(kept(await store.keepCapture('fill/c', 'pod-1', capture('c1', 1, 10 * KiB, 20 * KiB), 12, 600)), 'kept');
      assert.equal(kept(await store.keepCapture('fill/c', 'pod-2', capture('c2', 1, 8 * KiB, 20 * KiB), 12, 600)), 'over-namespace-budget');
      assert.equal(await expectTrue('fill'), 98 * KiB);
      assert.equal(await store.profile('fill/c', 'c2'), null, 'the raw profile is not kept');
      assert.equal((await store.loadSeriesJson('fill/c', 'pod-2')).length, 1, 'its summary is');
      await assert.rejects(store.keepCapture('fill/a', 'pod-2', capture('a2', 2, 4 * KiB, 1 * KiB), 12, 600), (err) => err instanceof NamespaceStoreBudgetError && /--max-redis-bytes-per-namespace/.test(err.message) && err.message.includes(String(BUDGET)));
      assert.deepEqual(await store.captures('fill/a', 'pod-2'), [], 'nothing of the refused capture is stored');
      assert.equal(await expectTrue('fill'), 98 * KiB, 'a refusal changes nothing');
      // Another namespace has its own budget.
      assert.equal(kept(await store.keepCapture('other/x', 'pod-1', capture('x1', 1, 10 * KiB, 20 * KiB), 12, 600)), 'kept');
      assert.equal(await expectTrue('other'), 30 * KiB);
      const { bytes } = await storedBytes(client, 'fill');
      assert.ok(bytes <= BUDGET);
    });

    test('a raw profile past --max-stored-profile-bytes is not kept, its summary is', async () => {
      assert.equal(kept(await store.keepCapture('cap/a', 'pod-1', capture('big', 1, 2 * KiB, 31 * KiB), 12, 600)), 'over-stored-profile-limit');
      assert.equal(await store.profile('cap/a', 'big'), null);
      assert.equal(await expectTrue('cap'), 2 * KiB);
      assert.equal(kept(await store.keepCapture('cap/a', 'pod-1', capture('fits', 2, 2 * KiB, 30 * KiB), 12, 600)), 'kept');
      assert.equal((await store.profile('cap/a', 'fits'))?.length, 30 * KiB);
    });

    test('a full namespace keeps rolling its windows: a capture that pushes one out is credited its bytes, and the count stays true', async () => {
      // Window 3 over two pods of one probe, 16 KiB a capture: 6 captures = 96 KiB.
      for (let minute = 1; minute <= 3; minute++) {
        for (const pod of ['pod-1', 'pod-2']) assert.equal(kept(await store.keepCapture('roll/a', pod, capture(`${pod}-${minute}`, minute, 6 * KiB, 10 * KiB), 3, 600)), 'kept');
      }
      assert.equal(await expectTrue('roll'), 96 * KiB);
      // A new pod finds no room (nothing of its own to push out).
      await assert.rejects(store.keepCapture('roll/b', 'pod-3', capture('new', 4, 6 * KiB, 10 * KiB), 3, 600), NamespaceStoreBudgetError);
      // The old pods roll on, whole, for many windows.
      for (let minute = 4; minute <= 12; minute++) {
        for (const pod of ['pod-1', 'pod-2']) assert.equal(kept(await store.keepCapture('roll/a', pod, capture(`${pod}-${minute}`, minute, 6 * KiB, 10 * KiB), 3, 600)), 'kept');
        assert.equal(await expectTrue('roll'), 96 * KiB);
      }
      assert.deepEqual((await store.captures('roll/a', 'pod-1')).map((c) => c.id), ['pod-1-10', 'pod-1-11', 'pod-1-12']);
      // A retried capture (same id) replaces its own bytes instead of adding them.
      assert.equal(kept(await store.keepCapture('roll/a', 'pod-1', capture('pod-1-12', 12, 6 * KiB, 10 * KiB), 3, 600)), 'kept');
      assert.equal(await expectTrue('roll'), 96 * KiB);
    });

    test('keys that expire by their TTL (no code of ours runs) leave the count as they go', async () => {
      await store.keepCapture('ttl/a', 'pod-1', capture('short', 1, 30 * KiB, 30 * KiB), 12, 1);
      await store.keepCapture('ttl/b', 'pod-1', capture('long', 1, 10 * KiB, 10 * KiB), 12, 600);
      assert.equal(await expectTrue('ttl'), 80 * KiB);
      await sleep(1000 + LEDGER_EXPIRY_SLACK_MS + 300);
      assert.equal(await expectTrue('ttl'), 20 * KiB);
      // The room is there again.
      assert.equal(kept(await store.keepCapture('ttl/a', 'pod-1', capture('again', 2, 30 * KiB, 30 * KiB), 12, 600)), 'kept');
      assert.equal(await expectTrue('ttl'), 80 * KiB);
    });

    test('pinned captures count for as long as the incident keeps them; dropped pins and deleted probes give their bytes back', async () => {
      const probe = fencedProbe({ metadata: { namespace: 'pins', name: 'a', uid: 'uid-a', creationTimestamp: '2026-12-01T20:00:00Z' } });
      assert.equal(await store.claim(probe, 600), 'claimed');
      await store.keepCapture(probe, 'pod-1', capture('p1', 1, 10 * KiB, 10 * KiB), 12, 1);
      await store.keepCapture(probe, 'pod-1', capture('p2', 2, 10 * KiB, 10 * KiB), 12, 1);
      await store.keepCapture('pins/b', 'pod-1', capture('b1', 1, 5 * KiB, 5 * KiB), 12, 600);
      const refs = await store.captures(probe, 'pod-1');
      const time = new Date().toISOString();
      const incident: StoredIncident = { id: 'i1', time, detectedTime: time, pod: 'pod', namespace: 'pins', container: 'c', reason: 'OOMKilled', restartCount: 1, verdict: 'Unknown', findings: [], captureIds: refs.map((r) => r.id), podUid: 'pod-1', captures: refs };
      assert.equal(await store.recordIncident(probe, incident, new Date(Date.now() + 600_000)), 'recorded');
      // Past the series' 1 s TTL the pinned captures are still there, and still counted.
      await sleep(1000 + LEDGER_EXPIRY_SLACK_MS + 300);
      assert.equal(await expectTrue('pins'), 50 * KiB);
      // The incident leaves (past the retention): its pins go, and their bytes.
      assert.deepEqual(await store.incidents(probe, new Date(Date.now() + 60_000), 10), []);
      assert.equal(await expectTrue('pins'), 10 * KiB);
      // A probe deleted: everything it kept leaves the count.
      await store.keepCapture(probe, 'pod-1', capture('p3', 3, 10 * KiB, 10 * KiB), 12, 600);
      assert.equal(await expectTrue('pins'), 30 * KiB);
      assert.ok((await store.forgetOwn(probe)) > 0);
      assert.equal(await expectTrue('pins'), 10 * KiB);
      assert.ok((await store.forgetProbe('pins/b')) > 0);
      assert.equal(await expectTrue('pins'), 0);
    });

    test("a series' gctrace and analysis count too: rewrites replace their own bytes, growth past the budget keeps the last value, forgotten series give theirs back", async () => {
      const cycle = { cycle: 1, atSeconds: 1.5, cpuPercent: 1, heapStartBytes: 4, heapEndBytes: 4, liveHeapBytes: 4, goalBytes: 8, forced: false };
      const cycles = (n: number) => Array.from({ length: n }, (_, i) => ({ ...cycle, cycle: i + 1 }));
      assert.equal(kept(await store.keepCapture('gc/a', 'pod-1', capture('g1', 1, 40 * KiB, 20 * KiB), 12, 600)), 'kept');
      assert.equal(await store.saveGc('gc/a', 'pod-1', { cycles: cycles(10) }, 2000, 600), 'kept');
      const analysis: SeriesAnalysis = { captures: 1, staleCaptures: 0, window: { start: '2026-12-01T20:01:00Z', end: '2026-12-01T20:01:00Z' }, mapImpl: 'swiss', totals: { inuseBytes: 1, mapInuseBytes: 0 }, findings: [] };
      assert.equal(await store.saveAnalysis('gc/a', 'pod-1', analysis, 600), 'kept');
      const before = await expectTrue('gc');
      for (let round = 0; round < 5; round++) assert.equal(await store.saveGc('gc/a', 'pod-1', { cycles: cycles(10) }, 2000, 600), 'kept');
      assert.equal(await expectTrue('gc'), before, 'a rewrite of the same size adds nothing');
      // ~150 bytes a cycle: 2,000 cycles would pass the 100 KiB budget with the capture's 60 KiB.
      assert.equal(await store.saveGc('gc/a', 'pod-1', { cycles: cycles(2000) }, 2000, 600), 'over-budget');
      assert.equal((await store.gc('gc/a', 'pod-1')).cycles.length, 10, 'the last value kept stays');
      assert.equal(await expectTrue('gc'), before);
      // The pod's series is no longer followed: its gctrace and analysis go, and their bytes (its captures stay until their TTL).
      assert.equal(await store.forgetTargetsExcept('gc/a', new Set()), 0, 'no target recorded: nothing to forget');
      await store.recordTarget('gc/a', { name: 'pod', namespace: 'gc', uid: 'pod-1' }, 600);
      assert.equal(await store.forgetTargetsExcept('gc/a', new Set()), 1);
      assert.equal(await expectTrue('gc'), 60 * KiB);
    });

    test('a fenced-out write keeps nothing and counts nothing', async () => {
      const old = fencedProbe({ metadata: { namespace: 'fence', name: 'a', uid: 'old', creationTimestamp: '2026-12-01T20:00:00Z' } });
      const fresh = fencedProbe({ metadata: { namespace: 'fence', name: 'a', uid: 'new', creationTimestamp: '2026-12-01T20:05:00Z' } });
      assert.equal(await store.claim(old, 600), 'claimed');
      await store.keepCapture(old, 'pod-1', capture('o1', 1, 10 * KiB, 10 * KiB), 12, 600);
      assert.equal(await store.claim(fresh, 600), 'taken-over');
      assert.equal(await expectTrue('fence'), 0, "the older probe's captures went with the take-over, and their bytes");
      assert.equal(kept(await store.keepCapture(old, 'pod-1', capture('o2', 2, 10 * KiB, 10 * KiB), 12, 600)), 'fenced');
      assert.equal(await expectTrue('fence'), 0);
    });

    test('concurrent writers of one namespace (probes in different slots) never hold more than the budget together', async (t) => {
      // 8 probes × 3 pods, a window of 1 (every capture replaces its pod's last one: credits under contention),
      // 4 KiB summaries and 0–16 KiB profiles: the namespace asks for up to 480 KiB, 100 KiB are allowed.
      let worst = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          worst = Math.max(worst, (await storedBytes(client, 'race')).bytes);
          await sleep(5);
        }
      })();
      const outcomes = new Map<string, number>();
      for (let minute = 1; minute <= 20; minute++) {
        const results = await Promise.allSettled(
          Array.from({ length: 8 }, (_, p) => [1, 2, 3].map((pod) => store.keepCapture(`race/p${p}`, `pod-${pod}`, capture(`p${p}-${pod}-${minute}`, minute, 4 * KiB, ((minute * 7 + p * 3 + pod) % 17) * KiB), 1, 600))).flat(),
        );
        for (const r of results) {
          const what = r.status === 'fulfilled' ? kept(r.value) : r.reason instanceof NamespaceStoreBudgetError ? 'refused' : `error ${String(r.reason)}`;
          outcomes.set(what, (outcomes.get(what) ?? 0) + 1);
        }
      }
      sampling = false;
      await sampler;
      const bytes = await expectTrue('race');
      assert.ok(bytes <= BUDGET, `${bytes} bytes kept`);
      assert.ok(worst <= BUDGET, `at most ${worst} bytes held at any sample`);
      assert.deepEqual([...outcomes.keys()].filter((k) => k.startsWith('error')), []);
      assert.ok((outcomes.get('refused') ?? 0) > 0 && (outcomes.get('kept') ?? 0) > 0, JSON.stringify([...outcomes]));
      t.diagnostic(`${topology}: outcomes ${JSON.stringify(Object.fromEntries(outcomes))}; at most ${worst} of ${BUDGET} bytes held at any sample, ${bytes} at the end`);
    });
  });
}

let redis: RedisServer | undefined;
let cluster: RedisClusterSet | undefined;
before(async () => {
  [redis, cluster] = await Promise.all([startRedis(), startRedisCluster({ primaries: 3, replicas: 0 })]);
});
after(async () => {
  await Promise.all([redis?.stop(), cluster?.stop()]);
});

specifyBudget('standalone', () => new Redis(redis!.url));
specifyBudget('cluster', () => {
  const seeds = cluster!.seeds.split(',').map((address) => ({ host: address.split(':')[0]!, port: Number(address.split(':')[1]) }));
  return new Cluster(seeds, { redisOptions: { password: cluster!.password } });
});

describe('namespace budget at maxmemory', () => {
  test('a probe deleted while Redis refuses writes (noeviction) frees its keys and leaves the count', async () => {
    const client = new Redis(redis!.url);
    const store = new SeriesStore(client, 'mlp', { maxBytesPerNamespace: BUDGET });
    try {
      await store.keepCapture('oom/a', 'pod-1', capture('o1', 1, 10 * KiB, 10 * KiB), 12, 600);
      assert.equal(await store.namespaceBytes('oom'), 20 * KiB);
      await client.config('SET', 'maxmemory-policy', 'noeviction');
      await client.config('SET', 'maxmemory', String(Number(/used_memory:(\d+)/.exec(await client.info('memory'))?.[1]) - 1024 * KiB));
      await assert.rejects(store.keepCapture('oom/a', 'pod-1', capture('o2', 2, 1, 1), 12, 600), /OOM/);
      assert.ok((await store.forgetProbe('oom/a')) > 0);
      assert.equal((await storedBytes(client, 'oom')).bytes, 0);
      assert.deepEqual(await client.keys('mlp:{ns:oom}:*'), [], 'the ledger emptied with it');
    } finally {
      await client.config('SET', 'maxmemory', '0');
      client.disconnect();
    }
  });
});

describe('namespace budget on a cluster: the ledger and the probes live in different slots', () => {
  test('the probes of one namespace and its ledger spread over more than one primary', async () => {
    const seeds = cluster!.seeds.split(',').map((address) => ({ host: address.split(':')[0]!, port: Number(address.split(':')[1]) }));
    const client = new Cluster(seeds, { redisOptions: { password: cluster!.password } });
    try {
      await client.get('mlp:{ns:race}:stored-total'); // the slot map, before nodes() lists the primaries
      const nodes = new Set<string>();
      for (const node of primaries(client)) {
        if ((await node.keys('mlp:{race/*}:*')).length > 0 || (await node.keys('mlp:{ns:race}:*')).length > 0) nodes.add(`${node.options.host}:${node.options.port}`);
      }
      assert.ok(nodes.size > 1, `keys of namespace race on ${nodes.size} primaries`);
    } finally {
      client.disconnect();
    }
  });
});

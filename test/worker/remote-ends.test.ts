// The bounded watch of a remote (spec.cluster) probe's pods between rounds
// (src/worker/remote-ends.ts), against a tenant's API server that says what
// it likes. Real: an HTTPS server on loopback standing for that API server
// (the watch is its whole protocol: one JSON event per line), Redis, the store.
// The real remote path, a kube-apiserver and an OOM kill, is
// test/operator/multicluster.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { AddressAllowlist } from '../../src/clusters/address-allowlist.js';
import { remoteKubeHttp } from '../../src/clusters/kube-http.js';
import { listRunningPods } from '../../src/clusters/pods.js';
import type { TargetCluster } from '../../src/clusters/registry.js';
import { jsonLogger } from '../../src/observability/log.js';
import { fencedProbe, SeriesStore } from '../../src/store/series-store.js';
import { DEFAULT_CEILINGS } from '../../src/api/ceilings.js';
import { operatorConfig } from '../../src/cli/operator.js';
import { UsageError } from '../../src/cli/units.js';
import { remoteEndLimits, RemoteEndWatcher } from '../../src/worker/remote-ends.js';
import { makeTestTls, startRedis, type RedisServer } from '../cluster/redis.js';
import { waitFor } from '../support/wait.js';

const FOLLOWED = '5b0d2c1e-0000-4000-8000-000000000001';
const STRANGER = '5b0d2c1e-0000-4000-8000-000000000002';
const probe = fencedProbe({ metadata: { namespace: 'team', name: 'remote', uid: 'uid-1', creationTimestamp: '2026-12-01T10:00:00Z' } });

const oomKilled = (uid: string, extra: Record<string, unknown> = {}) => ({
  type: 'MODIFIED',
  object: {
    metadata: { name: 'app-0', namespace: 'apps', uid, ...extra },
    spec: { containers: [{ name: 'app' }] },
    status: { phase: 'Failed', containerStatuses: [{ name: 'app', restartCount: 0, state: { terminated: { reason: 'OOMKilled', exitCode: 137, finishedAt: '2026-12-01T10:00:05Z', message: 'planted words' } } }] },
  },
});

describe('remote pod ends seen by a bounded watch between rounds', () => {
  let redis: RedisServer;
  let client: Redis;
  let store: SeriesStore;
  let server: https.Server;
  let cluster: TargetCluster;
  /** What the server streams to the next watch, and the query it was asked with. */
  let stream: (res: import('node:http').ServerResponse) => void = (res) => res.end();
  const asked: URLSearchParams[] = [];

  before(async () => {
    const tls = makeTestTls(mkdtempSync(join(tmpdir(), 'mapleak-remote-ends-')));
    server = https.createServer({ cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) }, (req, res) => {
      const url = new URL(req.url ?? '/', 'https://x');
      res.writeHead(200, { 'content-type': 'application/json' });
      if (url.searchParams.get('watch') !== 'true') return void res.end(JSON.stringify({ kind: 'PodList', metadata: { resourceVersion: '40' }, items: [] }));
      asked.push(url.searchParams);
      stream(res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    redis = await startRedis();
    client = new Redis(redis.url);
    store = new SeriesStore(client);
    const http = remoteKubeHttp({ server: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, caPem: readFileSync(tls.caFile), insecureSkipTlsVerify: false }, AddressAllowlist.parse(['127.0.0.1/32']));
    cluster = { id: 'secret:team/kc/kubeconfig@x/1', remote: true, http, namespace: 'apps' };
  });

  after(async () => {
    cluster.http.close();
    server.closeAllConnections();
    server.close();
    client.disconnect();
    await redis.stop();
  });

  test('notes the end of a followed pod from the watch, from the round\'s resourceVersion; a pod it did not list, garbage, over-long events and the deletion itself are not noted', async () => {
    await store.forgetProbe(probe.key);
    assert.equal(await store.claim(probe, 600), 'claimed');
    stream = (res) => {
      res.write('not json\n');
      res.write(`${JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '12' } } })}\n`);
      res.write(`${JSON.stringify(oomKilled(STRANGER))}\n`);
      res.write(`${JSON.stringify(oomKilled(FOLLOWED))}\n`);
      // Longer than a pod may be in a list (64 KiB): skipped, so it cannot overwrite the note.
      const padded = oomKilled(FOLLOWED);
      padded.object.status.containerStatuses[0]!.state.terminated = { reason: 'Error', exitCode: 1, finishedAt: '2026-12-01T10:00:05Z', message: 'x'.repeat(100 * 1024) };
      res.write(`${JSON.stringify(padded)}\n`);
      // The deletion right after: its object says the same, and a deletion's own exit is no end.
      res.end(`${JSON.stringify({ ...oomKilled(FOLLOWED, { deletionTimestamp: '2026-12-01T10:00:06Z' }), type: 'DELETED' })}\n`);
    };
    const watcher = new RemoteEndWatcher({ store, log: jsonLogger({}, 'error') });
    watcher.watch(probe, cluster, 'app=web', '11', [{ uid: FOLLOWED, container: 'app' }], { forMs: 10_000, ttlSeconds: 600 });
    await waitFor('the watch ended by the server', async () => watcher.size === 0, 10_000, 50);
    const query = asked.at(-1)!;
    assert.equal(query.get('watch'), 'true');
    assert.equal(query.get('resourceVersion'), '11', 'from the round\'s list: nothing between the list and the watch is missed');
    assert.equal(query.get('labelSelector'), 'app=web');
    assert.equal(query.get('fieldSelector'), null, 'no phase filter: the change to Failed is what it is for');
    const noted = await client.hgetall(`mlp:{${probe.key}}:ended`);
    assert.deepEqual(Object.keys(noted), [FOLLOWED], 'only the pod the round listed');
    assert.deepEqual(JSON.parse(noted[FOLLOWED]!), { podUid: FOLLOWED, container: 'app', restartCount: 0, termination: { reason: 'OOMKilled', exitCode: 137, finishedAt: '2026-12-01T10:00:05.000Z' } });
    assert.doesNotMatch(noted[FOLLOWED]!, /planted/, 'never the termination message');
    await watcher.close();
  });

  test('a watch dials only what --remote-cluster-cidrs allows, like the pool: a server outside the list sees no connection', async () => {
    const port = (server.address() as AddressInfo).port;
    let connections = 0;
    const count = (): void => void connections++;
    server.on('connection', count);
    const outside: TargetCluster = { ...cluster, http: remoteKubeHttp({ server: `https://127.0.0.1:${port}`, insecureSkipTlsVerify: true }, AddressAllowlist.parse(['10.0.0.0/8'])) };
    const watcher = new RemoteEndWatcher({ store, log: jsonLogger({}, 'error') });
    watcher.watch(probe, outside, 'app=web', '11', [{ uid: FOLLOWED, container: 'app' }], { forMs: 5_000, ttlSeconds: 600 });
    await waitFor('the refused watch ended', async () => watcher.size === 0, 5_000, 20);
    server.off('connection', count);
    outside.http.close();
    assert.equal(connections, 0, 'the watch never reached the server');
  });

  test('watches held open take no connection from the cluster\'s pool: the next round\'s pod list is answered at once', async () => {
    // Open, silent until the client goes.
    stream = () => undefined;
    const watcher = new RemoteEndWatcher({ store, log: jsonLogger({}, 'error') });
    const opened = asked.length;
    for (let i = 0; i < 12; i++) watcher.watch({ ...probe, key: `team/p${i}` }, cluster, 'app=web', '11', [{ uid: FOLLOWED, container: 'app' }], { forMs: 30_000, ttlSeconds: 600 });
    await waitFor('twelve watches open at the server', async () => asked.length - opened === 12, 10_000, 20);
    const started = Date.now();
    const listed = await listRunningPods(cluster.http, 'apps', 'app=web', { maxPods: 10, timeoutMs: 3000 });
    assert.equal(listed.resourceVersion, '40', 'the list\'s resourceVersion, where the next watch starts');
    assert.ok(Date.now() - started < 2000, `a remote client keeps 8 sockets; 12 watches on it would leave the list waiting: ${Date.now() - started} ms`);
    await watcher.close();
    assert.equal(watcher.size, 0);
  });

  test('bounded: a server that streams past the byte limit is cut off, a watch lasts at most its time, a round\'s new watch ends the one before, and a probe that no longer owns its keys notes nothing', async () => {
    await store.forgetProbe(probe.key);
    assert.equal(await store.claim(probe, 600), 'claimed');
    // Endless: one harmless event every 5 ms until the client goes.
    stream = (res) => {
      const timer = setInterval(() => res.write(`${JSON.stringify({ type: 'MODIFIED', object: { metadata: { uid: STRANGER } } })}\n`), 5);
      res.on('close', () => clearInterval(timer));
    };
    const limited = new RemoteEndWatcher({ store, log: jsonLogger({}, 'error'), limits: { maxWatches: 2, maxWatchMs: 1500, maxBytes: 16 * 1024 } });
    limited.watch(probe, cluster, 'app=web', '11', [{ uid: FOLLOWED, container: 'app' }], { forMs: 60_000, ttlSeconds: 600 });
    await waitFor('cut off at the byte limit', async () => limited.size === 0, 10_000, 20);

    const slow = new RemoteEndWatcher({ store, log: jsonLogger({}, 'error'), limits: { maxWatches: 2, maxWatchMs: 1500, maxBytes: 1024 * 1024 * 1024 } });
    const started = Date.now();
    slow.watch(probe, cluster, 'app=web', '11', [{ uid: FOLLOWED, container: 'app' }], { forMs: 60_000, ttlSeconds: 600 });
    assert.equal(slow.size, 1);
    // The probe's next round: its new watch replaces this one.
    const opened = asked.length;
    slow.watch(probe, cluster, 'app=web', '12', [{ uid: FOLLOWED, container: 'app' }], { forMs: 60_000, ttlSeconds: 600 });
    assert.equal(slow.size, 1, 'one watch per probe');
    await waitFor('the new watch open', async () => asked.length > opened, 5000, 20);
    assert.equal(asked.at(-1)!.get('resourceVersion'), '12');
    // Another probe's watches: the ceiling of two ends the oldest.
    slow.watch({ ...probe, key: 'team/b' }, cluster, 'app=b', '11', [{ uid: FOLLOWED, container: 'app' }], { forMs: 60_000, ttlSeconds: 600 });
    slow.watch({ ...probe, key: 'team/c' }, cluster, 'app=c', '11', [{ uid: FOLLOWED, container: 'app' }], { forMs: 60_000, ttlSeconds: 600 });
    assert.equal(slow.size, 2, 'at most maxWatches');
    await waitFor('every watch ended by its own time', async () => slow.size === 0, 10_000, 50);
    assert.ok(Date.now() - started < 6000, `asked for 60 s, bounded by maxWatchMs (1.5 s; this server ignores timeoutSeconds): ${Date.now() - started} ms`);
    assert.equal(asked.at(-1)!.get('timeoutSeconds'), '2');

    // The probe deleted and re-created: the old probe object's watch writes nothing under the name.
    const successor = fencedProbe({ metadata: { namespace: 'team', name: 'remote', uid: 'uid-2', creationTimestamp: '2026-12-01T11:00:00Z' } });
    assert.equal(await store.claim(successor, 600), 'taken-over');
    stream = (res) => res.end(`${JSON.stringify(oomKilled(FOLLOWED))}\n`);
    slow.watch(probe, cluster, 'app=web', '11', [{ uid: FOLLOWED, container: 'app' }], { forMs: 10_000, ttlSeconds: 600 });
    await waitFor('the stale watch ended', async () => slow.size === 0, 10_000, 50);
    assert.equal(await client.hlen(`mlp:{${probe.key}}:ended`), 0);
    await Promise.all([limited.close(), slow.close()]);
  });

  test("the admin's flags set the bounds: low --max-remote-pod-watches, -time and -bytes are honoured; a bound no watch could work under is refused at start-up", async () => {
    const ceilingsOf = (args: string[]) => ({ ...DEFAULT_CEILINGS, ...operatorConfig(args, {}).ceilings });
    const limits = remoteEndLimits(ceilingsOf(['--max-remote-pod-watches', '1', '--max-remote-pod-watch-time', '1s', '--max-remote-pod-watch-bytes', '64Ki']));
    assert.deepEqual(limits, { maxWatches: 1, maxWatchMs: 1000, maxBytes: 64 * 1024 });
    for (const [args, message] of [
      [['--max-remote-pod-watch-bytes', '16Ki'], /--max-remote-pod-watch-bytes must be at least 64Ki \(one pod's watch event\), got 16384/],
      [['--max-remote-pod-watch-time', '500ms'], /--max-remote-pod-watch-time must be at least 1s/],
      [['--max-remote-pod-watches=-1'], /--max-remote-pod-watches must be a whole number ≥ 0, got "-1"/],
      [['--max-remote-pod-watch-bytes', 'lots'], /invalid size "lots"/],
    ] as const) {
      assert.throws(() => operatorConfig([...args], {}), (err: unknown) => err instanceof UsageError && message.test(err.message), args.join(' '));
    }

    // Each bound on its own, against a server that streams harmless events (about 1.4 KB every 5 ms) until the client goes.
    stream = (res) => {
      const timer = setInterval(() => res.write(`${JSON.stringify({ type: 'MODIFIED', object: { metadata: { uid: STRANGER } } })}\n`.repeat(20)), 5);
      res.on('close', () => clearInterval(timer));
    };
    const roomy = remoteEndLimits(DEFAULT_CEILINGS);
    const watchOf = (watcher: RemoteEndWatcher, name: string): void => watcher.watch({ ...probe, key: `team/${name}` }, cluster, 'app=web', '11', [{ uid: FOLLOWED, container: 'app' }], { forMs: 60_000, ttlSeconds: 600 });
    // One watch per worker: a second probe's watch ends the first.
    const one = new RemoteEndWatcher({ store, log: jsonLogger({}, 'error'), limits: { ...roomy, maxWatches: limits.maxWatches } });
    watchOf(one, 'a');
    watchOf(one, 'b');
    assert.equal(one.size, 1);
    // 1 s, where the probe asked for 60 s.
    const brief = new RemoteEndWatcher({ store, log: jsonLogger({}, 'error'), limits: { ...roomy, maxWatchMs: limits.maxWatchMs } });
    const opened = asked.length;
    const started = Date.now();
    watchOf(brief, 'brief');
    await waitFor('the watch open', async () => asked.length > opened, 5000, 20);
    assert.equal(asked.at(-1)!.get('timeoutSeconds'), '1', 'the server is asked for the bound');
    await waitFor('the watch ended by its bound', async () => brief.size === 0, 10_000, 20);
    assert.ok(Date.now() - started < 4000, `ended ${Date.now() - started} ms after it began (this server ignores timeoutSeconds: cut off a second past it)`);
    // 64 KiB read, a quarter of a second of this stream: the default 4 MiB would take 15 s.
    const little = new RemoteEndWatcher({ store, log: jsonLogger({}, 'error'), limits: { ...roomy, maxBytes: limits.maxBytes } });
    watchOf(little, 'little');
    await waitFor('cut off at 64 KiB', async () => little.size === 0, 5_000, 20);
    // None: no watch is opened at all.
    const none = new RemoteEndWatcher({ store, log: jsonLogger({}, 'error'), limits: remoteEndLimits(ceilingsOf(['--max-remote-pod-watches', '0'])) });
    const before = asked.length;
    watchOf(none, 'none');
    assert.equal(none.size, 0);
    await Promise.all([one.close(), brief.close(), little.close(), none.close()]);
    assert.equal(asked.length, before, 'no watch asked of the server');
  });
});

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Queue } from 'bullmq';
import type { MapLeakProbe } from '../../src/api/types.js';
import { AddressAllowlist } from '../../src/clusters/address-allowlist.js';
import { remoteKubeHttp } from '../../src/clusters/kube-http.js';
import { listRunningPods } from '../../src/clusters/pods.js';
import type { TargetCluster } from '../../src/clusters/registry.js';
import { jsonLogger } from '../../src/observability/log.js';
import type { CaptureJobData } from '../../src/queue/names.js';
import { ProbeClient } from '../../src/api/client.js';
import { DEFAULT_TRIGGER_WATCH_LIMITS, fairShares, triggerConditionWriter, TriggerWatcher, type WatchedPod } from '../../src/worker/trigger-watch.js';
import { stopCluster } from '../cluster/cluster.js';
import { freeLoopbackPort, makeTestTls, startRedis, type RedisServer } from '../cluster/redis.js';
import { condition, startClusterWithCrd, TestProbes } from '../support/probes.js';
import { waitFor } from '../support/wait.js';

/**
 * The API server here is a stand-in (a real HTTPS server on loopback that
 * answers `pods/log?follow=true` with gctrace lines): it plays a tenant's
 * remote API server (spec.cluster), whose certificate and log lines are
 * the tenant's to choose, which a real kube-apiserver cannot be made to
 * present. The queue is a real BullMQ queue on a real Redis.
 */

const PLANTED = 'planted-7c1e-do-not-echo.attacker.example';

const probe = (namespace: string, name: string): MapLeakProbe => ({
  apiVersion: 'mapleak.io/v1alpha1',
  kind: 'MapLeakProbe',
  metadata: { name, namespace, uid: `uid-${namespace}-${name}` },
  spec: {
    selector: { matchLabels: { app: name } },
    pprof: { port: 6060, pathPrefix: '/debug/pprof', transport: 'APIServerProxy', timeout: '10s', maxProfileBytes: 1 << 20 },
    schedule: { interval: '5m', window: 12, jitter: '0s' },
    gctrace: { enabled: true },
    thresholds: { minMapBytes: 1, minGrowthBytesPerHour: 1, maxFindings: 10 },
    triggers: { liveHeapBytes: 64 << 20, growthWindow: '2m', minInterval: '5m' },
    suspend: false,
  },
});
const pods = (namespace: string, prefix: string, n: number): WatchedPod[] =>
  Array.from({ length: n }, (_, i) => ({ name: `${prefix}-${i}`, namespace, uid: `uid-${namespace}-${prefix}-${i}`, container: 'app' }));
const timing = { intervalMs: 300_000, minIntervalMs: 300_000 };

/** Two gctrace lines, written just now: 40 MB live, then 200 MB (crosses 64 MiB). */
function crossingLines(): string {
  const stamp = (ms: number): string => new Date(ms).toISOString();
  const now = Date.now();
  return [
    `${stamp(now - 2000)} gc 7 @10.000s 1%: 0.02+5+0.01 ms clock, 0.05+0/1/5+0.01 ms cpu, 60->61->40 MB, 80 MB goal, 0 MB stacks, 0 MB globals, 2 P`,
    `${stamp(now - 1000)} gc 8 @11.000s 1%: 0.02+5+0.01 ms clock, 0.05+0/1/5+0.01 ms cpu, 300->310->200 MB, 400 MB goal, 0 MB stacks, 0 MB globals, 2 P`,
    '',
  ].join('\n');
}

/** A CA, and a server certificate signed by it for `san`. */
function certificate(dir: string, san: string): { ca: Buffer; cert: Buffer; key: Buffer } {
  const tls = makeTestTls(dir);
  if (san !== 'IP:127.0.0.1') {
    writeFileSync(join(dir, 'planted.ext'), `subjectAltName=${san}\n`);
    execFileSync('openssl', ['x509', '-req', '-in', join(dir, 'server.csr'), '-CA', tls.caFile, '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-days', '1', '-extfile', join(dir, 'planted.ext'), '-out', join(dir, 'planted.crt')], { stdio: 'ignore' });
    return { ca: readFileSync(tls.caFile), cert: readFileSync(join(dir, 'planted.crt')), key: readFileSync(tls.keyFile) };
  }
  return { ca: readFileSync(tls.caFile), cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) };
}

interface StandInApiServer {
  port: number;
  ca: Buffer;
  /** namespace/pod of every log followed. */
  followed: Set<string>;
  /** Log connections open now, by namespace. */
  openFollows(namespace: string): number;
  close(): Promise<void>;
}

/** Answers every pod's log (the pods named in `crossing` log a heap crossing, the others stay quiet: connection held open), and pod lists (empty). */
async function startStandInApiServer(san: string, crossing: ReadonlySet<string>): Promise<StandInApiServer> {
  const { ca, cert, key } = certificate(mkdtempSync(join(tmpdir(), 'mapleak-trigger-fair-')), san);
  const followed = new Set<string>();
  const open = new Map<string, number>();
  const server = https.createServer({ cert, key }, (req, res) => {
    if (/^\/api\/v1\/namespaces\/[^/]+\/pods\?/.test(req.url ?? '')) return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'PodList', metadata: { resourceVersion: '7' }, items: [] }));
    const match = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/log\?/.exec(req.url ?? '');
    if (!match) return void res.writeHead(404).end();
    const pod = `${match[1]}/${match[2]}`;
    followed.add(pod);
    open.set(match[1]!, (open.get(match[1]!) ?? 0) + 1);
    res.on('close', () => open.set(match[1]!, (open.get(match[1]!) ?? 0) - 1));
    res.writeHead(200, { 'content-type': 'text/plain' });
    if (crossing.has(pod)) res.write(crossingLines());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    ca,
    followed,
    openFollows: (namespace) => open.get(namespace) ?? 0,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

function clusterAt(server: string, ca: Buffer, namespace: string): { cluster: TargetCluster; agent: https.Agent } {
  const agent = new https.Agent({ ca, keepAlive: true });
  return { agent, cluster: { id: `remote-${namespace}`, remote: true, namespace, http: { server, agent, headers: {}, get: () => Promise.reject(new Error('unused')), close: () => agent.destroy(), dedicatedAgent: () => new https.Agent({ ca }), followAgent: agent } } };
}

describe('memory-trigger follows are shared fairly and say so', () => {
  test('fair shares: nobody gets more than it wants, what one leaves goes to the others, the sum never passes the ceiling', () => {
    assert.deepEqual(fairShares([50, 1], 50), [49, 1], 'a probe selecting the whole ceiling leaves room for a small one');
    assert.deepEqual(fairShares([50, 50], 50), [25, 25]);
    assert.deepEqual(fairShares([3, 10, 10], 11), [3, 4, 4]);
    assert.deepEqual(fairShares([10, 10, 10], 4), [2, 1, 1], 'a remainder goes to the first in order');
    assert.deepEqual(fairShares([0, 5], 3), [0, 3]);
    assert.deepEqual(fairShares([2, 2], 100), [2, 2]);
    for (const [wants, cap] of [[[7, 1, 30, 4], 9], [[1, 1, 1], 2], [[100], 0]] as const) {
      const shares = fairShares(wants, cap);
      assert.ok(shares.reduce((a, b) => a + b, 0) <= cap);
      shares.forEach((s, i) => assert.ok(s <= wants[i]!));
    }
  });

  describe('against a stand-in API server and a real Redis', () => {
    let redis: RedisServer;
    let queue: Queue<CaptureJobData>;
    let api: StandInApiServer;

    before(async () => {
      [redis, api] = await Promise.all([
        startRedis(),
        startStandInApiServer('IP:127.0.0.1', new Set(['team-b/small-0', 'team-a/second-0', 'team-a/greedy-0'])),
      ]);
      queue = new Queue<CaptureJobData>('trigger-fair', { connection: { host: redis.host, port: redis.port } });
    });
    after(async () => {
      await queue?.close();
      await api?.close();
      await redis?.stop();
    });

    test('one tenant selecting more pods than the ceiling: the other tenant\'s pod is still followed and its crossing fires; the first probe\'s status says it is limited', async () => {
      const conditions: { probe: string; status: string; reason: string; message: string }[] = [];
      const logLines: string[] = [];
      const watcher = new TriggerWatcher({
        queue,
        log: jsonLogger({ test: 'trigger-fair' }, 'debug', (line) => logLines.push(line)),
        limits: { ...DEFAULT_TRIGGER_WATCH_LIMITS, maxFollows: 6, pollMs: 60_000 },
        condition: async (p, update) => void conditions.push({ probe: `${p.metadata.namespace}/${p.metadata.name}`, ...update }),
      });
      const a = clusterAt(`https://127.0.0.1:${api.port}`, api.ca, 'team-a');
      const b = clusterAt(`https://127.0.0.1:${api.port}`, api.ca, 'team-b');
      try {
        // team-a's probe comes first and selects 10 pods, more than the worker's 6 follows.
        watcher.track(probe('team-a', 'greedy'), a.cluster, pods('team-a', 'greedy', 10), timing);
        assert.equal(watcher.followCount, 6, 'alone, it may use the whole ceiling');
        watcher.track(probe('team-b', 'small'), b.cluster, pods('team-b', 'small', 1), timing);
        assert.equal(watcher.followCount, 6, 'the ceiling holds');
        await waitFor('team-b\'s pod followed', async () => api.followed.has('team-b/small-0'), 10_000, 100);

        // team-b's crossing queues its round, ahead of the scheduled rounds (the namespace's first).
        const jobs = async (): Promise<{ name: string; lifo: boolean }[]> =>
          (await queue.getJobs(['wait', 'prioritized', 'delayed'])).map((j) => ({ name: j.data.namespace + '/' + j.data.name, lifo: j.opts.lifo === true }));
        await waitFor('team-b\'s triggered round queued', async () => (await jobs()).some((j) => j.name === 'team-b/small'), 10_000, 100);
        assert.deepEqual((await jobs()).find((j) => j.name === 'team-b/small'), { name: 'team-b/small', lifo: true });

        const limited = conditions.filter((c) => c.probe === 'team-a/greedy').at(-1);
        assert.equal(limited?.status, 'True');
        assert.equal(limited?.reason, 'FollowCeiling');
        assert.match(limited?.message ?? '', /^Memory triggers follow 5 of the 10 selected pods on this worker: it follows at most 6 pod logs \(operator ceiling\)/);
        assert.ok(!conditions.some((c) => c.probe === 'team-b/small' && c.status === 'True'), 'the small probe is not limited');

        // A second probe of team-a crosses too: its round queues behind the scheduled ones, since team-a jumped ahead once already.
        watcher.track(probe('team-a', 'second'), a.cluster, pods('team-a', 'second', 1), timing);
        await waitFor('team-a/second\'s triggered round queued', async () => (await jobs()).some((j) => j.name === 'team-a/second'), 10_000, 100);
        const teamA = (await jobs()).filter((j) => j.name.startsWith('team-a/'));
        assert.deepEqual(teamA.map((j) => j.lifo).sort(), [false, true], `one jump ahead per namespace per minimum interval: ${JSON.stringify(teamA)}`);

        // team-a/greedy selects fewer pods: every one is followed, and the condition turns False.
        watcher.track(probe('team-a', 'greedy'), a.cluster, pods('team-a', 'greedy', 2), timing);
        assert.deepEqual(conditions.filter((c) => c.probe === 'team-a/greedy').at(-1)?.reason, 'AllPodsFollowed');
      } finally {
        watcher.close();
        a.agent.destroy();
        b.agent.destroy();
      }
    });

    test("a remote cluster's follows have a pool of their own: with more follows held open than its 8 request sockets, its pod lists are still answered", async () => {
      // The client a spec.cluster probe gets (kube-http's remoteKubeHttp): 8 request sockets, and the follows' own pool.
      const http = remoteKubeHttp({ server: `https://127.0.0.1:${api.port}`, caPem: api.ca, insecureSkipTlsVerify: false }, AddressAllowlist.parse(['127.0.0.1/32']), 12);
      const cluster: TargetCluster = { id: 'secret:team-p/kc/kubeconfig@x/1', remote: true, http, namespace: 'team-p' };
      const watcher = new TriggerWatcher({
        queue: { add: () => Promise.reject(new Error('nothing crosses here')) },
        log: jsonLogger({ test: 'trigger-pool' }, 'warn', () => undefined),
        limits: { ...DEFAULT_TRIGGER_WATCH_LIMITS, maxFollows: 12, pollMs: 60_000 },
      });
      try {
        // Quiet pods: every follow holds its connection open.
        watcher.track(probe('team-p', 'quiet'), cluster, pods('team-p', 'quiet', 12), timing);
        await waitFor('12 follows open at the server', async () => api.openFollows('team-p') === 12, 10_000, 20);
        // What the probe's next round does first. On the shared pool it would wait for a follow to end (none does) until its timeout.
        const listed = await listRunningPods(http, 'team-p', 'app=quiet', { maxPods: 10, timeoutMs: 3000 });
        assert.equal(listed.resourceVersion, '7');
        assert.equal(api.openFollows('team-p'), 12, 'the follows still stream');
      } finally {
        watcher.close();
        http.close();
      }
      await waitFor('the follows closed with the watcher', async () => api.openFollows('team-p') === 0, 5000, 20);
    });
  });

  test('a follow whose API server presents a certificate with planted names: the log names the error code, never the certificate', async () => {
    const api = await startStandInApiServer(`DNS:${PLANTED}, DNS:other.${PLANTED}`, new Set());
    const logLines: string[] = [];
    const watcher = new TriggerWatcher({
      queue: { add: () => Promise.reject(new Error('nothing can cross here')) },
      log: jsonLogger({ test: 'trigger-tls' }, 'debug', (line) => logLines.push(line)),
      limits: { ...DEFAULT_TRIGGER_WATCH_LIMITS, maxFollows: 4, pollMs: 60_000 },
    });
    // Reached under a name the certificate does not hold: Node's message quotes every name in it.
    const { cluster, agent } = clusterAt(`https://localhost:${api.port}`, api.ca, 'team-c');
    try {
      watcher.track(probe('team-c', 'tls'), cluster, pods('team-c', 'tls', 1), timing);
      await waitFor('the failed follow logged', async () => logLines.some((l) => l.includes('trigger follow failed')), 10_000, 100);
      const failed = JSON.parse(logLines.find((l) => l.includes('trigger follow failed'))!) as { error: string; status: number };
      assert.equal(failed.error, 'ERR_TLS_CERT_ALTNAME_INVALID');
      assert.equal(failed.status, 0);
      for (const line of logLines) assert.ok(!line.includes('attacker.example'), `planted text logged: ${line}`);
    } finally {
      watcher.close();
      agent.destroy();
      await api.close();
    }
  });

  test('TriggersLimited reaches the probe\'s status on a real API server, and goes back to False', async () => {
    const { kc } = await startClusterWithCrd('hyg-trigger-fair');
    const agent = new https.Agent();
    try {
      const probes = new TestProbes(kc);
      await probes.create('greedy', { selector: { matchLabels: { app: 'greedy' } }, triggers: { liveHeapBytes: 64 << 20 } });
      const created = (await probes.get('greedy'))!;
      // Follows go nowhere (a closed port: they back off quietly); the share is what the condition says.
      const cluster: TargetCluster = { id: 'local', remote: false, namespace: 'default', http: { server: `https://127.0.0.1:${await freeLoopbackPort()}`, agent, headers: {}, get: () => Promise.reject(new Error('unused')), close: () => agent.destroy(), dedicatedAgent: () => new https.Agent(), followAgent: agent } };
      const watcher = new TriggerWatcher({
        queue: { add: () => Promise.reject(new Error('nothing can cross here')) },
        log: jsonLogger({ test: 'trigger-status' }, 'warn', () => undefined),
        limits: { ...DEFAULT_TRIGGER_WATCH_LIMITS, maxFollows: 2, pollMs: 60_000 },
        condition: triggerConditionWriter(new ProbeClient(kc)),
      });
      try {
        watcher.track(created, cluster, pods('default', 'greedy', 3), timing);
        const limited = await waitFor('TriggersLimited=True in the status', async () => {
          const c = condition(await probes.get('greedy'), 'TriggersLimited');
          return c?.status === 'True' && c;
        }, 20_000, 250);
        assert.equal(limited.reason, 'FollowCeiling');
        assert.match(limited.message, /^Memory triggers follow 2 of the 3 selected pods on this worker: it follows at most 2 pod logs \(operator ceiling\)/);
        watcher.track(created, cluster, pods('default', 'greedy', 2), timing);
        await waitFor('TriggersLimited=False AllPodsFollowed', async () => condition(await probes.get('greedy'), 'TriggersLimited')?.reason === 'AllPodsFollowed', 20_000, 250);
      } finally {
        watcher.close();
      }
    } finally {
      agent.destroy();
      await stopCluster('hyg-trigger-fair');
    }
  });
});

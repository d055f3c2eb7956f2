import assert from 'node:assert/strict';
import https from 'node:https';
import { createServer } from 'node:net';
import { describe, test } from 'node:test';
import type { MapLeakProbe } from '../../src/api/types.js';
import type { TargetCluster } from '../../src/clusters/registry.js';
import { jsonLogger } from '../../src/observability/log.js';
import { DEFAULT_TRIGGER_WATCH_LIMITS, TriggerWatcher, type WatchedPod } from '../../src/worker/trigger-watch.js';

/** A loopback port nothing listens on: every follow fails at once and backs off (the follows' own I/O is covered by test/operator/triggers). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const probe = (name: string, triggers: MapLeakProbe['spec']['triggers'] | null = { liveHeapBytes: 64 << 20, growthWindow: '2m', minInterval: '5m' }): MapLeakProbe => ({
  apiVersion: 'mapleak.io/v1alpha1',
  kind: 'MapLeakProbe',
  metadata: { name, namespace: 'shop', uid: `uid-${name}` },
  spec: {
    selector: { matchLabels: { app: name } },
    pprof: { port: 6060, pathPrefix: '/debug/pprof', transport: 'APIServerProxy', timeout: '10s', maxProfileBytes: 1 << 20 },
    schedule: { interval: '5m', window: 12, jitter: '0s' },
    gctrace: { enabled: true },
    thresholds: { minMapBytes: 1, minGrowthBytesPerHour: 1, maxFindings: 10 },
    ...(triggers ? { triggers } : {}),
    suspend: false,
  },
});
const pod = (name: string): WatchedPod => ({ name, namespace: 'shop', uid: `uid-${name}`, container: 'app' });
const timing = { intervalMs: 300_000, minIntervalMs: 300_000 };

describe('trigger watcher bookkeeping', () => {
  test('follows at most the admin’s ceiling, only the pods the last round listed, and none once the probe is gone or loses its triggers', async () => {
    const agent = new https.Agent();
    const cluster: TargetCluster = { id: 'local', remote: false, namespace: 'shop', http: { server: `https://127.0.0.1:${await closedPort()}`, agent, headers: {}, get: () => Promise.reject(new Error('unused')), close: () => agent.destroy(), dedicatedAgent: () => new https.Agent(), followAgent: agent } };
    const warnings: string[] = [];
    const log = jsonLogger({ test: 'trigger-watch' });
    const watcher = new TriggerWatcher({
      queue: { add: () => Promise.reject(new Error('no crossing can happen here')) },
      log: { ...log, warn: (msg: string) => warnings.push(msg), child: () => ({ ...log, warn: (msg: string) => warnings.push(msg), child: () => log }) },
      limits: { ...DEFAULT_TRIGGER_WATCH_LIMITS, maxFollows: 3, pollMs: 60_000 },
    });
    try {
      watcher.track(probe('a'), cluster, [pod('a-1'), pod('a-2')], timing);
      watcher.track(probe('b'), cluster, [pod('b-1'), pod('b-2')], timing);
      assert.equal(watcher.followCount, 3, 'the ceiling holds across probes');
      assert.deepEqual(warnings, ['memory triggers: follow ceiling reached, pods not watched between rounds']);
      watcher.track(probe('b'), cluster, [pod('b-1'), pod('b-2')], timing);
      assert.equal(warnings.length, 1, 'said once per probe');

      // a-2 is no longer listed: its follow stops, and b-2 gets the freed place.
      watcher.track(probe('a'), cluster, [pod('a-1')], timing);
      watcher.track(probe('b'), cluster, [pod('b-1'), pod('b-2')], timing);
      assert.equal(watcher.followCount, 3);
      watcher.track(probe('a', null), cluster, [pod('a-1')], timing);
      assert.equal(watcher.followCount, 2, 'spec.triggers removed');
      watcher.forget('shop', 'b');
      assert.equal(watcher.followCount, 0, 'probe gone');
    } finally {
      watcher.close();
      agent.destroy();
    }
  });
});

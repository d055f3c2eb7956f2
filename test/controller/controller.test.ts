import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CoordinationV1Api, CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { ProbeClient } from '../../src/api/client.js';
import { FINALIZER, type MapLeakProbe } from '../../src/api/types.js';
import { LeaderElector } from '../../src/controller/leader.js';
import { MAX_POD_LABELS, ProbeController, slimPod, slimProbe, type CachedPod } from '../../src/controller/controller.js';
import { SupervisedInformer, type ObjectChange } from '../../src/controller/supervised-informer.js';
import { jsonLogger } from '../../src/observability/log.js';
import { OperatorMetrics } from '../../src/observability/metrics.js';
import { CAPTURE_QUEUE, type CaptureJobData } from '../../src/queue/names.js';
import { desiredScheduler, ensureScheduler } from '../../src/queue/schedulers.js';
import { NamespaceLedger } from '../../src/store/namespace-ledger.js';
import { SeriesStore } from '../../src/store/series-store.js';
import { restartApiserver, stopCluster, type Cluster } from '../cluster/cluster.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { condition, startClusterWithCrd, TestProbes } from '../support/probes.js';
import { waitFor } from '../support/wait.js';

process.env.LOG_LEVEL ??= 'warn';
const CLUSTER = 'controller';
const NS = 'default';
const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
/** Long enough that a triggered round stays in the queue (no worker here) to be counted. */
const TRIGGER_DELAY_MS = 10 * 60_000;

/** A kwok pod with no process behind it: kwok makes it Running and Ready. */
function podBody(cluster: Cluster, name: string, labels: Record<string, string>): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels },
    spec: { nodeName: cluster.nodeName, containers: [{ name: 'app', image: 'mapleakprobe.local/none:latest' }], terminationGracePeriodSeconds: 0 },
  };
}

/**
 * The real client, with a hook a test sets to run once, when the API server
 * has just said a probe is not there (404) and before the controller hears
 * it: the test acts inside the window between the check and what the
 * controller does on it.
 */
class HookedProbeClient extends ProbeClient {
  private hooks = new Map<string, () => Promise<void>>();

  onceGone(namespace: string, name: string, hook: () => Promise<void>): void {
    this.hooks.set(`${namespace}/${name}`, hook);
  }

  override async get(namespace: string, name: string): Promise<MapLeakProbe | undefined> {
    const probe = await super.get(namespace, name);
    const hook = probe ? undefined : this.hooks.get(`${namespace}/${name}`);
    if (hook) {
      this.hooks.delete(`${namespace}/${name}`);
      await hook();
    }
    return probe;
  }
}

describe('controller against a real API server and Redis (kwok pods)', () => {
  let cluster: Cluster;
  let kc: KubeConfig;
  let core: CoreV1Api;
  let redis: RedisServer;
  let connection: Redis;
  let queue: Queue<CaptureJobData>;
  let probes: TestProbes;
  let metrics: OperatorMetrics;
  let controller: ProbeController;
  let controllerProbes: HookedProbeClient;

  const podReady = (name: string): Promise<boolean> =>
    waitFor(`pod ${name} Ready`, async () => slimPod((await core.readNamespacedPod({ name, namespace: NS })) as never).state === 'ready', 30_000, 200);
  /** Capture rounds the controller queued for a probe because of pod changes. */
  const triggered = async (probe: string): Promise<number> => (await queue.getJobs(['delayed', 'waiting'])).filter((j) => j.data.name === probe && j.opts.deduplication?.id === `targets-${NS}-${probe}`).length;
  const reconciles = async (): Promise<number> => (await metrics.reconciles.get()).values.reduce((sum, v) => sum + v.value, 0);
  /** Waits until no reconcile ran for `quietMs`. */
  const settle = async (quietMs = 1500): Promise<void> => {
    let last = await reconciles();
    await waitFor('the controller idle', async () => {
      await new Promise((resolve) => setTimeout(resolve, quietMs));
      const now = await reconciles();
      const idle = now === last;
      last = now;
      return idle;
    }, 60_000, 0);
  };
  const scheduled = (name: string, every = 3_600_000): Promise<true> =>
    waitFor(`scheduler of ${name} every ${every} ms`, async () => (await queue.getJobScheduler(`${NS}/${name}`))?.every === every || undefined, 30_000, 100);

  before(async () => {
    ({ cluster, kc } = await startClusterWithCrd(CLUSTER));
    core = kc.makeApiClient(CoreV1Api);
    probes = new TestProbes(kc, NS);
    redis = await startRedis();
    connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    queue = new Queue<CaptureJobData>(CAPTURE_QUEUE, { connection });
    metrics = new OperatorMetrics();
    // Present before the controller starts: the initial list is not news.
    await core.createNamespacedPod({ namespace: NS, body: podBody(cluster, 'early', { app: 'leaves' }) });
    await podReady('early');
    for (const [name, app] of [['joins', 'joins'], ['leaves', 'leaves'], ['relabelled', 'relabelled'], ['bystander', 'nothing-runs-here']] as const) {
      await probes.create(name, { selector: { matchLabels: { app } }, schedule: { interval: '1h' } });
    }
    controller = new ProbeController(
      kc,
      { probes: (controllerProbes = new HookedProbeClient(kc)), queue, store: new SeriesStore(connection), metrics, log: jsonLogger({ part: 'controller' }) },
      { resyncMs: 3_600_000, watchdogMs: 60_000, watchTimeoutSeconds: 30, podTriggerDelayMs: TRIGGER_DELAY_MS, reconcileLanes: 4 },
    );
    await controller.start();
  });

  after(async () => {
    await controller?.stop();
    await queue?.close();
    connection?.disconnect();
    await redis?.stop();
    await stopCluster(CLUSTER);
  });

  test('probes get the finalizer, a scheduler and Ready=True Scheduled; their own status echo is not reconciled again and again', async () => {
    for (const name of ['joins', 'leaves', 'relabelled', 'bystander']) await scheduled(name);
    await settle();
    const probe = (await probes.get('joins')) as MapLeakProbe;
    assert.ok(probe.metadata.finalizers?.includes(FINALIZER));
    assert.equal(condition(probe, 'Ready')?.reason, 'Scheduled');
    assert.equal(probe.status?.observedGeneration, probe.metadata.generation);
    assert.ok(probe.status?.nextCaptureTime, 'nextCaptureTime written with the scheduler');
    assert.equal(await triggered('leaves'), 0, 'a pod already Ready when the controller started triggers nothing');
  });

  test('a status write that is not the controller’s (the worker’s findings) reconciles nothing; a spec change does, at once', async () => {
    await settle();
    const before = await reconciles();
    const client = new ProbeClient(kc);
    await client.updateStatus(NS, 'joins', () => ({ verdict: 'Healthy', targetCount: 3, lastCaptureTime: new Date().toISOString() }));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(await reconciles(), before, 'no reconcile for a status the controller does not own');
    await probes.patchSpec('joins', { schedule: { interval: '2h' } });
    await scheduled('joins', 7_200_000);
    const probe = await waitFor('Ready for generation 2', async () => {
      const p = await probes.get('joins');
      return p?.status?.observedGeneration === p?.metadata.generation && p;
    }, 30_000, 200);
    assert.equal(probe.status?.verdict, 'Healthy', 'the worker’s fields are kept');
    await probes.patchSpec('joins', { schedule: { interval: '1h' } });
    await scheduled('joins');
  });

  test('a selected pod becoming Ready, one going away and one relabelled into a selector each queue one round; others queue none', async () => {
    await core.createNamespacedPod({ namespace: NS, body: podBody(cluster, 'new', { app: 'joins' }) });
    await core.createNamespacedPod({ namespace: NS, body: podBody(cluster, 'other', { app: 'relabelled-later' }) });
    await podReady('new');
    await podReady('other');
    await waitFor('a round for joins', async () => (await triggered('joins')) === 1, 20_000, 200);

    await core.deleteNamespacedPod({ name: 'early', namespace: NS, gracePeriodSeconds: 0 });
    await waitFor('a round for leaves', async () => (await triggered('leaves')) === 1, 20_000, 200);

    await core.patchNamespacedPod({ name: 'other', namespace: NS, body: { metadata: { labels: { app: 'relabelled' } } } }, MERGE_PATCH);
    await waitFor('a round for relabelled', async () => (await triggered('relabelled')) === 1, 20_000, 200);

    // A status-only pod update (kwok's heartbeats, a new annotation) changes no target.
    await core.patchNamespacedPod({ name: 'new', namespace: NS, body: { metadata: { annotations: { touched: 'yes' } } } }, MERGE_PATCH);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(await triggered('joins'), 1, 'debounced: still one round');
    assert.equal(await triggered('bystander'), 0);
    assert.equal(await triggered('relabelled'), 1);
  });

  test('a pod carrying more labels than the largest selector can name is cached without them and starts no round; its scheduled rounds are the worker\'s', async () => {
    // Anyone who may create a pod sizes its labels: ~7,000 fit in one object. Past 96 (or 8,192 characters) the controller keeps none.
    const fat = { app: 'joins', ...Object.fromEntries(Array.from({ length: MAX_POD_LABELS }, (_, i) => [`l${i}.example/${'k'.repeat(40)}`, 'v'.repeat(63)])) };
    const before = await triggered('joins');
    await core.createNamespacedPod({ namespace: NS, body: podBody(cluster, 'fat', fat) });
    await podReady('fat');
    const slim = slimPod((await core.readNamespacedPod({ name: 'fat', namespace: NS })) as never);
    assert.equal(slim.labels, undefined, 'none of its labels kept');
    assert.equal(slim.state, 'ready');
    // A round would be queued (delayed) within the pod event's handling: the other test sees one within a second or two.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    assert.equal(await triggered('joins'), before, 'no round for it (the pod selected by joins is captured by its schedule)');
    const atTheBound = slimPod({ metadata: { labels: Object.fromEntries(Array.from({ length: MAX_POD_LABELS }, (_, i) => [`k${i}`, 'v'])) }, status: { phase: 'Running' } } as never);
    assert.equal(Object.keys(atTheBound.labels ?? {}).length, MAX_POD_LABELS, 'up to the bound, every label kept');
    await core.deleteNamespacedPod({ name: 'fat', namespace: NS, gracePeriodSeconds: 0 });
  });

  test('a resync recreates a scheduler lost from Redis, removes one whose probe is gone, and leaves settled probes alone', async () => {
    await settle();
    await queue.removeJobScheduler(`${NS}/bystander`);
    const orphan = desiredScheduler({ metadata: { name: 'deleted-long-ago', namespace: NS, uid: 'uid-gone' }, spec: { schedule: { interval: '1h', window: 12, jitter: '0s' } } } as MapLeakProbe);
    await ensureScheduler(queue, orphan);
    const before = await reconciles();
    await controller.resync();
    await scheduled('bystander');
    await waitFor('the orphan removed', async () => (await queue.getJobScheduler(orphan.id)) === undefined, 10_000, 100);
    await settle();
    assert.equal((await reconciles()) - before, 2, 'only the probe whose scheduler was lost, and the orphan, went back through reconcile');
  });

  test('a probe re-created under the name of an orphan scheduler while the resync removes that orphan keeps the scheduler it gets', async () => {
    await settle();
    const orphan = desiredScheduler({ metadata: { name: 'reborn', namespace: NS, uid: 'uid-of-the-deleted-one' }, spec: { schedule: { interval: '1h', window: 12, jitter: '0s' } } } as MapLeakProbe);
    await ensureScheduler(queue, orphan);
    const schedulerUid = async (): Promise<string | undefined> => (await queue.getJobScheduler(orphan.id))?.template?.data?.uid;
    let createdUid = '';
    // Right after the API server said "no probe reborn", before the controller removes the orphan: the probe is created,
    // and a reconcile of it, wherever it may run, is given the time to make its scheduler (it cannot while the key is this one's).
    controllerProbes.onceGone(NS, 'reborn', async () => {
      await probes.create('reborn', { selector: { matchLabels: { app: 'reborn' } }, schedule: { interval: '1h' } });
      createdUid = (await probes.get('reborn'))?.metadata.uid ?? '';
      await waitFor('a scheduler for the new probe', async () => (await schedulerUid()) === createdUid, 3000, 50).catch(() => undefined);
    });
    await controller.resync();
    const probe = await waitFor('the new probe Ready=True Scheduled', async () => {
      const p = await probes.get('reborn');
      return condition(p, 'Ready')?.reason === 'Scheduled' && p;
    }, 30_000, 100);
    assert.ok(createdUid && probe.metadata.uid === createdUid, 'the hook ran: the probe was re-created inside the window');
    assert.equal(await waitFor('its scheduler', async () => await schedulerUid(), 10_000, 100), createdUid, "the new probe's scheduler, not the orphan's");
    await settle();
    assert.equal(await schedulerUid(), createdUid, 'still there once the controller is idle: not lost until the next resync (an hour here)');
    await probes.delete('reborn');
    await waitFor('reborn gone', async () => (await probes.get('reborn')) === undefined, 30_000, 200);
  });

  test('a suspended probe runs no rounds, yet its incidents past the retention leave the status at a resync (and a settled probe is left alone)', async () => {
    await probes.create('suspended', { selector: { matchLabels: { app: 'none' } }, schedule: { interval: '1h' }, suspend: true });
    await waitFor('Ready=False Suspended', async () => condition(await probes.get('suspended'), 'Ready')?.reason === 'Suspended' || undefined, 30_000, 100);
    const incident = (id: string, ageMs: number) => {
      const time = new Date(Date.now() - ageMs).toISOString();
      return { id, pod: 'app-0', namespace: NS, container: 'app', reason: 'OOMKilled', exitCode: 137, time, detectedTime: time, restartCount: 1, restarts: 1, verdict: 'Leaking' as const, captureIds: [], findings: [] };
    };
    const week = 7 * 24 * 3600_000;
    await new ProbeClient(kc).updateStatus(NS, 'suspended', () => ({ incidents: [incident('fresh', 60_000), incident('expired', week + 60_000)] }));
    const pruned = await waitFor('the expired incident gone', async () => {
      await controller.resync();
      const ids = (await probes.get('suspended'))?.status?.incidents?.map((i) => i.id);
      return ids?.length === 1 && ids;
    }, 30_000, 200);
    assert.deepEqual(pruned, ['fresh'], 'the one within the retention (the default 7 days) stays');
    await settle();
    const before = await reconciles();
    await controller.resync();
    await settle();
    assert.equal(await reconciles(), before, 'nothing left to prune: no reconcile');
  });

  test("mapleak_namespace_stored_bytes: one series per namespace with probes, its ledger's total as of the scrape, gone with the namespace's last probe", async () => {
    const TEAM = 'ledger-team';
    await core.createNamespace({ body: { metadata: { name: TEAM } } });
    const team = new TestProbes(kc, TEAM);
    await team.create('counted', { selector: { matchLabels: { app: 'none' } }, schedule: { interval: '1h' } });
    await team.create('also-counted', { selector: { matchLabels: { app: 'none' } }, schedule: { interval: '1h' } });
    await waitFor('the team probes scheduled', async () => (await queue.getJobScheduler(`${TEAM}/counted`)) && (await queue.getJobScheduler(`${TEAM}/also-counted`)), 30_000, 100);
    // What a worker's stored captures reserve, through the store's own ledger (the store's prefix, `mlp`).
    const ledger = new NamespaceLedger(connection, 'mlp');
    await ledger.reserve(TEAM, NamespaceLedger.entry('counted', 'c1'), { summary: 1000, profile: 2345 }, 600_000, Number.POSITIVE_INFINITY, []);
    // A namespace with stored bytes and no probe (its last one deleted while its captures live on): not a series.
    await ledger.reserve('no-probes-here', NamespaceLedger.entry('gone', 'c1'), { summary: 99, profile: 0 }, 600_000, Number.POSITIVE_INFINITY, []);
    const scrape = async (): Promise<Map<string, number>> => {
      const text = await metrics.registry.metrics();
      return new Map([...text.matchAll(/^mapleak_namespace_stored_bytes\{namespace="([^"]+)"\} (\d+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
    };
    assert.deepEqual(await scrape(), new Map([[NS, 0], [TEAM, 3345]]), 'the namespaces with probes, each with its ledger total');
    await ledger.reserve(TEAM, NamespaceLedger.entry('also-counted', 'c1'), { summary: 500, profile: 0 }, 600_000, Number.POSITIVE_INFINITY, []);
    assert.equal((await scrape()).get(TEAM), 3845, 'read at the scrape, not at the last resync');
    await team.delete('counted');
    await waitFor('counted gone', async () => (await team.get('counted')) === undefined, 30_000, 200);
    assert.ok((await scrape()).has(TEAM), 'one probe left in the namespace: its series stays');
    await team.delete('also-counted');
    await waitFor('also-counted gone', async () => (await team.get('also-counted')) === undefined, 30_000, 200);
    await waitFor("the namespace's series gone with its last probe", async () => !(await scrape()).has(TEAM), 10_000, 100);
    assert.deepEqual([...(await scrape()).keys()], [NS]);
  });

  test('mapleak_namespace_stored_bytes goes with the controller that exported it (stopped, or lease lost), not with a newer one', async () => {
    const own = new OperatorMetrics(false);
    const series = async (): Promise<string[]> => (await own.registry.metrics()).split('\n').filter((line) => line.startsWith('mapleak_namespace_stored_bytes{'));
    const endOld = own.namespaceStoredBytesFrom(async () => new Map([['team-x', 10]]));
    assert.deepEqual(await series(), ['mapleak_namespace_stored_bytes{namespace="team-x"} 10']);
    endOld();
    assert.deepEqual(await series(), [], 'a stopped controller exports none');
    const endFirst = own.namespaceStoredBytesFrom(async () => new Map([['team-x', 10]]));
    await series();
    // The next term's controller starts before the last one's stop has run out: the old stop leaves the new series.
    const endNext = own.namespaceStoredBytesFrom(async () => new Map<string, number | undefined>([['team-y', 20], ['team-z', undefined]]));
    endFirst();
    assert.deepEqual(await series(), ['mapleak_namespace_stored_bytes{namespace="team-y"} 20'], "only the newer controller's namespaces; one whose ledger did not answer has no value yet");
    endNext();
    assert.deepEqual(await series(), []);
  });

  test('a deleted probe: scheduler removed and finalizer released', async () => {
    await probes.delete('bystander');
    await waitFor('bystander gone', async () => (await probes.get('bystander')) === undefined, 30_000, 200);
    assert.equal(await queue.getJobScheduler(`${NS}/bystander`), undefined);
  });

  test('a leader whose start waits forever (the first resync while Redis is away) keeps renewing its lease, and releases it on stop', async () => {
    const leases = kc.makeApiClient(CoordinationV1Api);
    const lease = { namespace: NS, name: 'stuck-start' };
    let started = 0;
    const elector = new LeaderElector(
      kc,
      { ...lease, identity: 'stuck', leaseDurationMs: 2_000, renewDeadlineMs: 1_500, retryPeriodMs: 250 },
      { onStartedLeading: () => { started++; return new Promise<void>(() => undefined); }, onStoppedLeading: () => undefined },
      jsonLogger({ part: 'leader-election' }),
    );
    elector.start();
    try {
      await waitFor('leading', async () => elector.isLeader || undefined, 10_000, 50);
      const renewTimes = new Set<string>();
      const until = Date.now() + 3_000; // past the lease duration: a renewal stuck behind the start would let it lapse
      while (Date.now() < until) {
        const spec = (await leases.readNamespacedLease(lease)).spec;
        assert.equal(spec?.holderIdentity, 'stuck', 'still the holder');
        const renewed = spec?.renewTime as unknown;
        renewTimes.add(renewed instanceof Date ? renewed.toISOString() : String(renewed));
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.ok(renewTimes.size >= 4, `the lease was renewed while the start waited (${renewTimes.size} renew times seen)`);
      assert.equal(started, 1, 'started once');
      assert.ok(elector.isLeader);
    } finally {
      await elector.stop();
    }
    assert.equal((await leases.readNamespacedLease(lease)).spec?.holderIdentity, undefined, 'released');
  });

  test('a leader stopped while a renewal is in flight still releases its lease (the release reads again on conflict)', async () => {
    const leases = kc.makeApiClient(CoordinationV1Api);
    const lease = { namespace: NS, name: 'busy-renewer' };
    // Renewing every 10 ms keeps a renewal in flight most of the time: some stops land between its read and its write.
    for (let round = 0; round < 15; round++) {
      const elector = new LeaderElector(
        kc,
        { ...lease, identity: `renewer-${round}`, leaseDurationMs: 2_000, renewDeadlineMs: 1_500, retryPeriodMs: 10 },
        { onStartedLeading: () => undefined, onStoppedLeading: () => undefined },
        jsonLogger({ part: 'leader-election' }),
      );
      elector.start();
      await waitFor('leading', async () => elector.isLeader || undefined, 10_000, 10);
      await new Promise((resolve) => setTimeout(resolve, 20 + 7 * round));
      await elector.stop();
      assert.equal((await leases.readNamespacedLease(lease)).spec?.holderIdentity, undefined, `released (stop ${round + 1})`);
    }
  });
});

describe('supervised informer against a real API server', () => {
  let cluster: Cluster;
  let kc: KubeConfig;
  let core: CoreV1Api;

  before(async () => {
    ({ cluster, kc } = await startClusterWithCrd(`${CLUSTER}-informer`));
    core = kc.makeApiClient(CoreV1Api);
  });
  after(async () => {
    await stopCluster(`${CLUSTER}-informer`);
  });

  test('lists in pages, keeps only the slim record, and survives an API server restart', async () => {
    for (let i = 0; i < 7; i++) await core.createNamespacedPod({ namespace: NS, body: podBody(cluster, `p${i}`, { app: 'paged', n: String(i) }) });
    const changes: ObjectChange<CachedPod>[] = [];
    const informer = new SupervisedInformer<CachedPod>({
      kc,
      path: '/api/v1/pods',
      slim: slimPod,
      pageSize: 2,
      watchTimeoutSeconds: 30,
      watchdogMs: 60_000,
      onChange: (change) => changes.push(change),
      log: jsonLogger({ part: 'informer' }),
    });
    try {
      await informer.start();
      assert.ok(informer.synced);
      assert.equal(changes.filter((c) => c.initial).length, 7, 'all 7 pods across 4 pages, marked initial');
      const record = informer.get(`${NS}/p3`);
      assert.deepEqual(Object.keys(record ?? {}).sort(), ['labels', 'state'], 'nothing but labels and state is kept');
      assert.deepEqual(record?.labels, { app: 'paged', n: '3' });

      await restartApiserver(cluster, 1000);
      await core.deleteNamespacedPod({ name: 'p0', namespace: NS, gracePeriodSeconds: 0 }).catch(async () => {
        await waitFor('API server back', async () => (await core.listNamespacedPod({ namespace: NS })).items.length > 0, 60_000, 500);
        await core.deleteNamespacedPod({ name: 'p0', namespace: NS, gracePeriodSeconds: 0 });
      });
      await core.createNamespacedPod({ namespace: NS, body: podBody(cluster, 'after-restart', { app: 'paged' }) });
      await waitFor('the new pod seen after the restart', async () => informer.get(`${NS}/after-restart`) !== undefined, 60_000, 200);
      await waitFor('the deleted pod gone from the cache', async () => informer.get(`${NS}/p0`) === undefined, 60_000, 200);
      assert.ok(changes.some((c) => c.key === `${NS}/p0` && c.current === undefined && !c.initial), 'its deletion was an event');
      assert.equal(informer.size, 7);
    } finally {
      await informer.stop();
    }
  });

  test('the probe record keeps what the reconciler reads and drops the rest', () => {
    const slim = slimProbe({
      apiVersion: 'mapleak.io/v1alpha1',
      kind: 'MapLeakProbe',
      metadata: { name: 'p', namespace: NS, uid: 'u', generation: 3, resourceVersion: '9', creationTimestamp: '2026-12-01T10:00:00Z', finalizers: [FINALIZER], managedFields: [{ manager: 'kubectl' }], annotations: { big: 'x'.repeat(10_000) } },
      spec: { selector: { matchLabels: { app: 'a' } } },
      status: {
        observedGeneration: 3,
        // The worker's conditions quote the selector and failing pods (up to 32 KiB a message): the controller reads none of them.
        conditions: [{ type: 'Ready', status: 'True' }, { type: 'Capturing', status: 'False', message: 'x'.repeat(32_768) }, { type: 'Degraded', status: 'True', message: 'y'.repeat(32_768) }, { type: 'CeilingsApplied', status: 'False' }],
        findings: [{ advice: 'x'.repeat(10_000) }],
        targets: [],
      },
    } as never);
    // creationTimestamp: the per-namespace ceiling keeps the oldest probes.
    assert.deepEqual(slim.metadata, { name: 'p', namespace: NS, uid: 'u', generation: 3, resourceVersion: '9', creationTimestamp: '2026-12-01T10:00:00Z', deletionTimestamp: undefined, finalizers: [FINALIZER] });
    assert.deepEqual(Object.keys(slim.status ?? {}).sort(), ['conditions', 'observedGeneration']);
    assert.deepEqual(slim.status?.conditions?.map((c) => c.type), ['Ready', 'CeilingsApplied'], 'only the conditions the reconciler writes and compares');
    assert.deepEqual(slim.spec, { selector: { matchLabels: { app: 'a' } } });
    const incident = (time: string) => ({ id: time, pod: 'p', namespace: NS, container: 'c', reason: 'OOMKilled', time, detectedTime: time, restartCount: 1, verdict: 'Unknown', captureIds: [], findings: [] });
    const withIncidents = slimProbe({ metadata: { name: 'p', namespace: NS, uid: 'u' }, spec: {}, status: { incidents: [incident('2026-12-01T10:00:00Z'), incident('2026-11-01T10:00:00Z')] } } as never);
    assert.deepEqual(withIncidents.status?.incidents?.map((i) => i.time), ['2026-11-01T10:00:00Z'], 'of the incidents only the oldest, the first to expire');
  });

});

// A probe or pod that goes away in the middle of a round, on the local
// control plane with real Go programs.
// Real: the kube-apiserver (its eviction API and DisruptionTarget condition),
// Redis, the operator (controller and worker in this process), BullMQ, the
// kernel's OOM killer (a cgroup v1 memory cgroup with memory.limit_in_bytes),
// and test/targets/gated, a Go program whose heap profile answer waits until
// the test opens its gate: a capture held in the middle of a round.
// Stand-in for the kubelet: the pod supervisor (test/cluster/pod-supervisor.ts)
// writes the container status and, with restartPolicy Never, the pod's
// terminal phase, the way the kubelet does (Running while another container
// runs). Stand-in for a sidecar: a container kwok reports Running, with no
// process behind it; nothing talks to it, its status is all that matters.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api, type CoreV1Event, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { IncidentStatus } from '../../src/api/types.js';
import { ProbeClient } from '../../src/api/client.js';
import { startOperator, type RunningOperator } from '../../src/cli/operator.js';
import { forgetGoneProbe } from '../../src/controller/reconciler.js';
import { SeriesStore } from '../../src/store/series-store.js';
import { CAPTURE_QUEUE, type CaptureJobData } from '../../src/queue/names.js';
import { deletePod, runPod, stopCluster, type Cluster, type RunningPod } from '../cluster/cluster.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { testOperatorConfig } from '../support/operator-config.js';
import { runPlugin } from '../support/plugin.js';
import { startClusterWithCrd, TestProbes } from '../support/probes.js';
import { bearer, testReaderToken } from '../support/tokens.js';
import { waitFor } from '../support/wait.js';

process.env.LOG_LEVEL ??= 'warn';
const CLUSTER = 'lifecycle';
const NS = 'default';
/** leaky's maps grow by about 8 MiB/s from ~160 MiB: the kernel kills it after 45-60 s, time for the 5 s rounds to see the growth. */
const OOM_LIMIT = 512 * 1024 * 1024;
/**
 * The two-container pods grow at half leaky's rate (about 4 MiB/s): killed after 55-75 s, so their own rounds see
 * the growth even when the set-up (nine pods and the operator at once) is slow; at the full rate they were killed
 * after 30-40 s, and a CI run under load 16 had no capture of sidecar-never before its kill.
 */
const SIDECAR_OOM_LIMIT = 384 * 1024 * 1024;
const SIDECAR_LEAK_ARGS = ['-sessions-per-tick', '750'];
/** Longer than two 5 s intervals: rounds surely list the container terminated, before its restart. */
const SIDECAR_RESTART_DELAY_MS = 12_000;

describe('a probe or pod that goes away in the middle of a round', () => {
  let cluster: Cluster;
  let redis: RedisServer;
  let kc: KubeConfig;
  let core: CoreV1Api;
  let operator: RunningOperator;
  let probes: TestProbes;
  let storeClient: Redis;
  let queue: Queue<CaptureJobData>;
  const pods = new Map<string, RunningPod>();
  /** The OOM-killed pod deleted as soon as the API server shows it Failed (before the operator's next round). */
  let deletedAfterKill: { at: number; pod: V1Pod } | undefined;
  let deleter: NodeJS.Timeout | undefined;
  /**
   * Suspends probe gone once it has captures of every pod: with no round to
   * run, its next round is surely after the deletion, so the incident can
   * only come from what the controller's pod watch noted.
   */
  let suspended: Promise<void> | undefined;

  const gate = async (pod: string, action: string): Promise<string> => (await (await fetch(`http://${pods.get(pod)!.podIp}:6060/gate/${action}`, { method: action === 'waiting' ? 'GET' : 'POST' })).text()).trim();
  const eventsOf = async (uid: string): Promise<CoreV1Event[]> => (await core.listNamespacedEvent({ namespace: NS })).items.filter((e) => e.involvedObject.uid === uid);
  const keysOf = async (name: string): Promise<string[]> => (await storeClient.keys(`mlp:{${NS}/${name}}:*`)).sort();
  const incidentsOf = async (name: string): Promise<IncidentStatus[]> => (await probes.get(name))?.status?.incidents ?? [];

  before(async () => {
    ({ cluster, kc } = await startClusterWithCrd(CLUSTER));
    core = kc.makeApiClient(CoreV1Api);
    probes = new TestProbes(kc, NS);
    redis = await startRedis();
    storeClient = new Redis(redis.url, { maxRetriesPerRequest: null });
    queue = new Queue<CaptureJobData>(CAPTURE_QUEUE, { connection: storeClient });
    const started = await Promise.all([
      // Held captures: the gate starts closed.
      runPod(cluster, { name: 'gated-a', labels: { app: 'gated' }, path: 'test/targets/gated', args: ['-closed'] }),
      runPod(cluster, { name: 'gated-b', labels: { app: 'gated' }, path: 'test/targets/gated', args: ['-closed'] }),
      runPod(cluster, { name: 'plain', labels: { app: 'plain' }, path: 'test/targets/gated' }),
      // restartPolicy Never, as a Job's pod: killed for memory, it stays Failed.
      runPod(cluster, { name: 'oom-never', labels: { app: 'oom-never' }, path: 'test/targets/leaky', restartPolicy: 'Never', memoryLimitBytes: OOM_LIMIT }),
      // The same, deleted by the test the moment it is Failed; and two healthy pods, one evicted, one deleted.
      runPod(cluster, { name: 'oom-deleted', labels: { group: 'gone' }, path: 'test/targets/leaky', restartPolicy: 'Never', memoryLimitBytes: OOM_LIMIT }),
      runPod(cluster, { name: 'evicted', labels: { group: 'gone' }, path: 'test/targets/leaky', args: ['-mode', 'healthy'] }),
      runPod(cluster, { name: 'deleted-plain', labels: { group: 'gone' }, path: 'test/targets/leaky', args: ['-mode', 'healthy'] }),
      // Two-container pods, the sidecar listed first: its Running status keeps the pod Running after the probed container ends.
      runPod(cluster, { name: 'sidecar-never', labels: { group: 'sidecar' }, path: 'test/targets/leaky', args: SIDECAR_LEAK_ARGS, sidecars: ['proxy'], restartPolicy: 'Never', memoryLimitBytes: SIDECAR_OOM_LIMIT }),
      // Restarted after SIDECAR_RESTART_DELAY_MS: rounds see the container terminated (restartCount 0) before the restart.
      runPod(cluster, { name: 'sidecar-restart', labels: { group: 'sidecar' }, path: 'test/targets/leaky', args: SIDECAR_LEAK_ARGS, sidecars: ['proxy'], restartPolicy: 'Always', restartDelayMs: SIDECAR_RESTART_DELAY_MS, memoryLimitBytes: SIDECAR_OOM_LIMIT }),
    ]);
    for (const pod of started) pods.set(pod.name, pod);
    deleter = setInterval(() => {
      if (deletedAfterKill) return;
      void core.readNamespacedPod({ namespace: NS, name: 'oom-deleted' }).then(async (pod) => {
        if (pod.status?.phase !== 'Failed' || deletedAfterKill) return;
        deletedAfterKill = { at: Date.now(), pod };
        await core.deleteNamespacedPod({ namespace: NS, name: 'oom-deleted', gracePeriodSeconds: 0 });
      }).catch(() => undefined);
    }, 100);
    // Held captures may wait longer than the default pprof timeout allows.
    operator = await startOperator(testOperatorConfig(cluster, redis.url, { leaseNamespace: NS, ceilings: { maxRequestTimeoutMs: 120_000 } }));
    await Promise.all([
      probes.create('swap', { selector: { matchLabels: { app: 'gated' } }, schedule: { interval: '5s', window: 12 }, pprof: { timeout: '2m' } }),
      probes.create('batch', { selector: { matchLabels: { app: 'oom-never' } }, schedule: { interval: '5s', window: 12 } }),
      probes.create('gone', { selector: { matchLabels: { group: 'gone' } }, schedule: { interval: '5s', window: 12 } }),
      probes.create('sidecars', { selector: { matchLabels: { group: 'sidecar' } }, container: 'app', schedule: { interval: '5s', window: 12 } }),
    ]);
    suspended = (async () => {
      await waitFor('gone captured each of its pods twice', async () => {
        const targets = (await probes.get('gone'))?.status?.targets ?? [];
        return ['oom-deleted', 'evicted', 'deleted-plain'].every((name) => (targets.find((t) => t.name === name)?.captures ?? 0) >= 2);
      }, 60_000, 250);
      await probes.patchSpec('gone', { suspend: true });
    })();
    suspended.catch(() => undefined);
  });

  after(async () => {
    clearInterval(deleter);
    await operator?.stop();
    await queue?.close();
    storeClient?.disconnect();
    await redis?.stop();
    await stopCluster(CLUSTER);
  });

  test('a probe deleted and re-created under its name while a round of it is held mid-capture: the old round writes nothing into the new probe, sends it no Event, and leaves nothing in Redis', async () => {
    await waitFor('a round of swap held at both gated pods', async () => Number(await gate('gated-a', 'waiting')) > 0 && Number(await gate('gated-b', 'waiting')) > 0, 60_000, 200);
    const old = (await probes.get('swap'))!;
    await probes.delete('swap');
    await waitFor('the old probe finalized', async () => (await probes.get('swap')) === undefined, 30_000, 200);
    assert.deepEqual(await keysOf('swap'), [], 'the controller removed what the old probe kept');

    // With a trigger that the plain pod (no memory limit) is skipped for: said once, in a said-once key of the new probe.
    await probes.create('swap', { selector: { matchLabels: { app: 'plain' } }, schedule: { interval: '5s', window: 12 }, triggers: { memoryLimitFraction: 0.5 } });
    const created = (await probes.get('swap'))!;
    assert.notEqual(created.metadata.uid, old.metadata.uid);
    const first = await waitFor('the new probe\'s first round', async () => {
      const p = await probes.get('swap');
      return (p?.status?.targets?.length ?? 0) > 0 && p;
    }, 30_000, 200);
    assert.deepEqual(first.status?.targets?.map((t) => [t.name, t.captures]), [['plain', 1]], 'the first round sees only its own pod and capture');
    const saidKey = `mlp:{${NS}/swap}:said:trigger-skipped:${created.metadata.uid}:${pods.get('plain')!.uid}`;
    await waitFor('the trigger skip said once for the new probe', async () => (await storeClient.exists(saidKey)) === 1, 30_000, 200);

    // The controller's clean-up of the old probe, run late (a 404 of the old probe read just before the name was taken
    // again, a stale cache): the API server names the new probe as the owner's successor, so nothing of it goes.
    const ownKeys = await keysOf('swap');
    assert.equal(await forgetGoneProbe(`${NS}/swap`, { probes: new ProbeClient(kc), store: new SeriesStore(storeClient) }), 0);
    assert.deepEqual(await keysOf('swap'), ownKeys, 'the new probe\'s series, trigger state and owner key survive the old probe\'s clean-up');

    // The old round goes on: one pod answers its held capture with a profile, the other with an error.
    assert.equal(await gate('gated-a', 'open?answer=profile'), 'open');
    assert.equal(await gate('gated-b', 'open?answer=error'), 'open');
    // Every round of the old probe ends: the held ones find the name taken by the new probe.
    const staleOutcomes = await waitFor('the old probe\'s rounds to end', async () => {
      if (Number(await gate('gated-a', 'waiting')) > 0 || Number(await gate('gated-b', 'waiting')) > 0) return undefined;
      const active = (await queue.getActive()).filter((job) => job.data.uid === old.metadata.uid);
      if (active.length > 0) return undefined;
      return (await queue.getCompleted()).filter((job) => job.data.uid === old.metadata.uid).map((job) => job.returnvalue as string);
    }, 60_000, 200);
    assert.ok(staleOutcomes.includes('probe-replaced'), `a held round ended as replaced: ${staleOutcomes.join(', ')}`);
    // superseded: a round that waited for the namespace's share of the workers until the next was due, and ran nothing.
    assert.ok(staleOutcomes.every((o) => o === 'probe-replaced' || o === 'probe-gone' || o === 'superseded'), staleOutcomes.join(', '));

    const newUid = created.metadata.uid;
    const staleEvents = (await eventsOf(newUid)).filter((e) => /gated/.test(e.message ?? '') || e.reason === 'CaptureFailed');
    assert.deepEqual(staleEvents.map((e) => `${e.reason}: ${e.message}`), [], 'no Event of the old round on the new probe');
    // Everything under the name is the new probe's: its owner key, and only the plain pod's series and captures.
    const keys = await keysOf('swap');
    assert.equal(await storeClient.get(`mlp:{${NS}/swap}:owner`), `${newUid}|${created.metadata.creationTimestamp}`);
    const targets = Object.values(await storeClient.hgetall(`mlp:{${NS}/swap}:targets`)).map((json) => (JSON.parse(json) as { name: string }).name);
    assert.deepEqual(targets, ['plain']);
    const plainUid = pods.get('plain')!.uid;
    const series = keys.filter((k) => k.includes(':t:'));
    assert.ok(series.every((k) => k.includes(`:t:${plainUid}:`)), `only the plain pod's series: ${series.join(', ')}`);
    const plainCaptures = new Set(await storeClient.zrange(`mlp:{${NS}/swap}:t:${plainUid}:series`, '0', '-1'));
    const captureKeys = keys.filter((k) => /:[cp]:/.test(k)).map((k) => k.slice(k.lastIndexOf(':') + 1));
    assert.ok(captureKeys.length > 0 && captureKeys.every((id) => plainCaptures.has(id)), 'every capture kept is one of the new probe\'s series');

    assert.equal(await storeClient.exists(saidKey), 1, 'and the old round\'s own clean-up (forgetOwn) left the said-once key');
    assert.equal((await eventsOf(newUid)).filter((e) => e.reason === 'TriggerSkipped').length, 1, 'said once');

    // The new probe's next round still sees only its own data.
    const before = first.status?.lastCaptureTime;
    const next = await waitFor('the new probe\'s next round', async () => {
      const p = await probes.get('swap');
      return p?.status?.lastCaptureTime !== before && p;
    }, 30_000, 200);
    assert.deepEqual(next.status?.targets?.map((t) => t.name), ['plain']);
    await probes.delete('swap');
  });

  test('restartPolicy Never: a container OOM-killed by the kernel, its pod Failed with no restart, is an incident with its evidence kept', async () => {
    const incident = await waitFor('an OOMKilled incident of the Failed pod', async () => (await incidentsOf('batch')).find((i) => i.reason === 'OOMKilled'), 150_000, 500);
    const pod = await core.readNamespacedPod({ namespace: NS, name: 'oom-never' });
    assert.equal(pod.status?.phase, 'Failed', 'the pod stays Failed: nothing restarts it');
    assert.equal(pod.status?.containerStatuses?.[0]?.restartCount, 0);
    assert.equal(incident.pod, 'oom-never');
    assert.equal(incident.exitCode, 137, 'SIGKILL from the kernel');
    assert.equal(incident.restarted, false, 'ended, not restarted');
    assert.equal(incident.restarts, undefined);
    assert.equal(incident.restartCount, 0);
    assert.equal(incident.verdict, 'Leaking', `${incident.captureIds.length} captures kept: ${JSON.stringify(incident.findings)}`);
    assert.ok(incident.findings.some((f) => f.kind === 'map' && f.growingUpToKill), `a map still growing at the kill: ${JSON.stringify(incident.findings)}`);
    assert.ok(incident.captureIds.length >= 2, `captures kept: ${incident.captureIds.length}`);
    const uid = (await probes.get('batch'))!.metadata.uid;
    const events = (await eventsOf(uid)).filter((e) => e.reason === 'ContainerOOMKilled');
    assert.equal(events.length, 1, 'one Event, not one per round while the pod stays Failed');
    assert.match(events[0]!.message ?? '', /^oom-never container app: OOMKilled \(exit code 137\) at \S+, not restarted; verdict at its last capture: Leaking/);

    // The same surfaces as a restart's incident: the JSON API with downloads, kubectl mapleak incidents.
    const token = await testReaderToken(kc);
    const answer = (await (await fetch(`http://127.0.0.1:${operator.port}/api/v1/namespaces/${NS}/mapleakprobes/batch/incidents`, { headers: bearer(token) })).json()) as { incidents: (IncidentStatus & { captures: { profile: string | null }[] })[] };
    const listed = answer.incidents.find((i) => i.id === incident.id);
    assert.ok(listed?.captures.at(-1)?.profile, 'the last capture before the kill is downloadable');
    const profile = await fetch(`http://127.0.0.1:${operator.port}${listed.captures.at(-1)!.profile}`, { headers: bearer(token) });
    assert.equal(profile.status, 200);
    assert.ok((await profile.arrayBuffer()).byteLength > 0);
    const listing = await runPlugin(['incidents', 'batch', '-n', NS], cluster.kubeconfigPath);
    assert.equal(listing.code, 0, listing.stderr);
    assert.match(listing.stdout, /^1\s+\S+\s+oom-never\s+app\s+OOMKilled\s+137\s+0\s+Leaking\s+\d+/m);

    // Later rounds (each writes the next nextCaptureTime) do not record it again.
    for (let round = 0; round < 2; round++) {
      const next = (await probes.get('batch'))?.status?.nextCaptureTime;
      await waitFor('one more round of batch', async () => (await probes.get('batch'))?.status?.nextCaptureTime !== next, 30_000, 500);
    }
    assert.equal((await incidentsOf('batch')).length, 1);
    assert.equal((await eventsOf(uid)).filter((e) => e.reason === 'ContainerOOMKilled').length, 1);
  });

  test('a pod kept Running by a sidecar: its probed container OOM-killed with restartPolicy Never is one incident, kept once when the pod goes; OOM-killed and restarted, one incident, from the restart, not also from the terminated state seen before it', async () => {
    const never = await waitFor('an incident of sidecar-never', async () => (await incidentsOf('sidecars')).find((i) => i.pod === 'sidecar-never'), 150_000, 500);
    const pod = await core.readNamespacedPod({ namespace: NS, name: 'sidecar-never' });
    assert.equal(pod.status?.phase, 'Running', 'the sidecar keeps the pod Running');
    const statusOf = (name: string) => pod.status?.containerStatuses?.find((c) => c.name === name);
    assert.equal(statusOf('app')?.state?.terminated?.reason, 'OOMKilled');
    assert.ok(statusOf('proxy')?.state?.running, 'the sidecar runs on');
    assert.equal(never.container, 'app', 'the probed container, not the first one');
    assert.equal(never.reason, 'OOMKilled');
    assert.equal(never.exitCode, 137);
    assert.equal(never.restarted, false, 'restartPolicy Never: ended, not restarted');
    assert.equal(never.restartCount, 0);
    assert.equal(never.verdict, 'Leaking', JSON.stringify(never.findings));
    assert.ok(never.captureIds.length >= 2, `captures kept: ${never.captureIds.length}`);

    const restarted = await waitFor('an incident of sidecar-restart', async () => (await incidentsOf('sidecars')).find((i) => i.pod === 'sidecar-restart' && i.restartCount === 1), 150_000, 500);
    assert.equal(restarted.reason, 'OOMKilled');
    assert.equal(restarted.restarts, 1);
    assert.equal(restarted.restarted, undefined, 'a restart');
    const uid = (await probes.get('sidecars'))!.metadata.uid;
    const eventsAbout = async (pod: string) => (await eventsOf(uid)).filter((e) => e.reason === 'ContainerOOMKilled' && (e.message ?? '').startsWith(`${pod} container app:`)).map((e) => e.message ?? '');
    const firstRestart = (await eventsAbout('sidecar-restart')).filter((m) => /, restart 1;/.test(m));
    assert.equal(firstRestart.length, 1, `one Event for the first OOM kill of sidecar-restart: ${firstRestart.join(' | ')}`);
    assert.equal((await incidentsOf('sidecars')).filter((i) => i.pod === 'sidecar-restart' && i.restartCount <= 1).length, 1, 'the terminated state seen before the restart made no incident of its own');

    // Later rounds list the pod Running with the same ended container: nothing new.
    for (let round = 0; round < 2; round++) {
      const next = (await probes.get('sidecars'))?.status?.nextCaptureTime;
      await waitFor('one more round of sidecars', async () => (await probes.get('sidecars'))?.status?.nextCaptureTime !== next, 30_000, 500);
    }
    // The pod goes (the pod watch had noted its container's end): the incident is not recorded again.
    const podUid = pod.metadata!.uid!;
    await deletePod(cluster, NS, 'sidecar-never');
    await waitFor('a round without sidecar-never', async () => !((await probes.get('sidecars'))?.status?.targets ?? []).some((t) => t.name === 'sidecar-never'), 30_000, 500);
    assert.deepEqual((await incidentsOf('sidecars')).filter((i) => i.pod === 'sidecar-never').map((i) => i.id), [never.id], 'one end, one incident');
    assert.equal((await eventsAbout('sidecar-never')).length, 1, 'one Event');
    assert.equal(await storeClient.hexists(`mlp:{${NS}/sidecars}:ended`, podUid), 0, 'the pod watch\'s note of the end was taken');
    await probes.delete('sidecars');
  });

  test('pods that are gone between rounds: OOM-killed then deleted, or evicted, are incidents because the operator saw how they ended; one deleted without an end is not', async () => {
    await suspended;
    const gone = (await probes.get('gone'))!;
    // Suspended: the kill, the test's deletion of the Failed pod, an eviction and a plain deletion all fall before its next round.
    const deleted = await waitFor('the OOM-killed pod deleted as soon as it was Failed', async () => deletedAfterKill, 150_000, 250);
    assert.equal(deleted.pod.status?.containerStatuses?.[0]?.state?.terminated?.reason, 'OOMKilled');
    await deletePod(cluster, NS, 'deleted-plain');
    await core.createNamespacedPodEviction({ namespace: NS, name: 'evicted', body: { metadata: { namespace: NS, name: 'evicted' } } });
    await waitFor('the evicted pod gone', async () => !(await core.listNamespacedPod({ namespace: NS, labelSelector: 'group=gone' })).items.length, 30_000, 250);
    await probes.patchSpec('gone', { suspend: false });

    const killed = await waitFor('an incident of the pod deleted right after its OOM kill', async () => (await incidentsOf('gone')).find((i) => i.pod === 'oom-deleted'), 30_000, 250);
    const evicted = (await incidentsOf('gone')).find((i) => i.pod === 'evicted');
    assert.ok(evicted, 'the evicted pod\'s incident, from the same round');
    assert.equal(evicted.reason, 'EvictionByEvictionAPI', 'the DisruptionTarget condition\'s reason');
    assert.equal(evicted.restarted, false);
    assert.ok(evicted.captureIds.length >= 2);
    assert.equal(killed.reason, 'OOMKilled');
    assert.equal(killed.exitCode, 137);
    assert.equal(killed.restarted, false);
    assert.ok(killed.lastCaptureTime && Date.parse(killed.lastCaptureTime) <= Date.parse(killed.time), 'the evidence is from before the kill');
    assert.ok(Date.parse(killed.detectedTime) >= deleted.at, 'recorded after the pod was gone: from what the operator saw before');
    assert.ok(killed.captureIds.length >= 2);

    const status = (await probes.get('gone'))!.status!;
    assert.deepEqual(status.incidents?.map((i) => i.pod).sort(), ['evicted', 'oom-deleted'], 'the plain deletion is no incident');
    assert.deepEqual(status.targets?.map((t) => t.name) ?? [], [], 'every pod of the probe has gone from its targets');
    const reasons = (await eventsOf(gone.metadata.uid)).map((e) => e.reason);
    assert.equal(reasons.filter((r) => r === 'ContainerOOMKilled').length, 1);
    assert.equal(reasons.filter((r) => r === 'ContainerTerminated').length, 1);
    assert.equal(await storeClient.hlen(`mlp:{${NS}/gone}:ended`), 0, 'the notes were taken by the round that made their incidents');
  });
});

// Incidents on the local control plane with real Go programs.
// Real: the kernel's OOM killer (the program runs in a cgroup v1 memory
// cgroup with memory.limit_in_bytes), the program's own exit code, the
// kube-apiserver, Redis, the operator, `go tool pprof`.
// Stand-in for the kubelet: the pod supervisor (test/cluster/pod-supervisor.ts)
// writes the container status (restartCount, lastState.terminated) the way
// the kubelet does, and restarts the program after 1 s instead of the
// kubelet's 10 s CrashLoopBackOff.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api, type KubeConfig, type V1ContainerStatus } from '@kubernetes/client-node';
import type { IncidentStatus, MapLeakProbe } from '../../src/api/types.js';
import { startOperator, type RunningOperator } from '../../src/cli/operator.js';
import { runPod, stopCluster, type Cluster } from '../cluster/cluster.js';
import { goBinary } from '../cluster/go-build.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { SeriesStore } from '../../src/store/series-store.js';
import { Redis } from 'ioredis';
import { siteLines } from '../support/go-targets.js';
import { testOperatorConfig } from '../support/operator-config.js';
import { condition, startClusterWithCrd, TestProbes } from '../support/probes.js';
import { runPlugin } from '../support/plugin.js';
import { bearer, bindClusterRole, ensureServiceAccount, serviceAccountToken, testReaderToken, tokenKubeconfig } from '../support/tokens.js';
import { waitFor } from '../support/wait.js';

process.env.LOG_LEVEL ??= 'warn';
const CLUSTER = 'incidents';
const NS = 'default';
const MAX_INCIDENTS = 3;
/** Short, so that the last test sees the first incident expire; long enough that the count cap, not the age, drops the crash loop's first incident. */
const RETENTION_MS = 60_000;
/** Longer than the file runs: what prunes the status here is the rounds, never the controller's resync (test/controller covers that path). */
const RESYNC_MS = 3_600_000;
const lines = siteLines('leaky');
const growingMapLines = [lines.get('map-growing-sessions'), lines.get('map-growing-json')];

interface IncidentsAnswer {
  incidents: (IncidentStatus & { captures: { id: string; time: string; profile: string | null }[] })[];
}

describe('incidents: a container OOMKilled by the kernel or exiting with an error becomes an incident with its evidence kept', () => {
  let cluster: Cluster;
  let redis: RedisServer;
  let kc: KubeConfig;
  let operator: RunningOperator;
  let probes: TestProbes;
  let headers: Record<string, string>;
  let base: string;
  let token: string;
  let storeClient: Redis;
  /** Watches every probe's incidents from the start, so none is missed however long a test before takes. */
  let watcher: NodeJS.Timeout | undefined;
  const work = mkdtempSync(join(tmpdir(), 'mlp-incidents-'));
  /** When the test first saw each incident id in the status (polled every 250 ms from the start). */
  const firstSeen = new Map<string, number>();
  const seen = new Map<string, IncidentStatus>();
  let firstOomKill: IncidentStatus | undefined;
  let forgedIncident: IncidentStatus | undefined;

  const incidentsOf = async (name: string): Promise<IncidentStatus[]> => {
    const probe: MapLeakProbe | undefined = await probes.get(name);
    const incidents = probe?.status?.incidents ?? [];
    for (const i of incidents) {
      if (!firstSeen.has(i.id)) firstSeen.set(i.id, Date.now());
      seen.set(i.id, i);
    }
    return incidents;
  };
  const events = async (reason: string): Promise<string[]> => {
    const list = await kc.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: NS });
    return list.items.filter((e) => e.reason === reason).map((e) => e.message ?? '');
  };

  before(async () => {
    ({ cluster, kc } = await startClusterWithCrd(CLUSTER));
    probes = new TestProbes(kc, NS);
    redis = await startRedis();
    storeClient = new Redis(redis.url);
    await Promise.all([
      // leaky's maps grow by about 8 MiB/s from ~160 MiB: the kernel kills it after 30-40 s.
      runPod(cluster, { name: 'oom', labels: { app: 'oom' }, path: 'test/targets/leaky', restartPolicy: 'Always', restartDelayMs: 1000, memoryLimitBytes: 384 * 1024 * 1024 }),
      // Never restarts: the test writes its container status, as a hostile (remote) API server could.
      runPod(cluster, { name: 'forged', labels: { app: 'forged' }, path: 'test/targets/leaky', args: ['-mode', 'healthy'] }),
      // Exits with status 1 every 12 s: a crash loop.
      runPod(cluster, { name: 'crashy', labels: { app: 'crashy' }, path: 'test/targets/leaky', args: ['-mode', 'healthy', '-max-lifetime', '12s', '-exit-code', '1'], restartPolicy: 'Always', restartDelayMs: 1000 }),
    ]);
    operator = await startOperator(testOperatorConfig(cluster, redis.url, { leaseNamespace: NS, ceilings: { maxIncidents: MAX_INCIDENTS, incidentRetentionMs: RETENTION_MS }, resyncMs: RESYNC_MS }));
    base = `http://127.0.0.1:${operator.port}`;
    token = await testReaderToken(kc);
    headers = bearer(token);
    await Promise.all([
      probes.create('oom', { selector: { matchLabels: { app: 'oom' } }, schedule: { interval: '5s', window: 12 } }),
      probes.create('crashy', { selector: { matchLabels: { app: 'crashy' } }, schedule: { interval: '5s', window: 12 } }),
      probes.create('forged', { selector: { matchLabels: { app: 'forged' } }, schedule: { interval: '5s', window: 12 } }),
    ]);
    watcher = setInterval(() => void Promise.all(['oom', 'crashy', 'forged'].map(incidentsOf)).catch(() => undefined), 250);
  });

  after(async () => {
    clearInterval(watcher);
    await operator?.stop();
    storeClient?.disconnect();
    await redis?.stop();
    await stopCluster(CLUSTER);
    rmSync(work, { recursive: true, force: true });
  });

  test('OOMKilled: the incident names the map that grew up to the kill, keeps its captures for go tool pprof, and the restarted container is a new series', async () => {
    const incident = await waitFor('an OOMKilled incident in the status', async () => (await incidentsOf('oom')).find((i) => i.reason === 'OOMKilled'), 180_000, 250);
    firstOomKill = incident;
    const delayMs = (firstSeen.get(incident.id) ?? Date.now()) - Date.parse(incident.time);
    process.stdout.write(`# kill to incident in the status: ${(delayMs / 1000).toFixed(1)} s (restart delay 1 s, interval 5 s)\n`);

    assert.equal(incident.pod, 'oom');
    assert.equal(incident.container, 'app');
    assert.equal(incident.exitCode, 137, 'SIGKILL from the kernel');
    assert.ok(incident.restartCount >= 1);
    assert.equal(incident.verdict, 'Leaking', JSON.stringify(incident.findings));
    const grew = incident.findings.filter((f) => f.kind === 'map' && f.pattern === 'growing' && growingMapLines.includes(f.line));
    assert.ok(grew.length > 0, `a growing map of leaky is named: ${JSON.stringify(incident.findings)}`);
    assert.ok(grew.some((f) => f.growingUpToKill), `still growing at the last capture: ${JSON.stringify(grew)}`);
    assert.ok(incident.captureIds.length >= 2 && incident.captureIds.length <= 3, `captures kept: ${incident.captureIds.length}`);
    assert.ok(incident.lastCaptureTime && Date.parse(incident.lastCaptureTime) <= Date.parse(incident.time), 'evidence is from before the kill');
    assert.ok((await events('ContainerOOMKilled')).some((m) => m.startsWith('oom container app: OOMKilled (exit code 137)')));

    // The JSON API lists it with a download per kept capture; the profile is what go tool pprof reads.
    const answer = (await (await fetch(`${base}/api/v1/namespaces/${NS}/mapleakprobes/oom/incidents`, { headers })).json()) as IncidentsAnswer;
    const listed = answer.incidents.find((i) => i.id === incident.id);
    assert.ok(listed, 'the API lists the incident of the status');
    assert.deepEqual(listed.captures.map((c) => c.id), incident.captureIds);
    const last = listed.captures.at(-1)!;
    assert.ok(last.profile, 'the last capture before the kill is still downloadable');
    const response = await fetch(`${base}${last.profile}`, { headers });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/octet-stream', 'as net/http/pprof serves it');
    const served = Buffer.from(await response.arrayBuffer());
    const pinned = await new SeriesStore(storeClient).profile(`${NS}/oom`, last.id);
    assert.ok(pinned && served.equals(pinned), 'the raw profile as captured, byte for byte');
    const file = join(work, 'before-kill.pb.gz');
    writeFileSync(file, served);
    const { stdout } = await promisify(execFile)(goBinary('1.26'), ['tool', 'pprof', '-top', '-sample_index=inuse_space', file], { maxBuffer: 16 * 1024 * 1024 });
    assert.match(stdout, /main\.\(\*sessionStore\)\.put|main\.\(\*catalog\)\.ingest/, 'go tool pprof shows the growing sites');

    // The same through kubectl mapleak, as the README shows it.
    const kubeconfig = tokenKubeconfig(cluster, kc, 'reader', token, join(work, 'reader.kubeconfig'));
    const listing = await runPlugin(['incidents', 'oom', '-n', NS], kubeconfig);
    assert.equal(listing.code, 0, listing.stderr);
    assert.match(listing.stdout, /^1\s+\S+\s+oom\s+app\s+OOMKilled\s+137\s+\d+\s+Leaking\s+[23]\s+map\/growing/m);
    const described = await runPlugin(['describe', 'oom', '-n', NS], kubeconfig);
    assert.match(described.stdout, /^Incidents: [1-9]\d*, newest OOMKilled of oom\/app \d+[sm] ago \(kubectl mapleak incidents oom\)$/m);
    const downloaded = join(work, 'incident-1.pb.gz');
    const download = await runPlugin(['profile', 'oom', '-n', NS, '--url', base, '--incident', '1', '-o', downloaded], kubeconfig);
    assert.equal(download.code, 0, download.stderr);
    const top = await promisify(execFile)(goBinary('1.26'), ['tool', 'pprof', '-top', '-sample_index=inuse_space', downloaded], { maxBuffer: 16 * 1024 * 1024 });
    assert.match(top.stdout, /main\.\(\*sessionStore\)\.put|main\.\(\*catalog\)\.ingest/);
    assert.equal((await fetch(`${base}/api/v1/namespaces/${NS}/mapleakprobes/oom/incidents`)).status, 401, 'behind the authentication');
    await ensureServiceAccount(kc, NS, 'no-grants');
    const stranger = bearer(await serviceAccountToken(kc, NS, 'no-grants'));
    assert.equal((await fetch(`${base}/api/v1/namespaces/${NS}/mapleakprobes/oom/incidents`, { headers: stranger })).status, 403, 'and the authorisation (get on mapleakprobes)');
    // Everything in namespace other, nothing here: another namespace's incidents and their profiles stay closed.
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: 'other' } } });
    await ensureServiceAccount(kc, 'other', 'tenant');
    await bindClusterRole(kc, 'cluster-admin', { namespace: 'other', name: 'tenant' }, 'other');
    const tenant = bearer(await serviceAccountToken(kc, 'other', 'tenant'));
    assert.equal((await fetch(`${base}/api/v1/namespaces/other/mapleakprobes/oom/incidents`, { headers: tenant })).status, 404, 'in its own namespace the tenant passes (and finds no such probe)');
    assert.equal((await fetch(`${base}/api/v1/namespaces/${NS}/mapleakprobes/oom/incidents`, { headers: tenant })).status, 403);
    assert.equal((await fetch(`${base}${last.profile}`, { headers: tenant })).status, 403, 'nor an incident profile of another namespace');
    assert.equal((await fetch(`${base}/api/v1/namespaces/other/mapleakprobes/oom/captures/${last.id}/profile`, { headers: tenant })).status, 404, 'a capture id is only found under its own probe');
    assert.match(await (await fetch(`${base}/metrics`, { headers })).text(), /^mapleak_incidents_total\{kind="oom"\} [1-9]/m);

    // The restarted container is followed as a series of its own: its captures are all after the kill.
    const view = await waitFor('captures of the restarted container', async () => {
      const v = (await (await fetch(`${base}/api/v1/namespaces/${NS}/mapleakprobes/oom`, { headers })).json()) as { targets: { series?: string; restartCount?: number; captures: { id: string; time: string }[] }[] };
      const target = v.targets.find((t) => (t.restartCount ?? 0) >= incident.restartCount);
      return target && target.captures.length >= 1 && target;
    }, 60_000, 500);
    assert.match(view.series ?? '', /\.r\d+$/, 'a series key per restart');
    assert.ok(view.captures.every((c) => Date.parse(c.time) > Date.parse(incident.time)), 'no capture of the killed container in the new series');
    assert.ok(view.captures.every((c) => !incident.captureIds.includes(c.id)));
  });

  test('a plain exit with status 1 is ContainerRestarted; the incident count stays at the cap and dropped incidents free their captures', async () => {
    const incidents = await waitFor(`more incidents than the cap of ${MAX_INCIDENTS}`, async () => {
      const list = await incidentsOf('crashy');
      return list.some((i) => i.restartCount > MAX_INCIDENTS) && list;
    }, 150_000, 250);
    assert.equal(incidents.length, MAX_INCIDENTS, 'the status holds the newest incidents up to the cap');
    for (const i of incidents) {
      assert.equal(i.reason, 'Error');
      assert.equal(i.exitCode, 1);
    }
    assert.ok(Date.parse(incidents[0]!.time) > Date.parse(incidents[1]!.time), 'newest first');
    for (let k = 0; k + 1 < incidents.length; k++) {
      assert.equal(incidents[k]!.restartCount - incidents[k + 1]!.restartCount, incidents[k]!.restarts, 'each incident counts the restarts since the one before: none is lost between rounds');
    }
    assert.ok((await events('ContainerRestarted')).some((m) => m.startsWith('crashy container app: Error (exit code 1)')));
    assert.ok((await events('ContainerOOMKilled')).every((m) => !m.startsWith('crashy')));
    // The first incident (restart 1) was dropped for the cap, with its pinned profiles.
    const answer = (await (await fetch(`${base}/api/v1/namespaces/${NS}/mapleakprobes/crashy/incidents`, { headers })).json()) as IncidentsAnswer;
    assert.deepEqual(answer.incidents.map((i) => i.id), incidents.map((i) => i.id));
    const dropped = [...seen.values()].find((i) => i.pod === 'crashy' && i.restartCount === 1);
    assert.ok(dropped, 'the first restart was an incident before the cap dropped it');
    assert.ok(dropped.captureIds.length > 0, 'it had captures pinned');
    for (const id of dropped.captureIds) {
      assert.equal((await fetch(`${base}/api/v1/namespaces/${NS}/mapleakprobes/crashy/captures/${id}/profile`, { headers })).status, 404, 'its pinned profiles went with it');
    }
  });

  test('a forged container status: three restarts at once, an odd reason, a future finishedAt, a secret message and containerID churn', async () => {
    const core = kc.makeApiClient(CoreV1Api);
    const forge = async (change: (status: V1ContainerStatus) => void): Promise<void> => {
      const pod = await core.readNamespacedPodStatus({ name: 'forged', namespace: NS });
      change(pod.status!.containerStatuses![0]!);
      await core.replaceNamespacedPodStatus({ name: 'forged', namespace: NS, body: pod });
    };
    /** Resolves after `rounds` more rounds have written the probe's status. */
    const rounds = async (count: number): Promise<void> => {
      const seenTimes = new Set<string>();
      await waitFor(`${count} rounds of forged`, async () => {
        const next = (await probes.get('forged'))?.status?.nextCaptureTime;
        if (next) seenTimes.add(next);
        return seenTimes.size > count || undefined;
      }, 60_000, 250);
    };
    await waitFor('a capture of forged', async () => (await probes.get('forged'))?.status?.lastCaptureTime, 60_000, 250);
    await forge((status) => {
      status.restartCount = 3;
      status.containerID = `containerd://${'f'.repeat(64)}`;
      status.lastState = { terminated: { reason: 'OOMKilled\n<b>SIGKILL</b>\u202e', exitCode: 137, message: 'SECRET=hunter2', finishedAt: new Date('2999-01-01T00:00:00Z') } };
    });
    const [incident] = await waitFor('the forged restart as an incident', async () => {
      const list = await incidentsOf('forged');
      return list.length > 0 && list;
    }, 30_000, 250);
    assert.equal(incident!.reason, 'Unknown', 'a reason that is not one kubelet word is not repeated');
    assert.equal(incident!.exitCode, 137);
    assert.equal(incident!.restarts, 3, 'three restarts between two rounds');
    assert.equal(incident!.restartCount, 3);
    assert.equal(incident!.time, incident!.detectedTime, 'a finishedAt in the future is not believed');
    assert.ok(incident!.captureIds.length >= 1, 'the captures before it are its evidence');
    const forgedEvents = (await events('ContainerRestarted')).filter((m) => m.startsWith('forged '));
    assert.equal(forgedEvents.length, 1);
    assert.match(forgedEvents[0]!, /^forged container app: Unknown \(exit code 137\) at \S+, restart 3 \(3 restarts since the last round\); /);
    const everything = JSON.stringify([await probes.get('forged'), forgedEvents]);
    for (const leaked of ['hunter2', '<b>', '\u202e', '2999-01-01']) assert.ok(!everything.includes(leaked), `${leaked} reached the status or an Event`);

    // A new containerID every round, restartCount unchanged: the kubelet counts restarts, ids alone are none.
    for (let n = 0; n < 2; n++) {
      await forge((status) => {
        status.containerID = `containerd://${String(n).repeat(64)}`;
      });
      await rounds(1);
    }
    assert.deepEqual((await incidentsOf('forged')).map((i) => i.id), [incident!.id]);
    forgedIncident = incident;
    // From here on every round of forged ends early: spec.cluster is not allowed by this operator.
    await probes.patchSpec('forged', { cluster: { kubeconfigSecretRef: { name: 'none', key: 'kubeconfig' }, namespace: NS } });
  });

  test('after the incident retention the incident leaves the status and its pinned profiles are gone, while newer incidents stay', async () => {
    const incident = firstOomKill;
    assert.ok(incident, 'the OOM test recorded an incident');
    await waitFor('the first OOM incident to expire', async () => !(await incidentsOf('oom')).some((i) => i.id === incident.id), RETENTION_MS + 60_000, 500);
    const lateMs = Date.now() - (Date.parse(incident.time) + RETENTION_MS);
    process.stdout.write(`# incident left the status ${(lateMs / 1000).toFixed(1)} s after its retention ended\n`);
    assert.ok(lateMs >= 0, 'not before the retention');
    for (const id of incident.captureIds) {
      assert.equal((await fetch(`${base}/api/v1/namespaces/${NS}/mapleakprobes/oom/captures/${id}/profile`, { headers })).status, 404, 'its pinned profile expired with it');
    }
    const answer = (await (await fetch(`${base}/api/v1/namespaces/${NS}/mapleakprobes/oom/incidents`, { headers })).json()) as IncidentsAnswer;
    assert.ok(answer.incidents.every((i) => i.id !== incident.id && Date.parse(i.time) > Date.parse(incident.time)));
  });

  test('rounds that end early (a target cluster that is not allowed) still let an incident past the retention leave the status', async () => {
    const incident = forgedIncident;
    assert.ok(incident, 'the forged test recorded an incident');
    await waitFor('forged rounds ending early', async () => condition(await probes.get('forged'), 'Degraded')?.reason === 'RemoteClusterNotAllowed' || undefined, 30_000, 250);
    const lastCapture = (await probes.get('forged'))?.status?.lastCaptureTime;
    await waitFor('the forged incident to expire', async () => !(await incidentsOf('forged')).some((i) => i.id === incident.id), RETENTION_MS + 30_000, 500);
    assert.ok(Date.now() >= Date.parse(incident.time) + RETENTION_MS, 'not before the retention');
    const probe = await probes.get('forged');
    assert.equal(condition(probe, 'Degraded')?.reason, 'RemoteClusterNotAllowed', 'no round got through in the meantime');
    assert.equal(probe?.status?.lastCaptureTime, lastCapture);
  });
});

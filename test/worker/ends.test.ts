// Which container ends are incidents, read from pod objects as the API
// server (possibly a hostile remote one) writes them. Pure: pod objects in,
// values out; the operator test (test/operator/lifecycle.test.ts) runs the
// same on the local control plane.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { asContainerEnd, endIsIncident } from '../../src/analysis/incident.js';
import { checkContainerStatus, podDisruption } from '../../src/clusters/pods.js';
import { slimPod } from '../../src/controller/controller.js';
import type { RawObject } from '../../src/controller/supervised-informer.js';
import { endedInstance, endOfFailedPod, incidentEvent, incidentEvents, incidentKind } from '../../src/worker/incidents.js';
import type { IncidentStatus } from '../../src/api/types.js';

const terminated = (reason: string, exitCode?: number) => ({ reason, ...(exitCode !== undefined ? { exitCode } : {}), finishedAt: '2026-12-01T10:00:00Z' });
const end = (termination?: ReturnType<typeof terminated>, disruption?: string) => ({ podUid: 'u1', container: 'app', restartCount: 0, ...(termination ? { termination } : {}), ...(disruption ? { disruption } : {}) });

describe('container ends without a restart', () => {
  test('an OOM kill, a non-zero exit and an eviction are incidents; a completion, or an end that says nothing, is not', () => {
    assert.equal(endIsIncident(end(terminated('OOMKilled', 137))), true);
    assert.equal(endIsIncident(end(terminated('OOMKilled'))), true, 'OOMKilled even without an exit code');
    assert.equal(endIsIncident(end(terminated('Error', 2))), true);
    assert.equal(endIsIncident(end(terminated('Completed', 0))), false);
    assert.equal(endIsIncident(end(terminated('Completed'))), false);
    assert.equal(endIsIncident(end(undefined, 'Evicted')), true);
    assert.equal(endIsIncident(end(terminated('Completed', 0), 'EvictionByEvictionAPI')), true, 'evicted, whatever its exit');
    assert.equal(endIsIncident(end()), false, 'nothing is guessed');
  });

  test('the incident says OOMKilled when the kernel killed it, else the eviction\'s reason, else the termination\'s', () => {
    assert.equal(endedInstance(end(terminated('OOMKilled', 137), 'Evicted')).lastTerminated?.reason, 'OOMKilled');
    assert.equal(endedInstance(end(terminated('Error', 137), 'Evicted')).lastTerminated?.reason, 'Evicted');
    assert.deepEqual(endedInstance(end(terminated('Error', 1))).lastTerminated, { reason: 'Error', exitCode: 1, finishedAt: '2026-12-01T10:00:00Z' });
    assert.deepEqual(endOfFailedPod({ uid: 'u1', disruption: 'Evicted' }, 'app', { restartCount: 2, terminated: terminated('Error', 137) }), { podUid: 'u1', container: 'app', restartCount: 2, termination: terminated('Error', 137), disruption: 'Evicted' });
  });

  test('a pod status is read field by field: state.terminated as lastState is, the eviction only from the kubelet\'s reason or a DisruptionTarget condition', () => {
    const status = checkContainerStatus({ name: 'app', restartCount: 0, state: { terminated: { reason: 'OOM<b>Killed', exitCode: 2 ** 40, finishedAt: 'yesterday', message: 'secret' } } });
    assert.deepEqual(status?.terminated, { reason: 'Unknown' }, 'an odd reason, an exit code beyond int32 and a bad time are dropped; the message is never read');
    assert.equal(podDisruption({ reason: 'Evicted', message: 'The node was low on resource: memory.' }), 'Evicted');
    assert.equal(podDisruption({ conditions: [{ type: 'DisruptionTarget', status: 'True', reason: 'PreemptionByScheduler' }] }), 'PreemptionByScheduler');
    assert.equal(podDisruption({ conditions: [{ type: 'DisruptionTarget', status: 'True', reason: 'x y <script>' }] }), 'DisruptionTarget');
    assert.equal(podDisruption({ conditions: [{ type: 'DisruptionTarget', status: 'False', reason: 'PreemptionByScheduler' }] }), undefined);
    assert.equal(podDisruption({ reason: 'NodeLost' }), undefined);
  });

  test('the controller keeps a pod\'s end only when it ended on its own: a deletion\'s SIGTERM exit is no end, an eviction is', () => {
    const pod = (deleting: boolean, conditions: unknown[] = []): RawObject => ({
      metadata: { uid: 'u1', labels: { app: 'x' }, ...(deleting ? { deletionTimestamp: '2026-12-01T10:00:00Z' } : {}) },
      spec: { containers: [{ name: 'app' }] },
      status: { phase: 'Running', conditions, containerStatuses: [{ name: 'app', restartCount: 0, state: { terminated: terminated('Error', 143) } }] },
    }) as unknown as RawObject;
    assert.deepEqual(slimPod(pod(false)).end, { podUid: 'u1', firstContainer: 'app', containers: [{ name: 'app', restartCount: 0, termination: { reason: 'Error', exitCode: 143, finishedAt: '2026-12-01T10:00:00.000Z' } }] });
    assert.equal(slimPod(pod(true)).end, undefined, 'a rollout or scale-down is no incident');
    assert.equal(slimPod(pod(true, [{ type: 'DisruptionTarget', status: 'True', reason: 'EvictionByEvictionAPI' }])).end?.disruption, 'EvictionByEvictionAPI');
    const running = { metadata: { uid: 'u2' }, status: { phase: 'Running', containerStatuses: [{ name: 'app', restartCount: 1, state: { running: {} } }] } } as unknown as RawObject;
    assert.equal(slimPod(running).end, undefined, 'a running pod has no end');
    const completed = { metadata: { uid: 'u3' }, status: { phase: 'Succeeded', containerStatuses: [{ name: 'app', restartCount: 0, state: { terminated: terminated('Completed', 0) } }] } } as unknown as RawObject;
    assert.equal(slimPod(completed).end, undefined, 'a completed Job pod is kept as labels and state only');
  });

  test('a note read back from the store is checked before it is believed', () => {
    assert.deepEqual(asContainerEnd({ podUid: 'u1', container: 'app', restartCount: 0, termination: { reason: 'OOMKilled', exitCode: 137 } }), { podUid: 'u1', container: 'app', restartCount: 0, termination: { reason: 'OOMKilled', exitCode: 137 } });
    assert.equal(asContainerEnd({ podUid: 'u1', container: 'app' }), undefined);
    assert.equal(asContainerEnd('OOMKilled'), undefined);
  });

  test('Events and metrics name an end without restart as such', () => {
    const incident: IncidentStatus = { id: 'i1', pod: 'batch-x', namespace: 'jobs', container: 'app', reason: 'OOMKilled', exitCode: 137, time: '2026-12-01T10:00:00.000Z', detectedTime: '2026-12-01T10:00:02.000Z', restartCount: 0, restarted: false, verdict: 'Leaking', captureIds: ['a', 'b'], findings: [] };
    assert.deepEqual(incidentEvent(incident), { reason: 'ContainerOOMKilled', message: 'batch-x container app: OOMKilled (exit code 137) at 2026-12-01T10:00:00.000Z, not restarted; verdict at its last capture: Leaking; 2 captures kept (status.incidents, id i1)' });
    assert.equal(incidentKind(incident), 'oom');
    const evicted = { ...incident, reason: 'Evicted', exitCode: undefined };
    assert.equal(incidentEvent(evicted).reason, 'ContainerTerminated');
    assert.equal(incidentKind(evicted), 'terminated');
    assert.equal(incidentKind({ reason: 'Error' }), 'restart');
    const summary = incidentEvents([evicted, evicted, evicted], 2).at(-1)!;
    assert.equal(summary.reason, 'ContainerTerminated');
    assert.match(summary.message, /^2 more containers ended \(0 OOMKilled\)/);
  });
});

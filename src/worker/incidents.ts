import { createHash } from 'node:crypto';
import { endIsIncident, incidentFindings, seriesMemProfileRate, type ContainerEnd } from '../analysis/incident.js';
import { analyzeSeries, type SeriesAnalysis, type Thresholds } from '../analysis/series.js';
import type { IncidentStatus, MapLeakProbe } from '../api/types.js';
import type { ContainerTermination, ListedContainerStatus, ListedPod, RestartPolicy } from '../clusters/pods.js';
import { buildCaptureStatus } from '../status/build.js';
import { ProfileError } from '../pprof/errors.js';
import { parseStoredSnapshot, storedMemProfileRate, type ProbeRef, type SeriesStore, type StoredIncident, type TargetRecord } from '../store/series-store.js';

/**
 * Captures pinned per incident: the last one before the container ended
 * (the heap as it was killed) and the two before it, so `go tool pprof
 * -base` shows what grew on the way there.
 */
export const PINNED_CAPTURES = 3;

/** The container instance a round sees: which restart it is, and how the one before ended. */
export interface ContainerInstance {
  restartCount: number;
  lastTerminated?: ListedContainerStatus['lastTerminated'];
  /** The instance itself has ended (`state.terminated`) and was not restarted (yet). */
  terminated?: ListedContainerStatus['terminated'];
}

/** The end of a Failed pod's container, as the round's list of Failed pods shows it. */
export function endOfFailedPod(pod: Pick<ListedPod, 'uid' | 'disruption'>, container: string, instance: ContainerInstance): ContainerEnd {
  return { podUid: pod.uid, container, restartCount: instance.restartCount, ...(instance.terminated ? { termination: instance.terminated } : {}), ...(pod.disruption ? { disruption: pod.disruption } : {}) };
}

/** The end as the instance an incident is recorded from: the kernel's OOMKilled wins over the eviction that may follow it; else the eviction's reason. */
export function endedInstance(end: ContainerEnd): ContainerInstance {
  const t = end.termination;
  const reason = t?.reason === 'OOMKilled' ? 'OOMKilled' : (end.disruption ?? t?.reason ?? 'Unknown');
  return { restartCount: end.restartCount, lastTerminated: { reason, ...(t?.exitCode !== undefined ? { exitCode: t.exitCode } : {}), ...(t?.finishedAt ? { finishedAt: t.finishedAt } : {}) } };
}

/**
 * Whether the kubelet starts a container again after this end (its pod's
 * restartPolicy): Always does; OnFailure does unless it exited 0; Never does not.
 */
export function restartFollows(policy: RestartPolicy, termination: Pick<ContainerTermination, 'exitCode' | 'reason'>): boolean {
  if (policy === 'Always') return true;
  if (policy === 'Never') return false;
  return termination.reason === 'OOMKilled' || termination.exitCode !== 0;
}

/**
 * The end of a followed container seen in a pod that is still listed
 * Running (a sidecar keeps the pod alive): the instance its series follows
 * has terminated and the pod's restartPolicy will not start it again.
 * Undefined when it will restart (the restart makes the incident, from the
 * same series), when this end was recorded already, or when it is no
 * incident (Completed).
 */
export function endInRunningPod(
  pod: { uid: string; container: string; instance: ContainerInstance; restartPolicy: RestartPolicy },
  previous: TargetRecord | undefined,
): ContainerEnd | undefined {
  const termination = pod.instance.terminated;
  if (!previous || !termination || previous.endRecorded || (previous.restartCount ?? 0) !== pod.instance.restartCount) return undefined;
  if (restartFollows(pod.restartPolicy, termination)) return undefined;
  const end: ContainerEnd = { podUid: pod.uid, container: pod.container, restartCount: pod.instance.restartCount, termination };
  return endIsIncident(end) ? end : undefined;
}

/**
 * An incident's id: the container and the series that ended. One end is
 * one incident whichever way a round saw it (a restart, the terminated
 * state in a pod still Running, a Failed pod, a note of the pod watch), so
 * a second sighting records, counts and says nothing.
 */
export function incidentId(container: string, series: string): string {
  return createHash('sha256').update(`${container}|${series}`).digest('hex').slice(0, 16);
}

/**
 * The store key of one container instance's series: the pod's uid for the
 * first instance, then one series per restart, so a restarted container
 * starts a series of its own and never continues the one that ended.
 */
export function seriesKeyOf(podUid: string, restartCount: number): string {
  return restartCount > 0 ? `${podUid}.r${restartCount}` : podUid;
}

/** The instance of the probe's container in a listed pod (restart 0 when the pod status says nothing). */
export function containerInstance(statuses: readonly ListedContainerStatus[], container: string): ContainerInstance {
  const status = statuses.find((s) => s.name === container);
  if (!status) return { restartCount: 0 };
  return { restartCount: status.restartCount, ...(status.lastTerminated ? { lastTerminated: status.lastTerminated } : {}), ...(status.terminated ? { terminated: status.terminated } : {}) };
}

/** Per pod, the record of its newest followed series (records from before series per restart have neither series nor restartCount: restart 0). */
export function latestSeriesByPod(records: readonly TargetRecord[]): Map<string, TargetRecord> {
  const byPod = new Map<string, TargetRecord>();
  for (const record of records) {
    const seen = byPod.get(record.uid);
    if (!seen || (record.restartCount ?? 0) > (seen.restartCount ?? 0)) byPod.set(record.uid, record);
  }
  return byPod;
}

/** The record a pod's last followed series left, if the container has restarted since. */
export function restartedSince(previous: TargetRecord | undefined, instance: ContainerInstance): TargetRecord | undefined {
  return previous && instance.restartCount > (previous.restartCount ?? 0) ? previous : undefined;
}

/** How many restarts one incident stands for: all since the series it ends started (several can fall between two rounds). */
export function restartsSince(previous: TargetRecord, instance: ContainerInstance): number {
  return Math.max(1, instance.restartCount - (previous.restartCount ?? 0));
}

/**
 * The end time an incident is filed under: the kubelet's finishedAt when it
 * can be true, else the time the restart was seen. It cannot be after the
 * restart was seen (a future time would pin the evidence past the
 * retention), nor before the series it ends began (a far-past time would
 * drop the incident, and its evidence, the moment it is recorded).
 */
export function plausibleEnd(finishedAt: string | undefined, seriesStart: Date | undefined, detectedAt: Date): string | undefined {
  if (finishedAt === undefined) return undefined;
  const at = Date.parse(finishedAt);
  if (at > detectedAt.getTime() || (seriesStart !== undefined && at < seriesStart.getTime())) return undefined;
  return finishedAt;
}

/**
 * The Events for a round's new incidents: one each up to `max`, then one
 * that sums up the rest, so a crash loop across many pods cannot flood
 * the namespace's Events.
 */
export function incidentEvents(incidents: readonly IncidentStatus[], max: number): { reason: string; message: string }[] {
  if (incidents.length <= max) return incidents.map(incidentEvent);
  const shown = incidents.slice(0, Math.max(0, max - 1));
  const rest = incidents.slice(shown.length);
  const oom = rest.filter(isOomKill).length;
  return [
    ...shown.map(incidentEvent),
    {
      reason: oom > 0 ? 'ContainerOOMKilled' : rest.every(endedForGood) ? 'ContainerTerminated' : 'ContainerRestarted',
      message: `${rest.length} more containers ${rest.every(endedForGood) ? 'ended' : 'restarted'} (${oom} OOMKilled) since the last round; see status.incidents (Events per round are capped at ${max})`,
    },
  ];
}

export function isOomKill(incident: Pick<IncidentStatus, 'reason'>): boolean {
  return incident.reason === 'OOMKilled';
}

/** An incident of a container that ended and was not restarted. */
export function endedForGood(incident: Pick<IncidentStatus, 'restarted'>): boolean {
  return incident.restarted === false;
}

/** The kind label of mapleak_incidents_total. */
export function incidentKind(incident: Pick<IncidentStatus, 'reason' | 'restarted'>): 'oom' | 'restart' | 'terminated' {
  return isOomKill(incident) ? 'oom' : endedForGood(incident) ? 'terminated' : 'restart';
}

/**
 * Builds and keeps the incident for a container that ended since the last
 * round: the verdict and top findings of its own series (the analysis of
 * the captures it left), and its last captures pinned until the incident
 * is older than the retention. Undefined when the round's probe no longer
 * owns its keys (deleted or replaced meanwhile): nothing was kept; or when
 * the same end was recorded before (another round, another way of seeing
 * it): it is not new.
 */
export async function recordIncident(
  store: SeriesStore,
  probe: MapLeakProbe,
  key: ProbeRef,
  pod: { name: string; namespace: string; uid: string; container: string },
  instance: ContainerInstance,
  previous: TargetRecord,
  /**
   * endedForGood: the instance ended and was not restarted (endedInstance): restarted false, an id of its own.
   * analyze: the engine on stored captures, where the round runs it (the decode gate's thread); a refusal leaves the verdict Unknown.
   */
  options: { detectedAt: Date; retentionMs: number; endedForGood?: boolean; analyze?: (series: readonly Buffer[], thresholds: Thresholds) => Promise<SeriesAnalysis> },
): Promise<StoredIncident | undefined> {
  const oldSeries = previous.series ?? previous.uid;
  const all = await store.loadTimedSeriesJson(key, oldSeries);
  const ended = plausibleEnd(instance.lastTerminated?.finishedAt, all[0]?.time, options.detectedAt);
  // A capture taken after the end (a restart between a round's pod list and its capture) is the next instance's.
  const refs = (await store.captures(key, oldSeries)).filter((r) => !ended || Date.parse(r.time) <= Date.parse(ended));
  const series = all.filter((s) => !ended || s.time.getTime() <= Date.parse(ended)).map((s) => s.json);
  const analyze = options.analyze ?? ((json: readonly Buffer[], thresholds: Thresholds) => Promise.resolve(analyzeSeries(json.map(parseStoredSnapshot), thresholds)));
  const analysis = series.length > 0 ? await analyze(series, { ...probe.spec.thresholds }).catch((err: unknown) => {
    if (err instanceof ProfileError) return undefined;
    throw err;
  }) : undefined;
  const summary = buildCaptureStatus([{ pod, captures: series.length, ...(analysis ? { analysis } : {}) }], new Map());
  const pinned = refs.slice(-PINNED_CAPTURES);
  const time = ended ?? options.detectedAt.toISOString();
  const incident: StoredIncident = {
    id: incidentId(pod.container, oldSeries),
    pod: pod.name,
    namespace: pod.namespace,
    podUid: pod.uid,
    container: pod.container,
    reason: instance.lastTerminated?.reason ?? 'Unknown',
    ...(instance.lastTerminated?.exitCode !== undefined ? { exitCode: instance.lastTerminated.exitCode } : {}),
    time,
    detectedTime: options.detectedAt.toISOString(),
    restartCount: instance.restartCount,
    ...(options.endedForGood ? { restarted: false as const } : { restarts: restartsSince(previous, instance) }),
    verdict: summary.verdict ?? 'Unknown',
    ...(refs.length > 0 ? { lastCaptureTime: refs[refs.length - 1]!.time } : {}),
    captureIds: pinned.map((r) => r.id),
    captures: pinned,
    findings: analysis ? incidentFindings(analysis.findings, seriesMemProfileRate(series.map((json) => ({ memProfileRate: storedMemProfileRate(json) })))) : [],
  };
  // Undefined when the round's probe no longer owns its keys (fenced out), or this end was recorded before.
  return (await store.recordIncident(key, incident, new Date(Date.parse(time) + options.retentionMs))) === 'recorded' ? incident : undefined;
}

/** What the status shows of a kept incident (no pod uid, no capture times). */
export function incidentStatus(incident: StoredIncident): IncidentStatus {
  const status: IncidentStatus & Partial<Pick<StoredIncident, 'podUid' | 'captures'>> = { ...incident };
  delete status.podUid;
  delete status.captures;
  return status;
}

/** The Event for an incident: operator-written words, analysis names only (never the pod's termination message). */
export function incidentEvent(incident: IncidentStatus): { reason: string; message: string } {
  const how = `${incident.reason}${incident.exitCode !== undefined ? ` (exit code ${incident.exitCode})` : ''}`;
  const top = incident.findings.find((f) => f.kind === 'map') ?? incident.findings[0];
  const site = top ? `; top finding: ${top.function} (${top.file.split('/').pop()}:${top.line}) ${top.growingUpToKill ? 'growing up to the end' : top.pattern}` : '';
  const which = endedForGood(incident) ? 'not restarted' : `restart ${incident.restartCount}${(incident.restarts ?? 1) > 1 ? ` (${incident.restarts} restarts since the last round)` : ''}`;
  return {
    reason: isOomKill(incident) ? 'ContainerOOMKilled' : endedForGood(incident) ? 'ContainerTerminated' : 'ContainerRestarted',
    message: `${incident.pod} container ${incident.container}: ${how} at ${incident.time}, ${which}; verdict at its last capture: ${incident.verdict}${site}; ${incident.captureIds.length} captures kept (status.incidents, id ${incident.id})`,
  };
}

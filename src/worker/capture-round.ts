import { createHash } from 'node:crypto';
import { attributeProfile } from '../analysis/attribute.js';
import { parseGcTrace, summarizeGcTrace, type GcCycle } from '../analysis/gctrace.js';
import { analyzeSeries, type SeriesAnalysis, type Thresholds } from '../analysis/series.js';
import type { ProbeClient } from '../api/client.js';
import { captureDeadline, DEFAULT_CEILINGS, effectiveSettings, keptCaptures, storeLimits, summaryCaps, type Ceilings, type EffectiveSettings } from '../api/ceilings.js';
import { selectorToString, type MapLeakProbe, type MapLeakProbeStatus } from '../api/types.js';
import { captureHeap, operatorCaptureOptions, type HeapCapture, type PprofClient } from '../capture/capture.js';
import type { ByteBudget } from '../capture/budget.js';
import { CaptureError } from '../capture/errors.js';
import { apiServerProxyClient, podDirectClient } from '../capture/proxy.js';
import type { BinaryKnowledgeCache } from '../capture/binary-knowledge.js';
import { lastLogTimestamp } from '../clusters/log-timestamp.js';
import { describePodListFailure } from '../clusters/pod-list-failure.js';
import { listRunningPods, type ListedPod, type RestartPolicy } from '../clusters/pods.js';
import { ClusterConfigError, type ClusterRegistry, type TargetCluster } from '../clusters/registry.js';
import type { Logger } from '../observability/log.js';
import type { OperatorMetrics } from '../observability/metrics.js';
import { ProfileError } from '../pprof/errors.js';
import { buildCaptureStatus, findingKey, formerFindingKey, namespaceBudgetCondition, roundConditions, triggeredStatus, triggerEventMessage, type TargetRound } from '../status/build.js';
import { setCondition } from '../status/conditions.js';
import { fencedProbe, seriesTtlSeconds, parseStoredSnapshot, storedSnapshotJson, type FencedProbe, type SeriesStore, type StoredIncident, type TargetRecord } from '../store/series-store.js';
import type { CaptureJobData } from '../queue/names.js';
import type { WatchedPod } from './trigger-watch.js';
import type { DecodeGate, GateDecoders } from './decode-gate.js';
import { describeFailure, reasonOf } from './describe.js';
import { asContainerEnd, endIsIncident, incidentsWithinRetention, type ContainerEnd } from '../analysis/incident.js';
import { containerInstance, endedInstance, endInRunningPod, endOfFailedPod, incidentEvents, incidentKind, incidentStatus, latestSeriesByPod, recordIncident, restartedSince, seriesKeyOf, type ContainerInstance } from './incidents.js';
import { mapLimit } from './limit.js';
import type { RemoteEndWatcher } from './remote-ends.js';
import { roundRan } from './deferred-rounds.js';
import { isStoreFull } from '../observability/connection-errors.js';
import { STORE_FULL_MESSAGE, SummaryTooLargeError, type SummaryCaps } from '../store/summary-caps.js';
import { resolveTargetAccess, TargetAccessError, type TargetAccess } from './target-access.js';
import { NAMESPACE_STORE_BUDGET, NamespaceStoreBudgetError, STORED_PROFILE_LIMIT } from '../store/store-budget.js';

export interface WorkerLimits {
  /** Targets captured at once within one probe's round. */
  targetConcurrency: number;
  maxGcLogBytes: number;
  maxGcCycles: number;
  /** Bound on every API server request of a round (pod list, pod log). */
  apiTimeoutMs: number;
  /** Let Direct transport reach pod IPs that a remote (tenant-named) API server reports (--allow-remote-direct). */
  allowRemoteDirect: boolean;
  /** Namespaces whose probes may name pprof credentials and CAs ("*": all; --pprof-credentials-namespaces). */
  pprofCredentialsNamespaces: ReadonlySet<string>;
}

export const DEFAULT_WORKER_LIMITS: WorkerLimits = {
  targetConcurrency: 4,
  maxGcLogBytes: 4 * 1024 * 1024,
  maxGcCycles: 2000,
  apiTimeoutMs: 30_000,
  allowRemoteDirect: false,
  pprofCredentialsNamespaces: new Set(),
};

export interface CaptureRoundDeps {
  probes: ProbeClient;
  clusters: ClusterRegistry;
  store: SeriesStore;
  knowledge: BinaryKnowledgeCache;
  /** Answer bytes all of this worker's captures may hold at once (--max-inflight-bytes). */
  captureBudget?: ByteBudget;
  metrics: OperatorMetrics;
  log: Logger;
  limits: WorkerLimits;
  /** The admin's ceilings over every probe's spec (default DEFAULT_CEILINGS). */
  ceilings?: Ceilings;
  /** Trial-decodes heap answers off the event loop before captureHeap decodes them (none: decoded on the loop only). */
  decodeGate?: DecodeGate;
  /** Called with each round's listed pods (the memory-trigger watcher follows them until the next round). */
  onTargets?: (probe: MapLeakProbe, cluster: TargetCluster, pods: readonly WatchedPod[], timing: { intervalMs: number; minIntervalMs: number }) => void;
  /** Notes how the pods of remote (spec.cluster) probes end between rounds (the local cluster's are the controller's pod watch's). */
  remoteEnds?: RemoteEndWatcher;
  /** Called with every probe this worker wrote metrics for (so deleted ones can be swept). */
  onProbeMetrics?: (namespace: string, name: string, uid: string) => void;
  now?: () => Date;
}

/**
 * `probe-replaced`: the name now belongs to a newer probe (deleted and
 * re-created): nothing of the round's probe is kept, and nothing of the
 * newer one (its metrics, its trigger follows) is the round's to forget.
 */
export type RoundOutcome = 'captured' | 'probe-gone' | 'probe-replaced' | 'suspended' | 'cluster-error';

interface Pod {
  name: string;
  namespace: string;
  uid: string;
  podIP?: string;
  container: string;
  /** Which restart of the container this is, and how the one before ended. */
  instance: ContainerInstance;
  /** Store key of this container instance's series. */
  series: string;
  restartPolicy: RestartPolicy;
  /** This series' end is recorded as an incident already (TargetRecord.endRecorded). */
  endRecorded?: true;
  port?: number;
  portError?: string;
  memoryLimitBytes?: number;
}

/** Where net/http/pprof may be mounted: plain path segments only (no "..", no escapes, no query), as the CRD's CEL rule says. */
export const PATH_PREFIX = /^(\/|(\/[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,63}){1,8})$/;

export function validPathPrefix(prefix: string): boolean {
  return PATH_PREFIX.test(prefix) && !prefix.includes('..');
}

/**
 * One scheduled round for one probe: capture every selected pod (bounded
 * concurrency, per-target timeouts and size limits, a broken target only
 * marks itself), keep each target's series in Redis, run the engine, and
 * write the status once.
 */
export async function runCaptureRound(job: { id: string; data: CaptureJobData }, deps: CaptureRoundDeps): Promise<RoundOutcome> {
  try {
    return await captureRound(job, deps);
  } catch (err) {
    // Redis refused a write (maxmemory): the status says so instead of keeping the last success standing.
    if (isStoreFull(err)) await writeStoreFull(job.data, deps);
    throw err;
  }
}

async function captureRound(job: { id: string; data: CaptureJobData }, deps: CaptureRoundDeps): Promise<RoundOutcome> {
  const now = deps.now ?? (() => new Date());
  const { namespace, name, uid } = job.data;
  const log = deps.log.child({ probe: `${namespace}/${name}` });
  const probe = await deps.probes.get(namespace, name);
  if (probe && probe.metadata.uid !== uid) return 'probe-replaced';
  if (!probe || probe.metadata.deletionTimestamp) return 'probe-gone';
  if (probe.spec.suspend) return 'suspended';
  // Every store write of this round is fenced by the probe object it started with: see SeriesStore.claim.
  const key = fencedProbe(probe);
  const ceilings = deps.ceilings ?? DEFAULT_CEILINGS;
  let settings: EffectiveSettings;
  try {
    settings = effectiveSettings(probe.spec, ceilings);
  } catch {
    await writeDegraded(deps, probe, 'InvalidSpec', 'spec.schedule.interval or spec.pprof.timeout is not a valid duration', now());
    return 'cluster-error';
  }
  if (!validPathPrefix(probe.spec.pprof.pathPrefix)) {
    await writeDegraded(deps, probe, 'InvalidSpec', 'spec.pprof.pathPrefix must be plain path segments such as /debug/pprof', now());
    return 'cluster-error';
  }
  const window = settings.window;
  const ttlSeconds = seriesTtlSeconds(window, settings.intervalMs);
  const claim = await deps.store.claim(key, Math.max(ttlSeconds, Math.ceil(ceilings.incidentRetentionMs / 1000)));
  if (claim === 'newer-owner') {
    log.info('a newer probe of the same name owns its keys; round dropped');
    return 'probe-replaced';
  }
  if (claim === 'taken-over') log.info('keys left by an older probe of the same name deleted');

  let cluster: TargetCluster;
  try {
    cluster = await deps.clusters.forProbe(probe, deps.probes.core);
  } catch (err) {
    // Only operator-written text: a client library's message can carry a response body.
    const { reason, message } = err instanceof ClusterConfigError ? { reason: err.reason, message: err.message } : { reason: 'ClusterUnreachable', message: 'the target cluster could not be set up' };
    await writeDegraded(deps, probe, reason, message, now());
    log.warn('target cluster unavailable', { reason, error: message });
    return 'cluster-error';
  }
  if (cluster.remote && probe.spec.pprof.transport === 'Direct' && !deps.limits.allowRemoteDirect) {
    await writeDegraded(deps, probe, 'DirectNotAllowed', 'transport Direct with spec.cluster is not allowed by this operator (--allow-remote-direct): a remote API server could name any address', now());
    return 'cluster-error';
  }

  // Credentials and CAs come from the probe's own namespace on this cluster, and only from labelled Secrets.
  let access: TargetAccess;
  try {
    access = await resolveTargetAccess(probe, deps.probes.core, { allowedNamespaces: deps.limits.pprofCredentialsNamespaces, timeoutMs: deps.limits.apiTimeoutMs });
  } catch (err) {
    const { reason, message } = err instanceof TargetAccessError ? err : { reason: 'PprofCredentialsUnavailable', message: 'the pprof credentials could not be read' };
    await writeDegraded(deps, probe, reason, message, now());
    log.warn('pprof credentials unavailable', { reason });
    return 'cluster-error';
  }

  let pods: Pod[];
  let omitted = 0;
  try {
    const listed = await listRunningPods(cluster.http, cluster.namespace, selectorToString(probe.spec.selector), { maxPods: ceilings.maxTargetsPerProbe, timeoutMs: deps.limits.apiTimeoutMs });
    pods = listed.pods.map((p) => describePod(p, probe));
    if (cluster.remote) {
      // Until the next round is surely due: that round starts the next watch.
      const followed = pods.filter((p) => p.container).map((p) => ({ uid: p.uid, container: p.container }));
      deps.remoteEnds?.watch(key, cluster, selectorToString(probe.spec.selector), listed.resourceVersion, followed, { forMs: 2 * settings.intervalMs + 30_000, ttlSeconds });
    }
    if (listed.truncated) omitted = 1;
    if (listed.malformed > 0) log.warn('pod list entries dropped', { malformed: listed.malformed });
  } catch (err) {
    const why = describePodListFailure(err, cluster.remote, deps.limits.apiTimeoutMs);
    await writeDegraded(deps, probe, 'TargetListFailed', `Cannot list pods in namespace ${cluster.namespace}: ${why.message}`, now());
    log.warn('listing targets failed', { error: why.message, ...why.detail });
    return 'cluster-error';
  }
  deps.onTargets?.(probe, cluster, pods.filter((p) => p.container), { intervalMs: settings.intervalMs, minIntervalMs: settings.triggerMinIntervalMs ?? 0 });
  const trigger = job.data.trigger;
  // A triggered round captures the pod that crossed first.
  if (trigger) pods.sort((a, b) => Number(b.name === trigger.pod) - Number(a.name === trigger.pod));
  const previousTargets = latestSeriesByPod(await deps.store.targets(key));
  // A container that restarted since the last round: its series ends here and becomes an incident's evidence.
  const detectedAt = now();
  const newIncidents: StoredIncident[] = [];
  const restarted = pods.flatMap((pod) => {
    const previous = restartedSince(previousTargets.get(pod.uid), pod.instance);
    return previous ? [{ pod, previous }] : [];
  });
  // A followed container that ended for good in a pod still Running (a sidecar keeps it): restartPolicy Never.
  const endedInPlace = pods.flatMap((pod) => {
    const previous = previousTargets.get(pod.uid);
    const end = endInRunningPod(pod, previous);
    return end && previous ? [{ pod, previous, end }] : [];
  });
  // A followed pod no longer Running: its container ended for good (Failed, evicted), if the operator saw how.
  const ended = await endsOfVanishedTargets(deps, cluster, probe, key, pods, previousTargets, ceilings, log);
  const ends = [
    ...restarted.map(({ pod, previous }) => ({ pod, previous, instance: pod.instance, endedForGood: false })),
    ...[...endedInPlace, ...ended].map(({ pod, previous, end }) => ({ pod, previous, instance: endedInstance(end), endedForGood: true })),
  ];
  // Seen once, recorded once: later rounds (the pod still Running, or gone) leave this end alone.
  for (const { pod } of endedInPlace) pod.endRecorded = true;
  for (const pod of pods) {
    const previous = previousTargets.get(pod.uid);
    if (previous?.endRecorded && (previous.series ?? previous.uid) === pod.series) pod.endRecorded = true;
  }
  // The status keeps at most maxIncidents: recording more in one round would only pin captures to drop them again.
  if (ends.length > ceilings.maxIncidents) log.warn('container ends past the incident cap not recorded', { ended: ends.length, recorded: ceilings.maxIncidents });
  for (const { pod, previous, instance, endedForGood } of ends.slice(0, ceilings.maxIncidents)) {
    const incident = await recordIncident(deps.store, probe, key, pod, instance, previous, {
      detectedAt,
      retentionMs: ceilings.incidentRetentionMs,
      endedForGood,
      analyze: (series, thresholds) => analyzeStoredSeries(deps, series, thresholds, log),
    });
    if (!incident) continue;
    newIncidents.push(incident);
    deps.metrics.incidents.inc({ kind: incidentKind(incident) });
    log.info(endedForGood ? 'container end recorded' : 'container restart recorded', { pod: pod.name, reason: incident.reason, restartCount: incident.restartCount, capturesKept: incident.captureIds.length });
  }
  const context: RoundContext = { jobId: job.id, probe, cluster, key, window, ttlSeconds, settings, ceilings, access, deps, now, log };
  const rounds = await mapLimit(pods, deps.limits.targetConcurrency, (pod) => captureTarget(context, pod, previousTargets.get(pod.uid)?.lastCaptureTime));
  await deps.store.forgetTargetsExcept(key, new Set(pods.map((p) => p.series)));
  // Pinned captures together take at most one target's budget per probe, newest first.
  const incidents = await deps.store.incidents(key, new Date(now().getTime() - ceilings.incidentRetentionMs), ceilings.maxIncidents, ceilings.maxRedisBytesPerTarget);

  const findings = rounds.flatMap((r) => r.analysis?.findings ?? []);
  const formerKeys = new Map(findings.flatMap((f) => (f.caller ? [[findingKey(f), formerFindingKey(f) as string] as const] : [])));
  const firstSeen = await deps.store.firstSeen(key, [...new Set(findings.map(findingKey))], now(), ttlSeconds, formerKeys);
  const built = buildCaptureStatus(rounds, firstSeen, {
    maxFindings: settings.maxFindings,
    maxTargets: 20,
    maxPodsPerFinding: 10,
  });
  // Pods past the per-probe ceiling were never listed: at least one more exists.
  const captureStatus = omitted > 0 ? { ...built, targetsOmitted: (built.targetsOmitted ?? 0) + omitted } : built;
  const failing = rounds.filter((r) => r.error);
  const captured = rounds.length - failing.length;
  const selection = `namespace ${cluster.namespace}, selector "${selectorToString(probe.spec.selector)}"`;

  const updated = await deps.probes.updateStatus(namespace, name, (current) => {
    if (current.metadata.uid !== uid) return undefined;
    const at = now();
    let conditions = current.status?.conditions;
    for (const update of roundConditions(rounds, selection)) conditions = setCondition(conditions, update, current.metadata.generation, at);
    conditions = roundRan(conditions, current.metadata.generation, at);
    const overBudget = namespaceBudgetCondition(rounds, ceilings.maxRedisBytesPerNamespace);
    if (overBudget) conditions = setCondition(conditions, overBudget, current.metadata.generation, at);
    if (rounds.some((r) => r.error?.reason === 'StoreFull')) {
      conditions = setCondition(conditions, { type: 'Degraded', status: 'True', reason: 'StoreFull', message: STORE_FULL_MESSAGE }, current.metadata.generation, at);
    }
    if (omitted > 0) {
      conditions = setCondition(
        conditions,
        { type: 'Degraded', status: 'True', reason: 'TargetLimit', message: `More than ${ceilings.maxTargetsPerProbe} pods match: only the first ${ceilings.maxTargetsPerProbe} (by name) are captured (operator ceiling). Narrow the selector.` },
        current.metadata.generation,
        at,
      );
    }
    const status: MapLeakProbeStatus = {
      ...captureStatus,
      incidents: incidents.map(incidentStatus),
      conditions: conditions ?? [],
      // A triggered round leaves the schedule's next time as it is.
      ...(trigger ? triggeredStatus(trigger, rounds) : { nextCaptureTime: new Date(at.getTime() + settings.intervalMs).toISOString() }),
    };
    return status;
  });

  if (!updated || updated.metadata.uid !== uid || updated.metadata.deletionTimestamp) {
    // Deleted (or deleted and re-created under the same name) while this
    // round captured: the controller's clean-up may have run before the
    // writes above, which would then outlive the probe. Only what this
    // round's probe owns goes; a new probe's keys and Events are not its.
    await deps.store.forgetOwn(key);
    const replaced = updated !== undefined && updated.metadata.uid !== uid;
    log.info(replaced ? 'probe replaced during the round; nothing written to the new one' : 'probe deleted during the round; its data forgotten');
    return replaced ? 'probe-replaced' : 'probe-gone';
  }
  deps.metrics.setProbeFindings(namespace, name, captureStatus.verdict ?? 'Unknown', captureStatus.findings ?? []);
  deps.onProbeMetrics?.(namespace, name, uid);
  const before = probe.status?.verdict;
  if (before !== captureStatus.verdict && captureStatus.verdict && captureStatus.verdict !== 'Unknown') {
    const top = captureStatus.findings?.find((f) => f.kind === 'map');
    const where = top ? `: ${top.site.function} (${top.site.file.split('/').pop()}:${top.site.line}) ${top.pattern}` : '';
    await deps.probes.event(updated, captureStatus.verdict === 'Healthy' ? 'Normal' : 'Warning', `Verdict${captureStatus.verdict}`, `Verdict changed from ${before ?? 'none'} to ${captureStatus.verdict}${where}`);
  }
  const shown = new Set(incidents.map((i) => i.id));
  for (const { reason, message } of incidentEvents(newIncidents.filter((i) => shown.has(i.id)), ceilings.maxEventsPerRound)) {
    await deps.probes.event(updated, 'Warning', reason, message);
  }
  if (trigger && probe.status?.lastTriggeredTime !== trigger.firedTime) {
    await deps.probes.event(updated, 'Normal', 'MemoryTriggered', triggerEventMessage(trigger, rounds));
  }
  const changed = failing.filter((failed) => previousTargets.get(failed.pod.uid)?.lastErrorReason !== failed.error?.reason);
  const budget = Math.max(0, ceilings.maxEventsPerRound - 1);
  for (const failed of changed.length > ceilings.maxEventsPerRound ? changed.slice(0, budget) : changed) {
    await deps.probes.event(updated, 'Warning', 'CaptureFailed', `${failed.pod.name}: ${failed.error?.message ?? ''}`);
  }
  if (changed.length > ceilings.maxEventsPerRound) {
    await deps.probes.event(updated, 'Warning', 'CaptureFailed', `${changed.length - budget} more targets started failing this round; see status.targets (Events per round are capped at ${ceilings.maxEventsPerRound})`);
  }
  log.info('capture round done', { targets: pods.length, captured, failing: failing.length, verdict: captureStatus.verdict, ...(trigger ? { triggeredBy: trigger.reason, triggerPod: trigger.pod } : {}) });
  return 'captured';
}

/**
 * The followed pods (their last series) that this round's list of Running
 * pods lacks, with how their container ended: from the list of the
 * selector's Failed pods (restartPolicy Never, evicted), else from what the
 * controller's pod watch noted before the pod was deleted. A pod gone
 * without either gives nothing: an incident is never guessed.
 */
async function endsOfVanishedTargets(
  deps: CaptureRoundDeps,
  cluster: TargetCluster,
  probe: MapLeakProbe,
  key: FencedProbe,
  running: readonly Pod[],
  previousTargets: ReadonlyMap<string, TargetRecord>,
  ceilings: Ceilings,
  log: Logger,
): Promise<{ pod: Pick<Pod, 'name' | 'namespace' | 'uid' | 'container'>; previous: TargetRecord; end: ContainerEnd }[]> {
  const listed = new Set(running.map((p) => p.uid));
  const vanished = [...previousTargets.values()].filter((t) => !listed.has(t.uid));
  if (vanished.length === 0) return [];
  const failed = new Map<string, { pod: Pod; end: ContainerEnd }>();
  try {
    const list = await listRunningPods(cluster.http, cluster.namespace, selectorToString(probe.spec.selector), { maxPods: ceilings.maxTargetsPerProbe, timeoutMs: deps.limits.apiTimeoutMs, phase: 'Failed' });
    for (const listedPod of list.pods) {
      const pod = describePod(listedPod, probe);
      failed.set(pod.uid, { pod, end: endOfFailedPod(listedPod, pod.container, pod.instance) });
    }
  } catch (err) {
    // The noted ends still count; a Failed pod missed here is seen by the next round.
    log.warn('listing failed pods failed', { reason: reasonOf(err) });
  }
  const noted = await deps.store.takeEnded(key, vanished.filter((t) => !failed.has(t.uid)).map((t) => t.uid));
  return vanished.flatMap((previous) => {
    // An end recorded while the pod still ran (endInRunningPod) is not recorded again when the pod goes (its note is taken all the same).
    if (previous.endRecorded) return [];
    const seen = failed.get(previous.uid);
    // A note of an instance before the followed one is of a crash that restarted (the restart made its incident).
    const note = noted.has(previous.uid) ? asContainerEnd(noted.get(previous.uid)) : undefined;
    const end = seen?.end ?? (note && note.restartCount === (previous.restartCount ?? 0) ? note : undefined);
    if (!end || !endIsIncident(end)) return [];
    const pod = { name: previous.name, namespace: previous.namespace, uid: previous.uid, container: seen?.pod.container ?? end.container };
    return [{ pod, previous, end }];
  });
}

/** A capture's id: derived from its job, so a retried job overwrites its capture instead of storing it twice. */
export function captureIdOf(jobId: string, podUid: string): string {
  return createHash('sha256').update(`${jobId}|${podUid}`).digest('hex').slice(0, 24);
}

function describePod(pod: ListedPod, probe: MapLeakProbe): Pod {
  const containers = pod.containers;
  const container = probe.spec.container ? containers.find((c) => c.name === probe.spec.container) : containers[0];
  const containerName = container?.name ?? probe.spec.container ?? '';
  const instance = containerInstance(pod.containerStatuses, containerName);
  const base = {
    name: pod.name,
    namespace: pod.namespace,
    uid: pod.uid,
    container: containerName,
    instance,
    series: seriesKeyOf(pod.uid, instance.restartCount),
    restartPolicy: pod.restartPolicy,
    ...(pod.podIP ? { podIP: pod.podIP } : {}),
  };
  if (!container) return { ...base, portError: probe.spec.container ? `pod has no container named "${probe.spec.container}"` : 'pod has no container' };
  const withLimit = container.memoryLimitBytes !== undefined ? { ...base, memoryLimitBytes: container.memoryLimitBytes } : base;
  const wanted = probe.spec.pprof.port;
  if (typeof wanted === 'number') return { ...withLimit, port: wanted };
  const named = container.ports.find((p) => p.name === wanted);
  return named ? { ...withLimit, port: named.containerPort } : { ...withLimit, portError: `container "${container.name}" has no port named "${wanted}"` };
}

/** What every target of one round shares. */
interface RoundContext {
  jobId: string;
  probe: MapLeakProbe;
  cluster: TargetCluster;
  /** The probe's store key, fenced by the probe object this round started with. */
  key: FencedProbe;
  window: number;
  ttlSeconds: number;
  settings: EffectiveSettings;
  ceilings: Ceilings;
  access: TargetAccess;
  deps: CaptureRoundDeps;
  now: () => Date;
  log: Logger;
}

async function captureTarget(context: RoundContext, pod: Pod, lastCaptureTime: string | undefined): Promise<TargetRound> {
  const { jobId, probe, cluster, key, window, ttlSeconds, settings, ceilings, access, deps, now, log } = context;
  const round: TargetRound = { pod: { name: pod.name, namespace: pod.namespace, uid: pod.uid }, captures: 0 };
  const timeoutMs = settings.timeoutMs;
  const limits = { maxBytes: settings.maxProfileBytes, maxInflatedBytes: ceilings.maxInflatedBytes, maxRatio: ceilings.maxCompressionRatio };
  const started = process.hrtime.bigint();
  try {
    if (pod.portError || pod.port === undefined) throw new CaptureError('BadUrl', pod.portError ?? 'no pprof port');
    if (probe.spec.pprof.transport === 'Direct' && !pod.podIP) throw new CaptureError('BadUrl', 'pod has no IP yet');
    const target = { namespace: pod.namespace, name: pod.name, port: pod.port, pathPrefix: probe.spec.pprof.pathPrefix, scheme: access.scheme, ...(pod.podIP ? { podIP: pod.podIP } : {}) };
    const direct: PprofClient =
      probe.spec.pprof.transport === 'Direct'
        ? podDirectClient(target, timeoutMs, { headers: access.headers, ...(access.tls ? { tls: access.tls } : {}), ...(cluster.podAddresses ? { allowedAddresses: cluster.podAddresses } : {}) })
        : apiServerProxyClient(cluster.http, target, timeoutMs);
    // Decoded in the gate's thread, each answer once: the event loop keeps renewing job locks and leases meanwhile.
    const decoders = deps.decodeGate?.decoders(limits);
    const capture = await captureHeap(direct, {
      limits,
      ...(decoders ? { decoders } : {}),
      knowledge: deps.knowledge,
      scope: `${cluster.id}|${pod.namespace}/${pod.uid}`,
      binaryScope: `${cluster.id}|${pod.namespace}`,
      ...operatorCaptureOptions(ceilings, { timeoutMs, maxCaptureMs: captureDeadline(timeoutMs, ceilings) }, deps.captureBudget),
      now,
    });
    const id = captureIdOf(jobId, pod.uid);
    const json = await storedSnapshot(deps.decodeGate, decoders, capture, log, summaryCaps(ceilings));
    const summaryBytes = Buffer.byteLength(json);
    if (summaryBytes > ceilings.maxSummaryBytes) throw new SummaryTooLargeError(summaryBytes, ceilings.maxSummaryBytes);
    // A raw profile past --max-stored-profile-bytes is not stored, so it does not shorten the window either.
    const storedProfileBytes = capture.proto.length <= ceilings.maxStoredProfileBytes ? capture.proto.length : 0;
    const kept = await deps.store.keepCapture(key, pod.series, { id, time: capture.time, json, proto: capture.proto }, keptCaptures(window, summaryBytes + storedProfileBytes, ceilings), ttlSeconds, storeLimits(ceilings));
    if (kept.kind === 'kept' && kept.profile !== 'kept') {
      round.profileDropped = kept.profile === 'over-namespace-budget' ? NAMESPACE_STORE_BUDGET : STORED_PROFILE_LIMIT;
      deps.metrics.storedProfilesDropped.inc({ namespace: probe.metadata.namespace, reason: round.profileDropped });
    }
    round.lastCaptureTime = capture.time.toISOString();
    deps.metrics.captures.inc({ result: 'ok' });
  } catch (err) {
    // Status, Events and logs get the operator's words for what happened, never the target's bytes.
    const failure = describeFailure(err, settings);
    round.error = failure;
    if (lastCaptureTime) round.lastCaptureTime = lastCaptureTime;
    deps.metrics.captures.inc({ result: reasonOf(err) });
    if (err instanceof NamespaceStoreBudgetError) deps.metrics.storeBudgetRefusals.inc({ namespace: probe.metadata.namespace });
    log.warn('capture failed', { pod: pod.name, reason: failure.reason, error: failure.message });
    if (!(err instanceof CaptureError || err instanceof ProfileError || err instanceof SummaryTooLargeError || err instanceof NamespaceStoreBudgetError || isStoreFull(err))) log.error('unexpected capture error', { pod: pod.name, error: err instanceof Error ? err.stack : String(err) });
  } finally {
    deps.metrics.captureSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
  }

  if (probe.spec.gctrace.enabled && pod.container) {
    try {
      round.gc = summarizeGcTrace({ cycles: await readGcTrace(cluster, pod, deps, key, ttlSeconds, ceilings), skippedLines: 0 });
    } catch (err) {
      log.debug('gctrace not read', { pod: pod.name, reason: reasonOf(err) });
    }
  }
  const series = await deps.store.loadSeriesJson(key, pod.series);
  round.captures = series.length;
  if (series.length > 0) {
    try {
      round.analysis = await analyzeStoredSeries(deps, series, {
        minMapBytes: probe.spec.thresholds.minMapBytes,
        minGrowthBytesPerHour: probe.spec.thresholds.minGrowthBytesPerHour,
        maxFindings: settings.maxFindings,
      }, log);
      // Past the namespace's Redis budget the API keeps serving the last analysis kept; the status has this one.
      await deps.store.saveAnalysis(key, pod.series, round.analysis, ttlSeconds, storeLimits(ceilings));
    } catch (err) {
      if (!(err instanceof ProfileError)) throw err;
      // The series is kept; this round just has no findings for the pod.
      round.error ??= describeFailure(err, settings);
      log.warn('series analysis refused', { pod: pod.name, reason: round.error.reason });
    }
  }
  await deps.store.recordTarget(
    key,
    {
      name: pod.name,
      namespace: pod.namespace,
      uid: pod.uid,
      series: pod.series,
      restartCount: pod.instance.restartCount,
      ...(pod.endRecorded ? { endRecorded: true as const } : {}),
      ...(round.lastCaptureTime ? { lastCaptureTime: round.lastCaptureTime } : {}),
      ...(round.error ? { lastError: round.error.message, lastErrorReason: round.error.reason } : {}),
    },
    ttlSeconds,
  );
  return round;
}

/**
 * A capture attributed, in the form the series store keeps: in the decode
 * gate's thread, from the profile it decoded (attribution of a 122k-sample
 * profile holds a loop for 200–300 ms). A refusal under the thread's limits
 * (its time, its heap: sizes the target chose) is final for this capture;
 * only a thread that broke for its own reasons leaves the work to the loop.
 */
export async function storedSnapshot(gate: DecodeGate | undefined, decoders: GateDecoders | undefined, capture: HeapCapture, log: Logger, caps?: SummaryCaps): Promise<string | Buffer> {
  if (gate && decoders) {
    try {
      return await gate.attributeForStore(decoders, capture.profile, capture.time, caps);
    } catch (err) {
      if (err instanceof ProfileError) throw err;
      log.warn('attribution thread failed; attributing on the event loop', { error: err instanceof Error ? err.message : 'unknown' });
    }
  }
  return storedSnapshotJson({ ...attributeProfile(capture.profile), time: capture.time }, caps);
}

/**
 * The engine on a target's stored series: in the decode gate's thread when
 * there is one (parsing and analysing 12 large captures holds the loop for
 * seconds). As for attribution, a refusal under the thread's limits is
 * final (a ProfileError); only a broken thread leaves the work to the loop.
 */
export async function analyzeStoredSeries(deps: Pick<CaptureRoundDeps, 'decodeGate'>, series: readonly Buffer[], thresholds: Thresholds, log: Logger): Promise<SeriesAnalysis> {
  if (deps.decodeGate) {
    try {
      return await deps.decodeGate.analyzeSeries(series, thresholds);
    } catch (err) {
      if (err instanceof ProfileError) throw err;
      log.warn('series analysis thread failed; analysing on the event loop', { error: err instanceof Error ? err.message : 'unknown' });
    }
  }
  return analyzeSeries(series.map(parseStoredSnapshot), thresholds);
}

/** New gctrace lines from the container log since the last read, appended to the kept cycles. */
async function readGcTrace(cluster: TargetCluster, pod: Pod, deps: CaptureRoundDeps, key: FencedProbe, ttlSeconds: number, ceilings: Ceilings): Promise<GcCycle[]> {
  const state = await deps.store.gc(key, pod.series);
  const params = new URLSearchParams({ container: pod.container, timestamps: 'true', limitBytes: String(deps.limits.maxGcLogBytes) });
  if (state.readUntil) params.set('sinceTime', state.readUntil);
  const body = await cluster.http.get(`/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods/${encodeURIComponent(pod.name)}/log?${params}`, {
    timeoutMs: Math.min(10_000, deps.limits.apiTimeoutMs),
    maxBytes: deps.limits.maxGcLogBytes + 1024,
  });
  const text = body.toString('utf8');
  const lines = text.split('\n').filter(Boolean);
  const lastStamp = lastLogTimestamp(lines);
  // sinceTime is inclusive to the second: drop cycles already kept.
  const seen = new Set(state.cycles.map((c) => `${c.cycle}@${c.atSeconds}`));
  const fresh = parseGcTrace(text).cycles.filter((c) => !seen.has(`${c.cycle}@${c.atSeconds}`));
  const cycles = [...state.cycles, ...fresh];
  // Past the namespace's Redis budget the kept cycles stay as they were, and the next round reads the same lines again.
  await deps.store.saveGc(key, pod.series, { cycles, ...(lastStamp ? { readUntil: lastStamp } : state.readUntil ? { readUntil: state.readUntil } : {}) }, deps.limits.maxGcCycles, ttlSeconds, storeLimits(ceilings));
  return cycles.slice(-deps.limits.maxGcCycles);
}

/** Degraded and Capturing False with reason StoreFull, for a round that Redis refused (the probe object as it is now: the round's may be gone). */
async function writeStoreFull(data: CaptureJobData, deps: CaptureRoundDeps): Promise<void> {
  try {
    const probe = await deps.probes.get(data.namespace, data.name);
    if (probe && probe.metadata.uid === data.uid) await writeDegraded(deps, probe, 'StoreFull', STORE_FULL_MESSAGE, (deps.now ?? (() => new Date()))());
  } catch (err) {
    deps.log.warn('store-full status not written', { probe: `${data.namespace}/${data.name}`, error: err instanceof Error ? err.name : 'unknown' });
  }
}

async function writeDegraded(deps: CaptureRoundDeps, probe: MapLeakProbe, reason: string, message: string, at: Date): Promise<void> {
  await deps.probes.updateStatus(probe.metadata.namespace, probe.metadata.name, (current) => {
    if (current.metadata.uid !== probe.metadata.uid) return undefined;
    const conditions = setCondition(current.status?.conditions, { type: 'Degraded', status: 'True', reason, message }, current.metadata.generation, at);
    // A round that ends early still lets incidents past the retention leave the status.
    const incidents = current.status?.incidents && incidentsWithinRetention(current.status.incidents, at, (deps.ceilings ?? DEFAULT_CEILINGS).incidentRetentionMs);
    return { conditions: setCondition(conditions, { type: 'Capturing', status: 'False', reason, message }, current.metadata.generation, at), ...(incidents ? { incidents } : {}) };
  });
}

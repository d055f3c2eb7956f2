import { createHash } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import { attributeProfile } from '../analysis/attribute.js';
import { parseGcTrace, summarizeGcTrace, type GcCycle } from '../analysis/gctrace.js';
import { analyzeSeries, type SeriesAnalysis } from '../analysis/series.js';
import type { ProbeClient } from '../api/client.js';
import { durationMs } from '../api/duration.js';
import { selectorToString, type MapLeakProbe, type MapLeakProbeStatus } from '../api/types.js';
import { captureHeap, type PprofClient } from '../capture/capture.js';
import { CaptureError } from '../capture/errors.js';
import { apiServerProxyClient, podDirectClient } from '../capture/proxy.js';
import type { SymbolCache } from '../capture/symbol-cache.js';
import { ClusterConfigError, type ClusterRegistry, type TargetCluster } from '../clusters/registry.js';
import type { Logger } from '../observability/log.js';
import type { OperatorMetrics } from '../observability/metrics.js';
import { ProfileError } from '../pprof/errors.js';
import { buildCaptureStatus, findingKey, roundConditions, type TargetRound } from '../status/build.js';
import { setCondition } from '../status/conditions.js';
import type { SeriesStore } from '../store/series-store.js';
import type { CaptureJobData } from '../queue/names.js';
import { mapLimit } from './limit.js';

export interface WorkerLimits {
  /** Targets captured at once within one probe's round. */
  targetConcurrency: number;
  maxGcLogBytes: number;
  maxGcCycles: number;
}

export const DEFAULT_WORKER_LIMITS: WorkerLimits = { targetConcurrency: 4, maxGcLogBytes: 4 * 1024 * 1024, maxGcCycles: 2000 };

export interface CaptureRoundDeps {
  probes: ProbeClient;
  clusters: ClusterRegistry;
  store: SeriesStore;
  symbols: SymbolCache;
  metrics: OperatorMetrics;
  log: Logger;
  limits: WorkerLimits;
  now?: () => Date;
}

export type RoundOutcome = 'captured' | 'probe-gone' | 'suspended' | 'cluster-error';

interface Pod {
  name: string;
  namespace: string;
  uid: string;
  podIP?: string;
  container: string;
  port?: number;
  portError?: string;
}

/**
 * One scheduled round for one probe: capture every selected pod (bounded
 * concurrency, per-target timeouts and size limits, a broken target only
 * marks itself), keep each target's series in Redis, run the engine, and
 * write the status once.
 */
export async function runCaptureRound(job: { id: string; data: CaptureJobData }, deps: CaptureRoundDeps): Promise<RoundOutcome> {
  const now = deps.now ?? (() => new Date());
  const { namespace, name, uid } = job.data;
  const log = deps.log.child({ probe: `${namespace}/${name}` });
  const probe = await deps.probes.get(namespace, name);
  if (!probe || probe.metadata.uid !== uid || probe.metadata.deletionTimestamp) return 'probe-gone';
  if (probe.spec.suspend) return 'suspended';
  const key = `${namespace}/${name}`;
  const window = probe.spec.schedule.window;
  const ttlSeconds = Math.ceil((window + 2) * durationMs(probe.spec.schedule.interval) / 1000) + 3600;

  let cluster: TargetCluster;
  try {
    cluster = await deps.clusters.forProbe(probe, deps.probes.core);
  } catch (err) {
    const reason = err instanceof ClusterConfigError ? err.reason : 'ClusterUnreachable';
    await writeDegraded(deps, probe, reason, (err as Error).message.split('\n')[0] ?? '', now());
    log.warn('target cluster unavailable', { reason, error: (err as Error).message });
    return 'cluster-error';
  }

  let pods: Pod[];
  try {
    pods = await listTargets(cluster, probe);
  } catch (err) {
    const code = (err as { code?: number }).code;
    const why = code === 403 ? 'forbidden to list pods (RBAC)' : (err as Error).message.split('\n')[0];
    await writeDegraded(deps, probe, 'TargetListFailed', `Cannot list pods in namespace ${cluster.namespace}: ${why}`, now());
    log.warn('listing targets failed', { error: why });
    return 'cluster-error';
  }
  const previousTargets = new Map((await deps.store.targets(key)).map((t) => [t.uid, t]));
  const context: RoundContext = { jobId: job.id, probe, cluster, key, window, ttlSeconds, deps, now, log };
  const rounds = await mapLimit(pods, deps.limits.targetConcurrency, (pod) => captureTarget(context, pod, previousTargets.get(pod.uid)?.lastCaptureTime));
  await deps.store.forgetTargetsExcept(key, new Set(pods.map((p) => p.uid)));

  const keys = rounds.flatMap((r) => r.analysis?.findings.map(findingKey) ?? []);
  const firstSeen = await deps.store.firstSeen(key, [...new Set(keys)], now(), ttlSeconds);
  const captureStatus = buildCaptureStatus(rounds, firstSeen, {
    maxFindings: probe.spec.thresholds.maxFindings,
    maxTargets: 20,
    maxPodsPerFinding: 10,
  });
  const failing = rounds.filter((r) => r.error);
  const captured = rounds.length - failing.length;
  const selection = `namespace ${cluster.namespace}, selector "${selectorToString(probe.spec.selector)}"`;

  const updated = await deps.probes.updateStatus(namespace, name, (current) => {
    if (current.metadata.uid !== uid) return undefined;
    const at = now();
    let conditions = current.status?.conditions;
    for (const update of roundConditions(rounds, selection)) conditions = setCondition(conditions, update, current.metadata.generation, at);
    const status: MapLeakProbeStatus = {
      ...captureStatus,
      conditions: conditions ?? [],
      nextCaptureTime: new Date(at.getTime() + durationMs(current.spec.schedule.interval)).toISOString(),
    };
    return status;
  });

  if (updated) {
    deps.metrics.setProbeFindings(namespace, name, captureStatus.verdict ?? 'Unknown', captureStatus.findings ?? []);
    const before = probe.status?.verdict;
    if (before !== captureStatus.verdict && captureStatus.verdict && captureStatus.verdict !== 'Unknown') {
      const top = captureStatus.findings?.find((f) => f.kind === 'map');
      const where = top ? `: ${top.site.function} (${top.site.file.split('/').pop()}:${top.site.line}) ${top.pattern}` : '';
      await deps.probes.event(updated, captureStatus.verdict === 'Healthy' ? 'Normal' : 'Warning', `Verdict${captureStatus.verdict}`, `Verdict changed from ${before ?? 'none'} to ${captureStatus.verdict}${where}`);
    }
    for (const failed of failing) {
      if (previousTargets.get(failed.pod.uid)?.lastErrorReason !== failed.error?.reason) {
        await deps.probes.event(updated, 'Warning', 'CaptureFailed', `${failed.pod.name}: ${failed.error?.message ?? ''}`);
      }
    }
  }
  log.info('capture round done', { targets: pods.length, captured, failing: failing.length, verdict: captureStatus.verdict });
  return 'captured';
}

async function listTargets(cluster: TargetCluster, probe: MapLeakProbe): Promise<Pod[]> {
  const list = await cluster.core.listNamespacedPod({ namespace: cluster.namespace, labelSelector: selectorToString(probe.spec.selector) });
  return list.items.filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp).map((p) => describePod(p, probe));
}

function describePod(pod: V1Pod, probe: MapLeakProbe): Pod {
  const containers = pod.spec?.containers ?? [];
  const container = probe.spec.container ? containers.find((c) => c.name === probe.spec.container) : containers[0];
  const base = {
    name: pod.metadata?.name ?? '',
    namespace: pod.metadata?.namespace ?? '',
    uid: pod.metadata?.uid ?? '',
    container: container?.name ?? probe.spec.container ?? '',
    ...(pod.status?.podIP ? { podIP: pod.status.podIP } : {}),
  };
  if (!container) return { ...base, portError: `pod has no container named "${probe.spec.container}"` };
  const wanted = probe.spec.pprof.port;
  if (typeof wanted === 'number') return { ...base, port: wanted };
  const named = container.ports?.find((p) => p.name === wanted);
  return named ? { ...base, port: named.containerPort } : { ...base, portError: `container "${container.name}" has no port named "${wanted}"` };
}

/** What every target of one round shares. */
interface RoundContext {
  jobId: string;
  probe: MapLeakProbe;
  cluster: TargetCluster;
  /** "namespace/name" of the probe: the store's key. */
  key: string;
  window: number;
  ttlSeconds: number;
  deps: CaptureRoundDeps;
  now: () => Date;
  log: Logger;
}

async function captureTarget(context: RoundContext, pod: Pod, lastCaptureTime: string | undefined): Promise<TargetRound> {
  const { jobId, probe, cluster, key, window, ttlSeconds, deps, now, log } = context;
  const round: TargetRound = { pod: { name: pod.name, namespace: pod.namespace, uid: pod.uid }, captures: 0 };
  const timeoutMs = durationMs(probe.spec.pprof.timeout);
  const limits = { maxBytes: probe.spec.pprof.maxProfileBytes };
  const started = process.hrtime.bigint();
  try {
    if (pod.portError || pod.port === undefined) throw new CaptureError('BadUrl', pod.portError ?? 'no pprof port');
    const target = { namespace: pod.namespace, name: pod.name, port: pod.port, pathPrefix: probe.spec.pprof.pathPrefix, ...(pod.podIP ? { podIP: pod.podIP } : {}) };
    const client: PprofClient = probe.spec.pprof.transport === 'Direct' ? podDirectClient(target, timeoutMs) : apiServerProxyClient(cluster.http, target, timeoutMs);
    const capture = await captureHeap(client, { limits, symbols: deps.symbols, scope: `${pod.namespace}/${pod.uid}`, now });
    // The same job retried gives the same id: the capture is overwritten, not duplicated.
    const id = createHash('sha256').update(`${jobId}|${pod.uid}`).digest('hex').slice(0, 24);
    await deps.store.addCapture(key, pod.uid, { id, snapshot: { ...attributeProfile(capture.profile), time: capture.time }, proto: capture.proto }, window, ttlSeconds);
    round.lastCaptureTime = capture.time.toISOString();
    deps.metrics.captures.inc({ result: 'ok' });
  } catch (err) {
    const reason = err instanceof ProfileError || err instanceof CaptureError ? err.code : 'CaptureFailed';
    const message = (err as Error).message.split('\n')[0] ?? String(err);
    round.error = { reason: reason === 'HttpStatus' ? `Http${(err as CaptureError).status ?? ''}` : reason, message: `${reasonHint(reason, err)}${message}` };
    if (lastCaptureTime) round.lastCaptureTime = lastCaptureTime;
    deps.metrics.captures.inc({ result: reason });
    log.warn('capture failed', { pod: pod.name, reason, error: message });
  } finally {
    deps.metrics.captureSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
  }

  if (probe.spec.gctrace.enabled && pod.container) {
    try {
      round.gc = summarizeGcTrace({ cycles: await readGcTrace(cluster, pod, deps, key, ttlSeconds), skippedLines: 0 });
    } catch (err) {
      log.debug('gctrace not read', { pod: pod.name, error: (err as Error).message });
    }
  }
  const series = await deps.store.loadSeries(key, pod.uid);
  round.captures = series.length;
  if (series.length > 0) {
    const analysis: SeriesAnalysis = analyzeSeries(series, {
      minMapBytes: probe.spec.thresholds.minMapBytes,
      minGrowthBytesPerHour: probe.spec.thresholds.minGrowthBytesPerHour,
      maxFindings: probe.spec.thresholds.maxFindings,
    });
    round.analysis = analysis;
  }
  await deps.store.recordTarget(
    key,
    {
      name: pod.name,
      namespace: pod.namespace,
      uid: pod.uid,
      ...(round.lastCaptureTime ? { lastCaptureTime: round.lastCaptureTime } : {}),
      ...(round.error ? { lastError: round.error.message, lastErrorReason: round.error.reason } : {}),
    },
    ttlSeconds,
  );
  return round;
}

/** New gctrace lines from the container log since the last read, appended to the kept cycles. */
async function readGcTrace(cluster: TargetCluster, pod: Pod, deps: CaptureRoundDeps, key: string, ttlSeconds: number): Promise<GcCycle[]> {
  const state = await deps.store.gc(key, pod.uid);
  const params = new URLSearchParams({ container: pod.container, timestamps: 'true', limitBytes: String(deps.limits.maxGcLogBytes) });
  if (state.readUntil) params.set('sinceTime', state.readUntil);
  const body = await cluster.http.get(`/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods/${encodeURIComponent(pod.name)}/log?${params}`, {
    timeoutMs: 10_000,
    maxBytes: deps.limits.maxGcLogBytes + 1024,
  });
  const text = body.toString('utf8');
  const lines = text.split('\n').filter(Boolean);
  const lastStamp = lines.length > 0 ? /^(\S+)/.exec(lines[lines.length - 1] ?? '')?.[1] : undefined;
  // sinceTime is inclusive to the second: drop cycles already kept.
  const seen = new Set(state.cycles.map((c) => `${c.cycle}@${c.atSeconds}`));
  const fresh = parseGcTrace(text).cycles.filter((c) => !seen.has(`${c.cycle}@${c.atSeconds}`));
  const cycles = [...state.cycles, ...fresh];
  await deps.store.saveGc(key, pod.uid, { cycles, ...(lastStamp ? { readUntil: lastStamp } : state.readUntil ? { readUntil: state.readUntil } : {}) }, deps.limits.maxGcCycles, ttlSeconds);
  return cycles.slice(-deps.limits.maxGcCycles);
}

function reasonHint(reason: string, err: unknown): string {
  if (reason === 'HttpStatus' && (err as CaptureError).status === 404) return 'pprof not found (is net/http/pprof imported and the port/pathPrefix right?): ';
  if (reason === 'ConnectionFailed') return 'nothing answered on the pprof port: ';
  if (reason === 'Timeout') return 'target too slow: ';
  return '';
}

async function writeDegraded(deps: CaptureRoundDeps, probe: MapLeakProbe, reason: string, message: string, at: Date): Promise<void> {
  await deps.probes.updateStatus(probe.metadata.namespace, probe.metadata.name, (current) => {
    if (current.metadata.uid !== probe.metadata.uid) return undefined;
    const conditions = setCondition(current.status?.conditions, { type: 'Degraded', status: 'True', reason, message }, current.metadata.generation, at);
    return { conditions: setCondition(conditions, { type: 'Capturing', status: 'False', reason, message }, current.metadata.generation, at) };
  });
}

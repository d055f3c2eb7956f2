/**
 * TypeScript view of the MapLeakProbe API. The schema in
 * crds/mapleakprobes.yaml is the source of truth (defaults are applied by
 * the API server); test/api checks that these names stay in line with it.
 */
import type { Evidence, Kind } from '../analysis/attribute.js';
import type { Pattern } from '../analysis/advice.js';
import type { MapImpl } from '../analysis/frames.js';

export const GROUP = 'mapleak.io';
export const VERSION = 'v1alpha1';
export const KIND = 'MapLeakProbe';
export const PLURAL = 'mapleakprobes';
export const FINALIZER = 'mapleak.io/finalizer';

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface MapLeakProbeSpec {
  selector: LabelSelector;
  container?: string;
  pprof: {
    port: number | string;
    pathPrefix: string;
    transport: 'APIServerProxy' | 'Direct';
    timeout: string;
    maxProfileBytes: number;
    scheme?: 'HTTP' | 'HTTPS';
    tls?: { ca?: { secret?: KeyRef; configMap?: KeyRef }; serverName?: string; insecureSkipVerify?: boolean };
    authorization?: { credentials: KeyRef };
    basicAuth?: { username: KeyRef; password: KeyRef };
  };
  schedule: { interval: string; window: number; jitter: string };
  gctrace: { enabled: boolean };
  cluster?: { kubeconfigSecretRef: { name: string; key: string }; namespace: string };
  thresholds: { minMapBytes: number; minGrowthBytesPerHour: number; maxFindings: number };
  /** Capture at once, outside the schedule, when a pod's live heap (from gctrace) crosses one of these. */
  triggers?: TriggersSpec;
  suspend: boolean;
}

export interface TriggersSpec {
  liveHeapBytes?: number;
  /** Of the container's memory limit, 0 < f <= 1; pods without a limit are skipped for it. */
  memoryLimitFraction?: number;
  growthBytesPerMinute?: number;
  /** Defaulted by the API server (2m). */
  growthWindow: string;
  /** Defaulted by the API server (5m). */
  minInterval: string;
}

/** A key of a Secret or ConfigMap in the probe's own namespace. */
export interface KeyRef {
  name: string;
  key: string;
}

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: string;
  status: ConditionStatus;
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export type Verdict = 'Leaking' | 'Retaining' | 'Healthy' | 'Unknown';

export interface TargetStatus {
  name: string;
  namespace: string;
  captures: number;
  lastCaptureTime?: string;
  lastError?: string;
  lastErrorReason?: string;
  mapImpl?: MapImpl;
}

export interface FindingStatus {
  site: { function: string; file: string; line: number };
  /** The first frame in the target's main module, when it is not the site. */
  caller?: { function: string; file: string; line: number };
  /** `function`: growth spread over several lines of one function (site.line 0, `lines` lists them). */
  scope?: 'line' | 'function';
  lines?: number[];
  kind: Kind;
  pattern: Pattern;
  inuseBytes: number;
  growthBytesPerHour: number;
  allocBytesPerHour: number;
  evidence: Evidence;
  mapImpl: MapImpl;
  confidence: number;
  advice: string;
  pods: string[];
  podCount: number;
  firstSeen?: string;
}

export interface GcStatus {
  liveHeapBytes: number;
  liveHeapGrowthBytesPerHour: number;
  gcCpuPercent: number;
  cycles: number;
}

/** One allocation site of a terminated container, at its last capture. */
export interface IncidentFindingStatus {
  function: string;
  file: string;
  line: number;
  /** The first frame in the target's main module, when it is not the site: two callers of one library line are two findings. */
  caller?: { function: string; file: string; line: number };
  kind: Kind;
  pattern: Pattern;
  inuseBytes: number;
  growthBytesPerHour: number;
  /** Growing, and at its most at the last capture (within sampling noise): still growing when the container ended. */
  growingUpToKill: boolean;
}

/** A container of a selected pod that terminated (OOMKilled, Error, ...) and was restarted. */
export interface IncidentStatus {
  id: string;
  pod: string;
  namespace: string;
  container: string;
  reason: string;
  exitCode?: number;
  time: string;
  detectedTime: string;
  restartCount: number;
  /** Restarts this incident stands for (more than 1 when several fell between two rounds: reason, exit code and time are then the last one's, the only one the pod status keeps; the evidence is the series that the first ended). Absent when `restarted` is false. */
  restarts?: number;
  /** false: the container ended and was not restarted (its pod Failed, or was evicted); absent for a restart. An operator whose CRD predates it loses only this field (pruned). */
  restarted?: false;
  verdict: Verdict;
  lastCaptureTime?: string;
  captureIds: string[];
  findings: IncidentFindingStatus[];
}

export interface MapLeakProbeStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  verdict?: Verdict;
  targetCount?: number;
  mapInuseBytes?: number;
  mapMemory?: string;
  targets?: TargetStatus[];
  targetsOmitted?: number;
  findings?: FindingStatus[];
  gc?: GcStatus;
  incidents?: IncidentStatus[];
  lastCaptureTime?: string;
  nextCaptureTime?: string;
  /** When the last memory-triggered round was queued. */
  lastTriggeredTime?: string;
  lastTrigger?: TriggerStatus;
}

/** Why the last memory-triggered round ran: figures the operator read, never the target's bytes. */
export interface TriggerStatus {
  reason: 'LiveHeapBytes' | 'MemoryLimitFraction' | 'GrowthRate';
  pod: string;
  liveHeapBytes: number;
  /** The crossed threshold: bytes, or bytes per minute for GrowthRate. */
  thresholdBytes: number;
  memoryLimitBytes?: number;
  growthBytesPerMinute?: number;
  gcCycle: number;
  /** When the crossing gctrace line was written (the container log's timestamp). */
  observedTime: string;
  /** When the triggered round's heap profile of that pod was taken (the profile's own timestamp). */
  captureTime?: string;
}

export interface MapLeakProbe {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    generation?: number;
    resourceVersion?: string;
    deletionTimestamp?: string;
    finalizers?: string[];
    creationTimestamp?: string;
  };
  spec: MapLeakProbeSpec;
  status?: MapLeakProbeStatus;
}

/** "ns/name": unambiguous, since neither part may contain a slash. */
export function probeKey(probe: Pick<MapLeakProbe, 'metadata'>): string {
  return `${probe.metadata.namespace}/${probe.metadata.name}`;
}

/** A label selector as the API's `labelSelector` query string. */
export function selectorToString(selector: LabelSelector): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) parts.push(`${key}=${value}`);
  for (const req of selector.matchExpressions ?? []) {
    const values = (req.values ?? []).join(',');
    if (req.operator === 'In') parts.push(`${req.key} in (${values})`);
    else if (req.operator === 'NotIn') parts.push(`${req.key} notin (${values})`);
    else if (req.operator === 'Exists') parts.push(req.key);
    else parts.push(`!${req.key}`);
  }
  return parts.join(',');
}

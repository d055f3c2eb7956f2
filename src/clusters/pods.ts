import { isIP } from 'node:net';
import { endIsIncident, type ContainerEnd } from '../analysis/incident.js';
import { parseMemoryQuantity } from '../api/quantity.js';
import type { KubeHttp } from './kube-http.js';
import { RFC3339 } from './log-timestamp.js';

/** The parts of a pod a capture needs, checked: a remote API server is the tenant's, and may say anything. */
export interface ListedPod {
  name: string;
  namespace: string;
  uid: string;
  podIP?: string;
  /** memoryLimitBytes: resources.limits.memory, when set and readable (for spec.triggers.memoryLimitFraction). */
  containers: { name: string; ports: { name?: string; containerPort: number }[]; memoryLimitBytes?: number }[];
  /** Per container (by name): how often it restarted and how its last instance ended, as the kubelet wrote it. */
  containerStatuses: ListedContainerStatus[];
  /** The phase it was listed for: Running, or Failed (listed with `phase`: pods whose containers ended for good). */
  phase: 'Running' | 'Failed';
  /** Why the pod itself ended, when it says: `status.reason` Evicted, or a DisruptionTarget condition's reason. */
  disruption?: string;
  /** `spec.restartPolicy` (Kubernetes' default Always when absent or not one of the three): whether an ended container comes back. */
  restartPolicy: RestartPolicy;
}

export type RestartPolicy = 'Always' | 'OnFailure' | 'Never';

/** What a restart looks like in `status.containerStatuses[]`; `lastState.terminated.message` (the program's own words) is never read. */
export interface ListedContainerStatus {
  name: string;
  restartCount: number;
  /** `<runtime>://<id>` of the running instance. */
  containerId?: string;
  lastTerminated?: ContainerTermination;
  /** `state.terminated`: the container has ended and not (yet) restarted. */
  terminated?: ContainerTermination;
}

export interface ContainerTermination {
  reason: string;
  exitCode?: number;
  finishedAt?: string;
}

export interface PodListLimits {
  /** Pods taken from the list (the first ones by name). */
  maxPods: number;
  timeoutMs: number;
  /** The phase listed (default Running). */
  phase?: 'Running' | 'Failed';
}

/** A pod object is a few KB; this bounds what a list answer may cost. */
export const POD_LIST_BYTES_PER_POD = 64 * 1024;

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const PORT_NAME = /^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$/;
const UID = /^[A-Za-z0-9-]{1,64}$/;
/** `containerd://<64 hex>`, `cri-o://...`, `docker://...`. */
const CONTAINER_ID = /^[a-z][a-z0-9-]{0,15}:\/\/[A-Za-z0-9._-]{1,128}$/;
/** The kubelet's reasons are CamelCase words (OOMKilled, Error, Completed, ContainerCannotRun). */
const TERMINATION_REASON = /^[A-Za-z][A-Za-z0-9]{0,63}$/;

/**
 * Running pods that match a selector, read as bytes with `limit` and a size
 * cap, so a list of a million pods costs no more than `maxPods` would.
 * Entries that are not well-formed pods of `namespace` are dropped and
 * counted.
 */
export async function listRunningPods(
  http: KubeHttp,
  namespace: string,
  labelSelector: string,
  limits: PodListLimits,
): Promise<{ pods: ListedPod[]; truncated: boolean; malformed: number; resourceVersion?: string }> {
  const phase = limits.phase ?? 'Running';
  const params = new URLSearchParams({ labelSelector, fieldSelector: `status.phase=${phase}`, limit: String(limits.maxPods) });
  const body = await http.get(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods?${params}`, {
    timeoutMs: limits.timeoutMs,
    maxBytes: limits.maxPods * POD_LIST_BYTES_PER_POD + 1024 * 1024,
  });
  let list: unknown;
  try {
    list = JSON.parse(body.toString('utf8'));
  } catch {
    throw new PodListError('the API server answered the pod list with something that is not JSON');
  }
  if (!isRecord(list) || !Array.isArray(list.items)) throw new PodListError('the API server answered the pod list without items');
  const items = list.items as unknown[];
  const more = isRecord(list.metadata) && typeof list.metadata.continue === 'string' && list.metadata.continue !== '';
  const pods: ListedPod[] = [];
  let malformed = 0;
  for (const item of items.slice(0, limits.maxPods)) {
    const pod = checkPod(item, namespace, phase);
    if (pod) pods.push(pod);
    else if (pod === undefined) malformed++;
  }
  // Where a watch of the same pods starts (the remote end watch): digits only, as the API server writes it.
  const resourceVersion = isRecord(list.metadata) && typeof list.metadata.resourceVersion === 'string' && /^\d{1,20}$/.test(list.metadata.resourceVersion) ? list.metadata.resourceVersion : undefined;
  return { pods, truncated: more || items.length > limits.maxPods, malformed, ...(resourceVersion ? { resourceVersion } : {}) };
}

export class PodListError extends Error {
  override readonly name = 'PodListError';
}

/** A checked pod; null when it is fine but not of the phase listed (a Running one being deleted); undefined when malformed. */
function checkPod(item: unknown, namespace: string, phase: 'Running' | 'Failed'): ListedPod | null | undefined {
  if (!isRecord(item) || !isRecord(item.metadata) || !isRecord(item.spec)) return undefined;
  const { metadata, spec } = item;
  const status = isRecord(item.status) ? item.status : {};
  if (typeof metadata.name !== 'string' || !DNS_SUBDOMAIN.test(metadata.name)) return undefined;
  if (metadata.namespace !== namespace) return undefined;
  if (typeof metadata.uid !== 'string' || !UID.test(metadata.uid)) return undefined;
  if (status.phase !== phase || (phase === 'Running' && metadata.deletionTimestamp)) return null;
  if (!Array.isArray(spec.containers)) return undefined;
  const containers: ListedPod['containers'] = [];
  for (const c of spec.containers as unknown[]) {
    if (!isRecord(c) || typeof c.name !== 'string' || !DNS_LABEL.test(c.name)) return undefined;
    const ports: ListedPod['containers'][number]['ports'] = [];
    for (const p of Array.isArray(c.ports) ? (c.ports as unknown[]) : []) {
      if (!isRecord(p) || !Number.isInteger(p.containerPort) || (p.containerPort as number) < 1 || (p.containerPort as number) > 65535) continue;
      ports.push({ containerPort: p.containerPort as number, ...(typeof p.name === 'string' && PORT_NAME.test(p.name) ? { name: p.name } : {}) });
    }
    const limits = isRecord(c.resources) && isRecord(c.resources.limits) ? c.resources.limits : {};
    const memoryLimitBytes = typeof limits.memory === 'string' ? parseMemoryQuantity(limits.memory) : undefined;
    containers.push({ name: c.name, ports, ...(memoryLimitBytes ? { memoryLimitBytes } : {}) });
  }
  const podIP = typeof status.podIP === 'string' && isIP(status.podIP) ? status.podIP : undefined;
  const containerStatuses = (Array.isArray(status.containerStatuses) ? (status.containerStatuses as unknown[]) : [])
    .slice(0, containers.length)
    .map(checkContainerStatus)
    .filter((c): c is ListedContainerStatus => c !== undefined);
  const disruption = podDisruption(status);
  const restartPolicy: RestartPolicy = spec.restartPolicy === 'Never' || spec.restartPolicy === 'OnFailure' ? spec.restartPolicy : 'Always';
  return { name: metadata.name, namespace, uid: metadata.uid, ...(podIP ? { podIP } : {}), containers, containerStatuses, phase, ...(disruption ? { disruption } : {}), restartPolicy };
}

/** `status.reason` Evicted (the kubelet's node-pressure eviction), else the reason of a True DisruptionTarget condition (API eviction, preemption, taint), checked as a termination reason. */
export function podDisruption(status: Record<string, unknown>): string | undefined {
  if (status.reason === 'Evicted') return 'Evicted';
  const conditions = Array.isArray(status.conditions) ? (status.conditions as unknown[]) : [];
  const disrupted = conditions.slice(0, 64).find((c) => isRecord(c) && c.type === 'DisruptionTarget' && c.status === 'True');
  if (!isRecord(disrupted)) return undefined;
  return typeof disrupted.reason === 'string' && TERMINATION_REASON.test(disrupted.reason) ? disrupted.reason : 'DisruptionTarget';
}

/** A container status, field by field; one that is not well-formed is left out (its pod is still captured). */
export function checkContainerStatus(item: unknown): ListedContainerStatus | undefined {
  if (!isRecord(item) || typeof item.name !== 'string' || !DNS_LABEL.test(item.name)) return undefined;
  if (!Number.isInteger(item.restartCount) || (item.restartCount as number) < 0 || (item.restartCount as number) > 1_000_000_000) return undefined;
  const containerId = typeof item.containerID === 'string' && CONTAINER_ID.test(item.containerID) ? item.containerID : undefined;
  const lastTerminated = isRecord(item.lastState) && isRecord(item.lastState.terminated) ? checkTermination(item.lastState.terminated) : undefined;
  const terminated = isRecord(item.state) && isRecord(item.state.terminated) ? checkTermination(item.state.terminated) : undefined;
  return { name: item.name, restartCount: item.restartCount as number, ...(containerId ? { containerId } : {}), ...(lastTerminated ? { lastTerminated } : {}), ...(terminated ? { terminated } : {}) };
}

/** A `terminated` container state, field by field (never its `message`: the program's own words). */
export function checkTermination(terminated: Record<string, unknown>): ContainerTermination {
  // int32, as the CRD's exitCode: one out of range would make the API server refuse the whole status.
  const exitCode = Number.isInteger(terminated.exitCode) && (terminated.exitCode as number) >= -(2 ** 31) && (terminated.exitCode as number) < 2 ** 31 ? (terminated.exitCode as number) : undefined;
  const finishedAt = typeof terminated.finishedAt === 'string' && RFC3339.test(terminated.finishedAt) && !Number.isNaN(Date.parse(terminated.finishedAt)) ? new Date(terminated.finishedAt).toISOString() : undefined;
  return {
    reason: typeof terminated.reason === 'string' && TERMINATION_REASON.test(terminated.reason) ? terminated.reason : 'Unknown',
    ...(exitCode !== undefined ? { exitCode } : {}),
    ...(finishedAt ? { finishedAt } : {}),
  };
}

/** How a pod ended on its own, as a pod watch sees it (the controller's for the local cluster, a round's bounded watch for a remote one). */
export interface PodEnd {
  podUid: string;
  /** The pod's first container: a probe without spec.container follows it. */
  firstContainer?: string;
  containers: { name: string; restartCount: number; termination: ContainerTermination }[];
  disruption?: string;
}

/** At most this many containers of one pod are read for its end (a pod has a handful). */
const MAX_END_CONTAINERS = 16;

/**
 * How a pod ended, when it did on its own: containers terminated while the
 * pod was not being deleted (a deletion's SIGTERM is no incident), or an
 * eviction. Read with the pod list's own checks (the object may come from a
 * tenant's API server).
 */
export function podEnd(item: unknown): PodEnd | undefined {
  if (!isRecord(item) || !isRecord(item.metadata)) return undefined;
  const { metadata } = item;
  const status = isRecord(item.status) ? item.status : {};
  const disruption = podDisruption(status);
  const statuses = Array.isArray(status.containerStatuses) ? (status.containerStatuses as unknown[]) : [];
  const containers = metadata.deletionTimestamp && !disruption ? [] : statuses.slice(0, MAX_END_CONTAINERS).flatMap((raw) => {
    const checked = checkContainerStatus(raw);
    const termination = checked?.terminated;
    if (!checked || !termination) return [];
    // Only ends that can be incidents: a cluster's completed Job pods cost nothing here.
    return endIsIncident({ podUid: '', container: checked.name, restartCount: checked.restartCount, termination }) ? [{ name: checked.name, restartCount: checked.restartCount, termination }] : [];
  });
  if ((containers.length === 0 && !disruption) || typeof metadata.uid !== 'string' || !UID.test(metadata.uid)) return undefined;
  const spec = isRecord(item.spec) ? item.spec : {};
  const first = Array.isArray(spec.containers) && isRecord(spec.containers[0]) ? spec.containers[0].name : undefined;
  return { podUid: metadata.uid, ...(typeof first === 'string' && DNS_LABEL.test(first) ? { firstContainer: first } : {}), containers, ...(disruption ? { disruption } : {}) };
}

/** What is noted of a pod's end for a probe that follows `container` in it: undefined when that end is no incident. */
export function endNote(end: PodEnd, container: string | undefined): ContainerEnd | undefined {
  if (!container) return undefined;
  const ended = end.containers.find((c) => c.name === container);
  const note: ContainerEnd = { podUid: end.podUid, container, restartCount: ended?.restartCount ?? 0, ...(ended ? { termination: ended.termination } : {}), ...(end.disruption ? { disruption: end.disruption } : {}) };
  return endIsIncident(note) ? note : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

import { AppsV1Api, CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { selectorToString, type LabelSelector } from '../api/types.js';
import type { PodTarget } from '../capture/proxy.js';
import { explainApiError, PluginError, type KubeContext } from './kube.js';

/** A pod to capture: where its pprof is, and its uid (symbol knowledge is scoped by it). */
export interface PodToCapture extends PodTarget {
  uid: string;
}

export interface PodSelection {
  /** pod/NAME, NAME, deployment/NAME (deploy), statefulset/NAME (sts). */
  target: string;
  container?: string;
  /** A number, or a containerPort name; default: the container's port named pprof, else 6060. */
  port?: string;
  pathPrefix: string;
}

const KINDS: Record<string, 'pod' | 'deployment' | 'statefulset'> = {
  pod: 'pod', pods: 'pod', po: 'pod',
  deployment: 'deployment', deployments: 'deployment', deploy: 'deployment',
  statefulset: 'statefulset', statefulsets: 'statefulset', sts: 'statefulset',
};
export const DEFAULT_PPROF_PORT = 6060;

/** The Running pods a target names: the pod itself, or a Deployment's or StatefulSet's pods. */
export async function resolvePods(ctx: KubeContext, selection: PodSelection): Promise<PodToCapture[]> {
  const [kindText, name] = selection.target.includes('/') ? selection.target.split('/', 2) : ['pod', selection.target];
  const kind = KINDS[(kindText ?? '').toLowerCase()];
  if (!kind || !name) throw new PluginError(`cannot analyze "${selection.target}": give pod/NAME, deployment/NAME or statefulset/NAME`);
  const { namespace } = ctx;
  const core = ctx.kc.makeApiClient(CoreV1Api);
  let pods: V1Pod[];
  if (kind === 'pod') {
    pods = [await core.readNamespacedPod({ namespace, name }).catch((err: unknown) => Promise.reject(explainApiError(err, 'get pods', namespace)))];
  } else {
    const apps = ctx.kc.makeApiClient(AppsV1Api);
    const read = kind === 'deployment' ? apps.readNamespacedDeployment({ namespace, name }) : apps.readNamespacedStatefulSet({ namespace, name });
    const workload = await read.catch((err: unknown) => Promise.reject(explainApiError(err, `get ${kind}s.apps`, namespace)));
    const selector = (workload.spec?.selector ?? {}) as LabelSelector;
    const labelSelector = selectorToString(selector);
    if (!labelSelector) throw new PluginError(`${kind}/${name} has an empty selector`);
    const list = await core.listNamespacedPod({ namespace, labelSelector }).catch((err: unknown) => Promise.reject(explainApiError(err, 'list pods', namespace)));
    pods = list.items.filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp);
    if (pods.length === 0) throw new PluginError(`${kind}/${name} has no Running pods (selector ${labelSelector})`);
  }
  return pods.map((pod) => podTarget(pod, selection));
}

function podTarget(pod: V1Pod, selection: PodSelection): PodToCapture {
  const name = pod.metadata?.name ?? '';
  const namespace = pod.metadata?.namespace ?? '';
  if (pod.status?.phase !== 'Running') throw new PluginError(`pod ${namespace}/${name} is ${pod.status?.phase ?? 'not running'}, not Running`);
  const containers = pod.spec?.containers ?? [];
  const container = selection.container ? containers.find((c) => c.name === selection.container) : containers[0];
  if (!container) throw new PluginError(`pod ${namespace}/${name} has no container ${selection.container ?? ''}`.trimEnd());
  let port: number;
  if (selection.port === undefined) {
    port = container.ports?.find((p) => p.name === 'pprof')?.containerPort ?? DEFAULT_PPROF_PORT;
  } else if (/^\d+$/.test(selection.port)) {
    port = Number(selection.port);
    if (port < 1 || port > 65535) throw new PluginError(`--port ${selection.port} is not a port number`);
  } else {
    const named = container.ports?.find((p) => p.name === selection.port)?.containerPort;
    if (named === undefined) throw new PluginError(`container ${container.name} of pod ${namespace}/${name} has no port named ${selection.port}`);
    port = named;
  }
  return { namespace, name, uid: pod.metadata?.uid ?? name, port, pathPrefix: selection.pathPrefix };
}

import type { KubeHttp } from '../clusters/kube-http.js';
import type { PprofClient } from './capture.js';
import { directPprofClient } from './direct.js';

export interface PodTarget {
  namespace: string;
  name: string;
  podIP?: string;
  port: number;
  pathPrefix: string;
}

/**
 * pprof through the API server's pod proxy: bodies are read as bytes and the
 * path is not escaped (the generated client does both wrong for pprof).
 */
export function apiServerProxyClient(http: KubeHttp, pod: PodTarget, timeoutMs: number): PprofClient {
  const base = `/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods/${encodeURIComponent(pod.name)}:${pod.port}/proxy${pod.pathPrefix.replace(/\/+$/, '')}`;
  return {
    description: `pod ${pod.namespace}/${pod.name}:${pod.port} via API server`,
    get: (path, maxBytes, timeout) => http.get(base + path, { timeoutMs: timeout ?? timeoutMs, maxBytes }),
  };
}

/** pprof at the pod IP, for an operator running inside the target's cluster network. */
export function podDirectClient(pod: PodTarget, timeoutMs: number): PprofClient {
  if (!pod.podIP) throw new Error(`pod ${pod.namespace}/${pod.name} has no IP yet`);
  const host = pod.podIP.includes(':') ? `[${pod.podIP}]` : pod.podIP;
  return directPprofClient(`http://${host}:${pod.port}${pod.pathPrefix.replace(/\/+$/, '')}`, timeoutMs);
}

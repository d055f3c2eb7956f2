import type { KubeHttp } from '../clusters/kube-http.js';
import type { PprofClient } from './capture.js';
import { directPprofClient, type DirectClientOptions } from './direct.js';

export interface PodTarget {
  namespace: string;
  name: string;
  podIP?: string;
  port: number;
  pathPrefix: string;
  /** Default http. */
  scheme?: 'http' | 'https';
}

/**
 * pprof through the API server's pod proxy: bodies are read as bytes and the
 * path is not escaped (the generated client does both wrong for pprof).
 */
export function apiServerProxyClient(http: KubeHttp, pod: PodTarget, timeoutMs: number): PprofClient {
  // `https:NAME:PORT` makes the API server speak TLS to the pod (without verifying its certificate).
  const scheme = pod.scheme === 'https' ? 'https:' : '';
  const base = `/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods/${scheme}${encodeURIComponent(pod.name)}:${pod.port}/proxy${pod.pathPrefix.replace(/\/+$/, '')}`;
  return {
    description: `pod ${pod.namespace}/${pod.name}:${pod.port} via API server`,
    get: (path, maxBytes, timeout, budget) => http.get(base + path, { timeoutMs: timeout ?? timeoutMs, maxBytes, ...(budget ? { budget: budget.hold, reserveBytes: budget.reserveBytes } : {}) }),
  };
}

/** pprof at the pod IP, for an operator running inside the target's cluster network. */
export function podDirectClient(pod: PodTarget, timeoutMs: number, options: DirectClientOptions = {}): PprofClient {
  if (!pod.podIP) throw new Error(`pod ${pod.namespace}/${pod.name} has no IP yet`);
  const host = pod.podIP.includes(':') ? `[${pod.podIP}]` : pod.podIP;
  return directPprofClient(`${pod.scheme ?? 'http'}://${host}:${pod.port}${pod.pathPrefix.replace(/\/+$/, '')}`, timeoutMs, options);
}

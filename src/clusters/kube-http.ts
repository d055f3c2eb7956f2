import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { fetchBytes, type FetchOptions } from '../capture/http.js';

/** TLS identity and headers for raw requests to an API server (bodies read as bytes). */
export interface KubeHttp {
  server: string;
  agent: https.Agent;
  headers: Record<string, string>;
  get(path: string, options: Pick<FetchOptions, 'timeoutMs' | 'maxBytes'>): Promise<Buffer>;
}

export async function kubeHttp(kc: KubeConfig): Promise<KubeHttp> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const options: https.RequestOptions = {};
  // Fills ca/cert/key and bearer-token headers (running exec plugins if any).
  await kc.applyToHTTPSOptions(options);
  const agent = new https.Agent({
    ca: options.ca,
    cert: options.cert,
    key: options.key,
    rejectUnauthorized: options.rejectUnauthorized ?? !cluster.skipTLSVerify,
    keepAlive: true,
    maxSockets: 32,
  });
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(options.headers ?? {})) if (typeof value === 'string') headers[name] = value;
  const server = cluster.server.replace(/\/+$/, '');
  return {
    server,
    agent,
    headers,
    get: (path, o) => fetchBytes(server + path, { ...o, agent, headers }),
  };
}

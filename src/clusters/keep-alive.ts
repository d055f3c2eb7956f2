import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

type AgentOptions = https.AgentOptions & { proxy?: string };
type CreateAgent = (cluster: { server?: string; proxyUrl?: string } | null, options: AgentOptions) => http.Agent;

/**
 * @kubernetes/client-node 1.4 builds a fresh, non-keep-alive agent for every
 * API call: each request is a new TLS handshake (measured by the controller
 * scale benchmark: about 1,000 per resync of 1,000 probes). This wraps the
 * KubeConfig's agent factory so calls with the same TLS identity share one
 * keep-alive agent. Proxied clusters keep the library's behaviour.
 */
export function reuseConnections(kc: KubeConfig): KubeConfig {
  const target = kc as unknown as { createAgent: CreateAgent };
  const original = target.createAgent.bind(kc);
  const agents = new Map<string, http.Agent>();
  target.createAgent = (cluster, options) => {
    if (cluster?.proxyUrl || !cluster?.server?.startsWith('https:')) return original(cluster, options);
    const key = createHash('sha256')
      .update(JSON.stringify([cluster.server, options.ca, options.cert, options.key, options.pfx, options.passphrase, options.rejectUnauthorized, options.servername].map(String)))
      .digest('hex');
    let agent = agents.get(key);
    if (!agent) {
      // Rotated credentials give a new key; keep only a few.
      if (agents.size >= 8) {
        const [oldest] = agents.keys();
        if (oldest !== undefined) agents.delete(oldest);
      }
      agent = new https.Agent({ ...options, keepAlive: true, maxSockets: 64 });
      agents.set(key, agent);
    }
    return agent;
  };
  return kc;
}

import https from 'node:https';
import { isIP } from 'node:net';
import type { AddressAllowlist } from '../clusters/address-allowlist.js';
import { allowlistedHttpAgent, allowlistedHttpsAgent } from '../clusters/dial-guard.js';
import { CaptureError } from './errors.js';
import { fetchBytes } from './http.js';
import type { PprofClient } from './capture.js';

/** How to trust an https:// target. */
export interface TargetTls {
  /** CA certificates (PEM) to trust instead of the system's. */
  ca?: Buffer | string;
  /** Skip verification: only when the user asked for it. */
  insecure?: boolean;
  /** The name to verify the certificate against (and send as SNI), when not the URL's host. */
  serverName?: string;
}

export interface DirectClientOptions {
  /** Sent with every request, e.g. Authorization: the target's credentials, never logged. */
  headers?: Record<string, string>;
  tls?: TargetTls;
  /**
   * Only these addresses are dialled (a remote cluster's pod IPs are the
   * tenant's data: --remote-pod-cidrs). An IP outside fails the target
   * before any connection; a name is checked as it is dialled.
   */
  allowedAddresses?: AddressAllowlist;
}

/** The tenant named the pod IP (its remote API server listed it), so saying it is refused tells it nothing new; the IP itself is not echoed. */
export const POD_ADDRESS_NOT_ALLOWED = "the pod IP is not an address this operator may reach in remote clusters (--remote-pod-cidrs)";

/** Talks to net/http/pprof at a URL, e.g. http://127.0.0.1:6060/debug/pprof. */
export function directPprofClient(baseUrl: string, timeoutMs: number, options: DirectClientOptions = {}): PprofClient {
  const base = baseUrl.replace(/\/+$/, '');
  const headers = options.headers ?? {};
  const allowed = options.allowedAddresses;
  const tls: https.AgentOptions = {
    ...(options.tls?.ca ? { ca: options.tls.ca } : {}),
    ...(options.tls?.serverName ? { servername: options.tls.serverName } : {}),
    rejectUnauthorized: !options.tls?.insecure,
  };
  const secure = base.startsWith('https:');
  const agent = allowed ? (secure ? allowlistedHttpsAgent(allowed, tls) : allowlistedHttpAgent(allowed, {})) : secure ? new https.Agent(tls) : undefined;
  const host = hostOf(base);
  // Refused as written, with operator words: no socket is opened, nothing is sent (the agent checks again at the dial).
  const refused = allowed && host !== undefined && isIP(host) && !allowed.allows(host);
  return {
    description: base,
    get: (path, maxBytes, timeout, budget) =>
      refused
        ? Promise.reject(new CaptureError('BadUrl', POD_ADDRESS_NOT_ALLOWED))
        : fetchBytes(base + path, { timeoutMs: timeout ?? timeoutMs, maxBytes, headers, ...(agent ? { agent } : {}), ...(budget ? { budget: budget.hold, reserveBytes: budget.reserveBytes } : {}) }),
  };
}

function hostOf(url: string): string | undefined {
  try {
    return new URL(url).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return undefined;
  }
}

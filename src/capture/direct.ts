import https from 'node:https';
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
}

/** Talks to net/http/pprof at a URL, e.g. http://127.0.0.1:6060/debug/pprof. */
export function directPprofClient(baseUrl: string, timeoutMs: number, options: DirectClientOptions = {}): PprofClient {
  const base = baseUrl.replace(/\/+$/, '');
  const headers = options.headers ?? {};
  const agent = base.startsWith('https:')
    ? new https.Agent({
        ...(options.tls?.ca ? { ca: options.tls.ca } : {}),
        ...(options.tls?.serverName ? { servername: options.tls.serverName } : {}),
        rejectUnauthorized: !options.tls?.insecure,
      })
    : undefined;
  return {
    description: base,
    get: (path, maxBytes, timeout, budget) => fetchBytes(base + path, { timeoutMs: timeout ?? timeoutMs, maxBytes, headers, ...(agent ? { agent } : {}), ...(budget ? { budget: budget.hold, reserveBytes: budget.reserveBytes } : {}) }),
  };
}

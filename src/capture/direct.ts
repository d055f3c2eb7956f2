import { fetchBytes } from './http.js';
import type { PprofClient } from './capture.js';

/** Talks to net/http/pprof at a URL, e.g. http://127.0.0.1:6060/debug/pprof. */
export function directPprofClient(baseUrl: string, timeoutMs: number): PprofClient {
  const base = baseUrl.replace(/\/+$/, '');
  return {
    description: base,
    get: (path, maxBytes, timeout) => fetchBytes(base + path, { timeoutMs: timeout ?? timeoutMs, maxBytes }),
  };
}

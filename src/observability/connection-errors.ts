import type { Counter, Gauge } from 'prom-client';
import type { Logger } from './log.js';

/** What the operator depends on over the network. */
export type Dependency = 'redis' | 'kubernetes';

/** When repeats of one dependency's failure are logged: first at once, then after `firstRepeatMs`, doubling up to `maxRepeatMs`. */
export interface ReportBackoff {
  firstRepeatMs: number;
  maxRepeatMs: number;
}

/** 30 s, 1 min, 2 min, 4 min, then every 5 min while it lasts: a handful of lines an hour, not one per retry. */
export const DEFAULT_REPORT_BACKOFF: ReportBackoff = { firstRepeatMs: 30_000, maxRepeatMs: 5 * 60_000 };

interface Outage {
  since: number;
  /** Components whose last report was a failure: the outage ends when none is left. */
  failing: Set<string>;
  nextLogAt: number;
  repeatMs: number;
  /** Failures since the last line, per component. */
  suppressed: Map<string, number>;
  total: number;
}

/**
 * Connection errors of one process, logged with backoff and counted.
 *
 * Every client retries on its own schedule (ioredis reconnects, BullMQ's
 * blocking connection, leader election every 2 s, watches), so one outage
 * arrives as dozens of errors a minute. Per dependency the first failure is
 * logged, repeats at most once per growing interval with the count of those
 * not logged, and the end of the outage (every failing component has
 * succeeded again) as one "recovered" line. Every failure is counted in
 * `mapleak_connection_errors_total{component,kind}`;
 * `mapleak_dependency_reachable{dependency}` is 0 during an outage.
 */
export class ConnectionErrorReporter {
  private readonly outages = new Map<Dependency, Outage>();

  constructor(
    private readonly log: Logger,
    private readonly metrics: { connectionErrors: Counter<'component' | 'kind'>; dependencyReachable: Gauge<'dependency'> },
    private readonly backoff: ReportBackoff = DEFAULT_REPORT_BACKOFF,
    private readonly now: () => number = Date.now,
  ) {
    for (const dependency of ['redis', 'kubernetes'] as const) metrics.dependencyReachable.set({ dependency }, 1);
  }

  /** Whether `dependency` is in an outage now. */
  failing(dependency: Dependency): boolean {
    return this.outages.has(dependency);
  }

  /** Whether Redis refuses writes now (maxmemory with noeviction): reachable, but nothing can be kept or scheduled. */
  storeFull(): boolean {
    return this.outages.get('redis')?.failing.has(STORE_WRITES) ?? false;
  }

  /** A write to Redis went through (a job completed, a capture was stored): a store-full outage is over. */
  writesSucceeded(): void {
    this.success('redis', STORE_WRITES);
  }

  failure(dependency: Dependency, component: string, err: unknown): void {
    // A refused write is Redis' outage whoever met it (a round, BullMQ's scripts, the queue), and ends with the next write that goes through.
    if (isStoreFull(err)) {
      dependency = 'redis';
      component = STORE_WRITES;
    }
    const kind = errorKind(err);
    this.metrics.connectionErrors.inc({ component, kind });
    const now = this.now();
    const outage = this.outages.get(dependency);
    if (!outage) {
      this.outages.set(dependency, { since: now, failing: new Set([component]), nextLogAt: now + this.backoff.firstRepeatMs, repeatMs: this.backoff.firstRepeatMs, suppressed: new Map(), total: 1 });
      this.metrics.dependencyReachable.set({ dependency }, 0);
      this.log.warn(`${dependency} unreachable`, { dependency, component, kind, error: errorText(err), nextReportInMs: this.backoff.firstRepeatMs });
      return;
    }
    outage.failing.add(component);
    outage.total++;
    if (now < outage.nextLogAt) {
      outage.suppressed.set(component, (outage.suppressed.get(component) ?? 0) + 1);
      return;
    }
    const suppressed = Object.fromEntries(outage.suppressed);
    outage.suppressed.clear();
    outage.repeatMs = Math.min(outage.repeatMs * 2, this.backoff.maxRepeatMs);
    outage.nextLogAt = now + outage.repeatMs;
    this.log.warn(`${dependency} still unreachable`, {
      dependency,
      component,
      kind,
      error: errorText(err),
      forMs: now - outage.since,
      failures: outage.total,
      suppressed,
      nextReportInMs: outage.repeatMs,
    });
  }

  /** `component` reached `dependency`; the outage ends once no component is failing. */
  success(dependency: Dependency, component: string): void {
    const outage = this.outages.get(dependency);
    if (!outage || !outage.failing.delete(component) || outage.failing.size > 0) return;
    this.outages.delete(dependency);
    this.metrics.dependencyReachable.set({ dependency }, 1);
    this.log.info(`${dependency} recovered`, { dependency, component, afterMs: this.now() - outage.since, failures: outage.total, suppressed: Object.fromEntries(outage.suppressed) });
  }
}

/** The component of a Redis that answers but refuses writes (OOM): no reconnect ends it, a write that goes through does. */
const STORE_WRITES = 'writes';

/**
 * Redis refused a write for want of memory: `OOM command not allowed when
 * used memory > 'maxmemory'` (maxmemory with noeviction), directly, from a
 * script, or as the EXECABORT of a MULTI whose queued command it refused.
 * Only Redis' replies (ioredis' ReplyError) count: other errors can quote a
 * target's bytes.
 */
export function isStoreFull(err: unknown): boolean {
  const e = err as { name?: unknown; message?: unknown; previousErrors?: unknown } | undefined;
  if (!e || typeof e !== 'object' || typeof e.message !== 'string') return false;
  if (e.message.startsWith('OOM command not allowed')) return true;
  if (e.name !== 'ReplyError') return false;
  if (/\bOOM command not allowed\b/.test(e.message) || e.message.startsWith('EXECABORT')) return true;
  return Array.isArray(e.previousErrors) && e.previousErrors.some(isStoreFull);
}

/** Error kinds with bounded cardinality (metric labels): a socket error code, an HTTP status class, or `other`. */
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'ECONNABORTED', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET']);

const HTTP_STATUSES = new Set([401, 403, 404, 409, 429, 503]);

export function errorKind(err: unknown): string {
  const e = err as { code?: unknown; statusCode?: unknown; name?: unknown; message?: unknown; cause?: unknown } | undefined;
  if (!e || typeof e !== 'object') return 'other';
  if (isStoreFull(err)) return 'oom';
  if (typeof e.code === 'string' && SOCKET_CODES.has(e.code)) return e.code;
  const status = typeof e.statusCode === 'number' ? e.statusCode : typeof e.code === 'number' ? e.code : undefined;
  if (status !== undefined && status >= 100 && status < 600) return HTTP_STATUSES.has(status) ? `http-${status}` : `http-${Math.floor(status / 100)}xx`;
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'timeout';
  const message = typeof e.message === 'string' ? e.message : '';
  for (const code of SOCKET_CODES) if (message.includes(code)) return code;
  if (/connection is closed|socket closed|stream isn't writeable/i.test(message)) return 'closed';
  if (e.cause) return errorKind(e.cause);
  return 'other';
}

/** Kinds that say the server could not be reached or could not serve (rather than refusing what was asked); a full Redis cannot serve any write. */
const UNAVAILABLE_KINDS = new Set(['closed', 'timeout', 'oom', 'http-5xx', 'http-503', 'http-429', ...SOCKET_CODES]);

/** An error of reaching the server (socket, timeout, closed connection) or of a server unable to serve (5xx, 429, a full Redis), not a refusal. */
export function isConnectionError(err: unknown): boolean {
  return UNAVAILABLE_KINDS.has(errorKind(err)) || (err as { name?: unknown })?.name === 'MaxRetriesPerRequestError';
}

/**
 * The error's message, at most 200 characters and first line only: an
 * API client's error can carry a whole response body.
 */
export function errorText(err: unknown): string {
  const message = err instanceof Error ? err.message : typeof err === 'string' ? err : String((err as { message?: unknown })?.message ?? 'unknown error');
  return (message.split('\n', 1)[0] ?? '').slice(0, 200);
}

import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { ConnectionErrorReporter } from '../observability/connection-errors.js';
import type { Logger } from '../observability/log.js';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

/** client-go's defaults: 15 s lease > 10 s renew deadline > 1.2 × 2 s retry. */
/** A release that conflicts is read and tried again this many times in all. */
const RELEASE_TRIES = 3;

export const DEFAULT_LEASE_TIMING = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

const isCode = (err: unknown, code: number): boolean => (err as { code?: number }).code === code;

/**
 * Lease-based leader election with client-go semantics: followers time the
 * lease on their own clock from the last change they observed (never trust
 * another machine's clock), updates carry the resourceVersion so two
 * candidates cannot both win, and a leader that cannot renew within the
 * deadline steps down.
 */
export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private observed?: { record: string; at: number };
  private leading = false;
  private lastRenew = 0;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  /** The attempt in flight, if any: stop() gives it a retry period to land, so the release reads the lease after it. */
  private attempt?: Promise<void>;

  constructor(
    kc: KubeConfig,
    private readonly options: LeaderElectionOptions,
    private readonly callbacks: { onStartedLeading: () => Promise<void> | void; onStoppedLeading: () => Promise<void> | void },
    private readonly log: Logger,
    /** Failed attempts go here (logged with backoff) instead of one line each. */
    private readonly connectionErrors?: ConnectionErrorReporter,
  ) {
    this.api = kc.makeApiClient(CoordinationV1Api);
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.stopped = false;
    this.run();
  }

  private run(): void {
    this.attempt = this.tick().finally(() => (this.attempt = undefined));
  }

  private schedule(): void {
    if (!this.stopped) this.timer = setTimeout(() => this.run(), this.options.retryPeriodMs);
  }

  private async tick(): Promise<void> {
    try {
      const acquired = await this.tryAcquireOrRenew();
      this.connectionErrors?.success('kubernetes', 'leader-election');
      if (acquired) {
        this.lastRenew = Date.now();
        if (!this.leading) {
          this.leading = true;
          this.log.info('became leader', { lease: `${this.options.namespace}/${this.options.name}`, identity: this.options.identity });
          // Not awaited: starting waits on Redis, and renewing must not wait on
          // it, or the lease lapses while this process still acts as leader.
          void this.startLeading();
        }
      } else if (this.leading && Date.now() - this.lastRenew > this.options.renewDeadlineMs) {
        await this.stepDown('could not renew the lease within the deadline');
      }
    } catch (err) {
      if (this.connectionErrors) this.connectionErrors.failure('kubernetes', 'leader-election', err);
      else this.log.warn('leader election attempt failed', { error: (err as Error).message });
      if (this.leading && Date.now() - this.lastRenew > this.options.renewDeadlineMs) await this.stepDown('API server unreachable past the renew deadline');
    }
    this.schedule();
  }

  private async startLeading(): Promise<void> {
    try {
      await this.callbacks.onStartedLeading();
    } catch (err) {
      this.log.error('starting to lead failed', { error: (err as Error).message });
    }
  }

  private async stepDown(why: string): Promise<void> {
    this.leading = false;
    this.log.warn('lost leadership', { why });
    await this.callbacks.onStoppedLeading();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity, leaseDurationMs } = this.options;
    const now = new Date();
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (!isCode(err, 404)) throw err;
      try {
        await this.api.createNamespacedLease({
          namespace,
          body: {
            metadata: { name, namespace },
            spec: { holderIdentity: identity, leaseDurationSeconds: Math.ceil(leaseDurationMs / 1000), acquireTime: micro(now), renewTime: micro(now), leaseTransitions: 0 },
          },
        });
        return true;
      } catch (createErr) {
        if (isCode(createErr, 409)) return false;
        throw createErr;
      }
    }
    const spec = lease.spec ?? {};
    const record = JSON.stringify([spec.holderIdentity, spec.renewTime, spec.leaseTransitions]);
    if (this.observed?.record !== record) this.observed = { record, at: Date.now() };
    const holder = spec.holderIdentity;
    const expired = Date.now() - this.observed.at > (spec.leaseDurationSeconds ?? leaseDurationMs / 1000) * 1000;
    if (holder && holder !== identity && !expired) return false;

    const takingOver = holder !== identity;
    try {
      await this.api.replaceNamespacedLease({
        name,
        namespace,
        body: {
          ...lease,
          spec: {
            ...spec,
            holderIdentity: identity,
            leaseDurationSeconds: Math.ceil(leaseDurationMs / 1000),
            renewTime: micro(now),
            ...(takingOver ? { acquireTime: micro(now), leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
          },
        },
      });
      return true;
    } catch (err) {
      if (isCode(err, 409)) return false; // someone else wrote first
      throw err;
    }
  }

  /**
   * Stops campaigning; a leader releases the lease so a follower takes over
   * at once. A renewal in flight can land between the release's read and
   * its write: the release then conflicts (409) and reads the lease again
   * (a renewal landing after the release conflicts instead, and fails). The
   * attempt in flight gets a retry period to land first; an API server that
   * does not answer does not hold the stop longer than that.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.attempt) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.attempt, new Promise<void>((resolve) => (timer = setTimeout(resolve, this.options.retryPeriodMs)))]);
      clearTimeout(timer);
    }
    if (!this.leading) return;
    this.leading = false;
    for (let tries = 1; ; tries++) {
      try {
        await this.release();
        break;
      } catch (err) {
        if (isCode(err, 409) && tries < RELEASE_TRIES) continue;
        this.log.warn('could not release the lease', { error: (err as Error).message });
        break;
      }
    }
    await this.callbacks.onStoppedLeading();
  }

  private async release(): Promise<void> {
    const lease = await this.api.readNamespacedLease({ name: this.options.name, namespace: this.options.namespace });
    if (lease.spec?.holderIdentity !== this.options.identity) return;
    await this.api.replaceNamespacedLease({
      name: this.options.name,
      namespace: this.options.namespace,
      body: { ...lease, spec: { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: micro(new Date()) } },
    });
  }
}

/** Lease times are MicroTime: serialised with microseconds, as the API requires. */
function micro(date: Date): V1MicroTime {
  return new V1MicroTime(date.getTime());
}

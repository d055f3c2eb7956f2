import { CaptureError } from './errors.js';

/**
 * A process-wide budget of answer bytes held at once (a counting semaphore
 * in bytes), shared by every capture of one worker: however many captures
 * run, the answers they are reading and holding never sum past `limit`.
 * Shared fairly between tenants (the operator: namespaces): a reader whose
 * tenant holds nothing, or stays within an even share of the budget among
 * the tenants holding or waiting, goes before the others' waiting readers
 * when its bytes fit, so one namespace's large answers never make another
 * one's small captures wait; the head of the line is served as soon as it
 * fits. Within a tenant, first come, first served. A reader that cannot get its bytes waits,
 * bounded by its own deadline, then fails that target as `Busy`; one answer
 * larger than the whole budget fails at once as `TooLarge`.
 */
export class ByteBudget {
  private held = 0;
  private readonly heldBy = new Map<string, number>();
  private readonly waiting: Waiter[] = [];
  /** Highest `held` seen (for tests and metrics). */
  peak = 0;

  constructor(readonly limit: number) {
    if (!(limit > 0)) throw new Error('a byte budget needs a positive limit');
  }

  get inUse(): number {
    return this.held;
  }

  /** Bytes one tenant holds. */
  heldByTenant(tenant: string): number {
    return this.heldBy.get(tenant) ?? 0;
  }

  /** Takes `bytes` now if they are free and no earlier reader of the tenant waits; past others' waiting readers only within its share. */
  tryTake(bytes: number, tenant = ''): boolean {
    if (!this.fits(bytes) || this.waiting.some((w) => w.tenant === tenant)) return false;
    if (this.waiting.length > 0 && !this.withinShare(bytes, tenant)) return false;
    this.add(bytes, tenant);
    return true;
  }

  /** Takes `bytes`, waiting at most until `deadline` (ms since the epoch); `what` names the answer for messages. */
  take(bytes: number, deadline: number, what: string, tenant = ''): Promise<void> {
    if (bytes > this.limit) return Promise.reject(tooLarge(what, bytes, this.limit));
    if (this.tryTake(bytes, tenant)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { bytes, tenant, resolve, timer: undefined };
      // No deadline (Infinity): wait as long as it takes.
      if (Number.isFinite(deadline)) {
        waiter.timer = setTimeout(() => {
          const at = this.waiting.indexOf(waiter);
          if (at >= 0) this.waiting.splice(at, 1);
          reject(new CaptureError('Busy', `${what}: the worker's budget of in-flight answer bytes (${this.limit}) stayed taken by other captures until this capture's deadline`));
          this.wake();
        }, Math.max(0, deadline - Date.now()));
      }
      this.waiting.push(waiter);
    });
  }

  /** Gives bytes back (never more than were taken) and wakes the waiters they fit. */
  give(bytes: number, tenant = ''): void {
    const given = Math.min(bytes, this.heldBy.get(tenant) ?? 0);
    this.held = Math.max(0, this.held - given);
    const left = (this.heldBy.get(tenant) ?? 0) - given;
    if (left > 0) this.heldBy.set(tenant, left);
    else this.heldBy.delete(tenant);
    this.wake();
  }

  private fits(bytes: number): boolean {
    return this.held + bytes <= this.limit;
  }

  /**
   * Whether `tenant` holds nothing, or would hold at most an even share
   * among the tenants holding or waiting (max-min fair: a tenant that asks
   * less leaves the rest to others).
   */
  private withinShare(bytes: number, tenant: string): boolean {
    const mine = this.heldBy.get(tenant) ?? 0;
    if (mine === 0) return true;
    const tenants = new Set(this.heldBy.keys()).add(tenant);
    for (const w of this.waiting) tenants.add(w.tenant);
    return mine + bytes <= this.limit / tenants.size;
  }

  private add(bytes: number, tenant: string): void {
    this.held += bytes;
    this.heldBy.set(tenant, (this.heldBy.get(tenant) ?? 0) + bytes);
    if (this.held > this.peak) this.peak = this.held;
  }

  /** Serves waiters while one may take its bytes (nextToServe), each grant changing the shares. */
  private wake(): void {
    for (let i = this.nextToServe(); i >= 0; i = this.nextToServe()) {
      const [waiter] = this.waiting.splice(i, 1) as [Waiter];
      clearTimeout(waiter.timer);
      this.add(waiter.bytes, waiter.tenant);
      waiter.resolve();
    }
  }

  /**
   * The first waiter, in order, whose bytes fit and keep its tenant within
   * its share, with no earlier waiter of its own; failing that the head of
   * the line if it fits, so that every reader is served in turn at last.
   */
  private nextToServe(): number {
    for (let i = 0; i < this.waiting.length; i++) {
      const { bytes, tenant } = this.waiting[i] as Waiter;
      if (!this.fits(bytes) || this.waiting.slice(0, i).some((w) => w.tenant === tenant)) continue;
      if (this.withinShare(bytes, tenant)) return i;
    }
    const head = this.waiting[0];
    return head && this.fits(head.bytes) ? 0 : -1;
  }
}

interface Waiter {
  bytes: number;
  tenant: string;
  resolve: () => void;
  timer: NodeJS.Timeout | undefined;
}

function tooLarge(what: string, bytes: number, limit: number): CaptureError {
  return new CaptureError('TooLarge', `${what}: ${bytes} bytes are more than the worker's whole budget of in-flight answer bytes (${limit})`);
}

/** What one capture took from a budget: given back at once when the capture ends, whatever happened. */
export class BudgetHold {
  private bytes = 0;

  constructor(
    readonly budget: ByteBudget,
    /** When waiting for bytes gives up (ms since the epoch): the capture's deadline. */
    readonly deadline: number,
    /** Whose capture this is (ByteBudget's fair share). */
    readonly tenant = '',
  ) {}

  get held(): number {
    return this.bytes;
  }

  tryTake(bytes: number): boolean {
    if (!this.budget.tryTake(bytes, this.tenant)) return false;
    this.bytes += bytes;
    return true;
  }

  async take(bytes: number, what: string): Promise<void> {
    await this.budget.take(bytes, this.deadline, what, this.tenant);
    this.bytes += bytes;
  }

  give(bytes: number): void {
    const given = Math.min(bytes, this.bytes);
    this.bytes -= given;
    this.budget.give(given, this.tenant);
  }

  release(): void {
    this.give(this.bytes);
  }
}

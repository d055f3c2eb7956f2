import { CaptureError } from './errors.js';

/**
 * A process-wide budget of answer bytes held at once (a counting semaphore
 * in bytes), shared by every capture of one worker: however many captures
 * run, the answers they are reading and holding never sum past `limit`.
 * A reader that cannot get its bytes waits (first come, first served),
 * bounded by its own deadline, then fails that target as `Busy`; one answer
 * larger than the whole budget fails at once as `TooLarge`.
 */
export class ByteBudget {
  private held = 0;
  private readonly waiting: Waiter[] = [];
  /** Highest `held` seen (for tests and metrics). */
  peak = 0;

  constructor(readonly limit: number) {
    if (!(limit > 0)) throw new Error('a byte budget needs a positive limit');
  }

  get inUse(): number {
    return this.held;
  }

  /** Takes `bytes` now if they are free and nobody waits before us. */
  tryTake(bytes: number): boolean {
    if (this.waiting.length > 0 || this.held + bytes > this.limit) return false;
    this.add(bytes);
    return true;
  }

  /** Takes `bytes`, waiting at most until `deadline` (ms since the epoch); `what` names the answer for messages. */
  take(bytes: number, deadline: number, what: string): Promise<void> {
    if (bytes > this.limit) return Promise.reject(tooLarge(what, bytes, this.limit));
    if (this.tryTake(bytes)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { bytes, resolve, timer: undefined };
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
  give(bytes: number): void {
    this.held = Math.max(0, this.held - bytes);
    this.wake();
  }

  private add(bytes: number): void {
    this.held += bytes;
    if (this.held > this.peak) this.peak = this.held;
  }

  private wake(): void {
    while (this.waiting.length > 0) {
      const first = this.waiting[0] as Waiter;
      if (this.held + first.bytes > this.limit) return;
      this.waiting.shift();
      clearTimeout(first.timer);
      this.add(first.bytes);
      first.resolve();
    }
  }
}

interface Waiter {
  bytes: number;
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
  ) {}

  get held(): number {
    return this.bytes;
  }

  tryTake(bytes: number): boolean {
    if (!this.budget.tryTake(bytes)) return false;
    this.bytes += bytes;
    return true;
  }

  async take(bytes: number, what: string): Promise<void> {
    await this.budget.take(bytes, this.deadline, what);
    this.bytes += bytes;
  }

  give(bytes: number): void {
    const given = Math.min(bytes, this.bytes);
    this.bytes -= given;
    this.budget.give(given);
  }

  release(): void {
    this.give(this.bytes);
  }
}

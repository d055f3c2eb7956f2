/** Thrown when every review slot is taken and the waiting line is full. */
export class ReviewsBusyError extends Error {
  constructor() {
    super('too many access reviews in flight');
    this.name = 'ReviewsBusyError';
  }
}

/**
 * At most `maxInFlight` calls at once, at most `maxWaiting` queued behind
 * them; beyond that a call fails at once, so a flood of requests can neither
 * pile up reviews at the API server nor queue without bound here.
 */
export class ConcurrencyLimit {
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    readonly maxInFlight: number,
    readonly maxWaiting: number,
  ) {
    if (!(maxInFlight >= 1)) throw new RangeError('maxInFlight must be at least 1');
    if (!(maxWaiting >= 0)) throw new RangeError('maxWaiting must not be negative');
  }

  get active(): number {
    return this.inFlight;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.inFlight >= this.maxInFlight) {
      if (this.waiting.length >= this.maxWaiting) throw new ReviewsBusyError();
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.inFlight++;
    }
    try {
      return await task();
    } finally {
      // Hand the slot straight to the next waiter, or give it back.
      const next = this.waiting.shift();
      if (next) next();
      else this.inFlight--;
    }
  }
}

/**
 * A keyed work queue like client-go's: a key is queued once however often
 * it is added, is never processed by two workers at once, and failed keys
 * come back with exponential backoff.
 */
export class WorkQueue {
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly waiting: (() => void)[] = [];
  private stopped = false;

  constructor(
    private readonly baseDelayMs = 500,
    private readonly maxDelayMs = 60_000,
  ) {}

  add(key: string): void {
    if (this.stopped) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    this.queued.add(key);
    this.waiting.shift()?.();
  }

  addAfter(key: string, delayMs: number): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.add(key);
    }, delayMs);
    this.timers.add(timer);
  }

  /**
   * Processes keys with `lanes` workers until stop(); `handle` throwing
   * requeues the key with backoff. One key is never in two lanes at once.
   */
  async run(handle: (key: string) => Promise<void>, onError: (key: string, err: unknown) => void, lanes = 1): Promise<void> {
    await Promise.all(Array.from({ length: lanes }, () => this.lane(handle, onError)));
  }

  private async lane(handle: (key: string) => Promise<void>, onError: (key: string, err: unknown) => void): Promise<void> {
    while (!this.stopped) {
      const key = this.queued.values().next().value;
      if (key === undefined) {
        await new Promise<void>((resolve) => this.waiting.push(resolve));
        continue;
      }
      this.queued.delete(key);
      this.processing.add(key);
      try {
        await handle(key);
        this.failures.delete(key);
      } catch (err) {
        const failures = (this.failures.get(key) ?? 0) + 1;
        this.failures.set(key, failures);
        onError(key, err);
        this.addAfter(key, Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (failures - 1)));
      } finally {
        this.processing.delete(key);
        if (this.dirty.delete(key)) this.add(key);
      }
    }
  }

  get length(): number {
    return this.queued.size;
  }

  stop(): void {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const wake of this.waiting.splice(0)) wake();
  }
}

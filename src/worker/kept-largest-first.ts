/**
 * What a thread holds for a later request, by request id, within a bound on
 * the total of `sizeOf`: past the bound the largest is dropped (the newcomer
 * too, if it is the largest), so small ones never make room for big ones.
 */
export class KeptLargestFirst<T> {
  private readonly kept = new Map<number, T>();
  private total = 0;

  constructor(
    readonly bound: number,
    private readonly sizeOf: (value: T) => number,
  ) {}

  /** Keeps `value` under `id`; false when it is the one dropped to stay within the bound. */
  keep(id: number, value: T): boolean {
    this.kept.set(id, value);
    this.total += this.sizeOf(value);
    while (this.total > this.bound) {
      let largest = id;
      let largestSize = this.sizeOf(value);
      for (const [other, v] of this.kept) {
        const size = this.sizeOf(v);
        if (size > largestSize) [largest, largestSize] = [other, size];
      }
      this.take(largest);
    }
    return this.kept.has(id);
  }

  /** The value kept under `id`, let go; undefined when it was dropped (or never kept). */
  take(id: number): T | undefined {
    const value = this.kept.get(id);
    if (value !== undefined) {
      this.kept.delete(id);
      this.total -= this.sizeOf(value);
    }
    return value;
  }
}

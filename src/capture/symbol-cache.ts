import type { SymbolTable } from '../pprof/symbols.js';

/**
 * Resolved PCs per binary. PCs are stable for one build, so a process's
 * symbols are asked for once and reused by every later capture (and by
 * every replica of the same image). Bounded LRU over binaries.
 */
export class SymbolCache {
  private readonly byBinary = new Map<string, SymbolTable>();

  constructor(private readonly maxBinaries = 64) {}

  table(binaryKey: string): SymbolTable {
    let table = this.byBinary.get(binaryKey);
    if (table) {
      this.byBinary.delete(binaryKey);
    } else {
      table = new Map();
      if (this.byBinary.size >= this.maxBinaries) {
        const oldest = this.byBinary.keys().next().value;
        if (oldest !== undefined) this.byBinary.delete(oldest);
      }
    }
    this.byBinary.set(binaryKey, table);
    return table;
  }

  /** PCs of `pcs` that this binary's table lacks. */
  missing(binaryKey: string, pcs: readonly number[]): number[] {
    const table = this.table(binaryKey);
    return pcs.filter((pc) => !table.has(pc));
  }
}

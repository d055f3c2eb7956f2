import type { HiddenFrameTable } from '../pprof/hidden-frames.js';
import type { SymbolTable } from '../pprof/symbols.js';

/** What captures have taught about one binary of one target. */
export interface BinaryKnowledge {
  /** PC (return address - 1) → function name, from /symbol. */
  symbols: SymbolTable;
  /** Record key → the hidden runtime frames debug=1 showed for it. */
  hiddenFrames: HiddenFrameTable;
  /** When debug=1 was last asked for (ms since the epoch), answered or not. */
  lastDebug1At: number | undefined;
}

/**
 * Knowledge per binary. PCs and stacks are stable for one build, so a
 * process's symbols and hidden frames are asked for once and reused by
 * every later capture. Bounded LRU over binaries and over the records
 * they hold in all (a target cannot grow it without limit).
 */
export class BinaryKnowledgeCache {
  private readonly byBinary = new Map<string, BinaryKnowledge>();

  constructor(
    private readonly maxBinaries = 64,
    private readonly maxEntries = 1_000_000,
  ) {}

  binary(binaryKey: string): BinaryKnowledge {
    let knowledge = this.byBinary.get(binaryKey);
    if (knowledge) {
      this.byBinary.delete(binaryKey);
    } else {
      knowledge = { symbols: new Map(), hiddenFrames: new Map(), lastDebug1At: undefined };
      if (this.byBinary.size >= this.maxBinaries) this.evictOldest();
    }
    this.byBinary.set(binaryKey, knowledge);
    return knowledge;
  }

  /** After learning: drop the least recently used binaries until within the entry budget. */
  trim(): void {
    let entries = 0;
    for (const k of this.byBinary.values()) entries += k.symbols.size + k.hiddenFrames.size;
    while (entries > this.maxEntries && this.byBinary.size > 1) {
      const evicted = this.evictOldest();
      entries -= evicted ? evicted.symbols.size + evicted.hiddenFrames.size : 0;
    }
    const only = [...this.byBinary.values()][0];
    if (this.byBinary.size === 1 && only && only.symbols.size + only.hiddenFrames.size > this.maxEntries) {
      only.hiddenFrames.clear();
      only.symbols.clear();
    }
  }

  private evictOldest(): BinaryKnowledge | undefined {
    const oldest = this.byBinary.keys().next().value;
    if (oldest === undefined) return undefined;
    const knowledge = this.byBinary.get(oldest);
    this.byBinary.delete(oldest);
    return knowledge;
  }
}

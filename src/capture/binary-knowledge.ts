import type { Debug1Heap } from '../pprof/debug1.js';
import { learnHiddenFrames, type HiddenFrameTable } from '../pprof/hidden-frames.js';
import type { SymbolTable } from '../pprof/symbols.js';

/** What captures have taught about one binary of one target. */
export interface BinaryKnowledge {
  /** PC (return address - 1) → function name, from /symbol. */
  symbols: SymbolTable;
  /** Record key → the hidden runtime frames debug=1 showed for it. */
  hiddenFrames: HiddenFrameTable;
  /** When debug=1 was last asked for (ms since the epoch), answered or not. */
  lastDebug1At: number | undefined;
  /**
   * Until when (ms since the epoch) /symbol is not asked: it failed, timed
   * out or named none of the PCs asked, so asking again on every capture
   * would only cost the worker's time.
   */
  symbolsRefusedUntil: number | undefined;
}

/**
 * When one target (a pod, by its verified scope) was last asked the costly
 * questions. A profile names its own build id, so a target claiming a new
 * one on every answer would start each binary's pace afresh: debug=1 and
 * /symbol are paced per target as well as per binary.
 */
export type TargetPace = Pick<BinaryKnowledge, 'lastDebug1At' | 'symbolsRefusedUntil'>;

/**
 * Targets whose pace is remembered, least recently captured forgotten
 * first: a forgotten target is asked again at most once. ~100 bytes each,
 * and well above a worker's targets at the chart's ceilings.
 */
const MAX_PACED_TARGETS = 16_384;

export interface KnowledgeLimits {
  /** Bytes all binaries' knowledge may take (names, record keys, frame tables). */
  maxBytes: number;
  /** Bytes one tenant's binaries may take: past it, only that tenant's own knowledge is evicted. */
  maxBytesPerTenant: number;
  /** Binaries known at once (each costs little until it learns). */
  maxBinaries: number;
}

export const DEFAULT_KNOWLEDGE_LIMITS: KnowledgeLimits = {
  maxBytes: 128 * 1024 * 1024,
  maxBytesPerTenant: 32 * 1024 * 1024,
  maxBinaries: 1024,
};

/**
 * Estimated bytes of one table entry beyond its strings: the Map's slot
 * (key, value, chain: 3 words), a heap number for a PC above 2^31, a string
 * header (16 bytes), and an array header for a frame list. 64 is a little
 * above their sum on 64-bit V8, so the estimate errs high.
 */
const ENTRY_OVERHEAD = 64;
/** Per frame in a hidden-frame list: its slot and its string's header. */
const FRAME_OVERHEAD = 24;

/** Estimated heap bytes of a binary's knowledge (strings as one byte per character, as V8 keeps ASCII). */
export function knowledgeBytes(knowledge: Pick<BinaryKnowledge, 'symbols' | 'hiddenFrames'>): number {
  let bytes = 0;
  for (const name of knowledge.symbols.values()) bytes += ENTRY_OVERHEAD + name.length;
  for (const [key, frames] of knowledge.hiddenFrames) {
    bytes += ENTRY_OVERHEAD + key.length;
    for (const frame of frames) bytes += FRAME_OVERHEAD + frame.length;
  }
  return bytes;
}

/**
 * What one debug=1 teaches (learnHiddenFrames), unless that alone passes
 * `maxBytes` (a tenant's share): a binary past its tenant's whole share is
 * forgotten as soon as it has learned (BinaryKnowledgeCache.learned), so
 * such a table is never worth keeping, nor sending to another thread.
 */
export function learnWithin(heap: Debug1Heap, symbols: SymbolTable, maxBytes: number): HiddenFrameTable | undefined {
  const table = learnHiddenFrames(heap, symbols);
  return knowledgeBytes({ symbols: new Map(), hiddenFrames: table }) > maxBytes ? undefined : table;
}

interface Entry {
  knowledge: BinaryKnowledge;
  tenant: string;
  bytes: number;
}

/**
 * Knowledge per binary. PCs and stacks are stable for one build, so a
 * process's symbols and hidden frames are asked for once and reused by
 * every later capture. Bounded by bytes, in all and per tenant (the
 * operator: a cluster's namespace): a tenant over its share loses its own
 * least recently used binaries, and when all of them together are over the
 * budget the tenant holding the most loses first, so a tenant that stays
 * within an even share never loses knowledge to another one.
 */
export class BinaryKnowledgeCache {
  /** Least recently used first. */
  private readonly byBinary = new Map<string, Entry>();
  private readonly bytesByTenant = new Map<string, number>();
  private readonly binariesByTenant = new Map<string, number>();
  private totalBytes = 0;
  /** Least recently used first. */
  private readonly paceByTarget = new Map<string, TargetPace>();
  readonly limits: KnowledgeLimits;

  constructor(limits: Partial<KnowledgeLimits> = {}) {
    this.limits = { ...DEFAULT_KNOWLEDGE_LIMITS, ...limits };
  }

  /** Bytes held in all, and by one tenant. */
  bytes(tenant?: string): number {
    return tenant === undefined ? this.totalBytes : (this.bytesByTenant.get(tenant) ?? 0);
  }

  /** Whether a binary's knowledge is held (without touching its recency). */
  has(binaryKey: string): boolean {
    return this.byBinary.has(binaryKey);
  }

  /** A binary's knowledge (new and empty if unknown), now the most recently used. `tenant` defaults to the key. */
  binary(binaryKey: string, tenant: string = binaryKey): BinaryKnowledge {
    let entry = this.byBinary.get(binaryKey);
    if (entry) {
      this.byBinary.delete(binaryKey);
    } else {
      entry = { knowledge: { symbols: new Map(), hiddenFrames: new Map(), lastDebug1At: undefined, symbolsRefusedUntil: undefined }, tenant, bytes: 0 };
      if (this.byBinary.size >= this.limits.maxBinaries) this.evictFrom(this.largestTenant((t) => this.binariesByTenant.get(t) ?? 0));
      this.binariesByTenant.set(tenant, (this.binariesByTenant.get(tenant) ?? 0) + 1);
    }
    this.byBinary.set(binaryKey, entry);
    return entry.knowledge;
  }

  /** The pace of one target (TargetPace), now the most recently used. */
  target(scope: string): TargetPace {
    let pace = this.paceByTarget.get(scope);
    if (pace) this.paceByTarget.delete(scope);
    else {
      pace = { lastDebug1At: undefined, symbolsRefusedUntil: undefined };
      if (this.paceByTarget.size >= MAX_PACED_TARGETS) this.paceByTarget.delete(this.paceByTarget.keys().next().value as string);
    }
    this.paceByTarget.set(scope, pace);
    return pace;
  }

  /** After a binary learned: counts its bytes again and evicts until within the budgets. */
  learned(binaryKey: string): void {
    const entry = this.byBinary.get(binaryKey);
    if (!entry) return;
    this.setBytes(entry, knowledgeBytes(entry.knowledge));
    while ((this.bytesByTenant.get(entry.tenant) ?? 0) > this.limits.maxBytesPerTenant) {
      if (!this.evictFrom(entry.tenant, binaryKey)) break;
    }
    if (entry.bytes > this.limits.maxBytesPerTenant) this.forget(entry);
    while (this.totalBytes > this.limits.maxBytes) {
      const tenant = this.largestTenant((t) => this.bytesByTenant.get(t) ?? 0);
      if (tenant === undefined || !this.evictFrom(tenant, tenant === entry.tenant ? binaryKey : undefined)) {
        this.forget(entry);
        break;
      }
    }
  }

  /** Kept for callers of the entry-count cache: counts every binary again. */
  trim(): void {
    for (const key of [...this.byBinary.keys()]) this.learned(key);
  }

  /** Empties a binary's tables (keeping when debug=1 and /symbol were last asked, so it is not asked again at once). */
  private forget(entry: Entry): void {
    entry.knowledge.symbols.clear();
    entry.knowledge.hiddenFrames.clear();
    this.setBytes(entry, 0);
  }

  private setBytes(entry: Entry, bytes: number): void {
    this.totalBytes += bytes - entry.bytes;
    this.bytesByTenant.set(entry.tenant, (this.bytesByTenant.get(entry.tenant) ?? 0) + bytes - entry.bytes);
    entry.bytes = bytes;
  }

  private largestTenant(measure: (tenant: string) => number): string | undefined {
    let largest: string | undefined;
    let most = -1;
    for (const tenant of this.binariesByTenant.keys()) {
      const value = measure(tenant);
      if (value > most) {
        most = value;
        largest = tenant;
      }
    }
    return largest;
  }

  /** Drops the tenant's least recently used binary other than `keep`; false when there is none. */
  private evictFrom(tenant: string | undefined, keep?: string): boolean {
    if (tenant === undefined) return false;
    for (const [key, entry] of this.byBinary) {
      if (entry.tenant !== tenant || key === keep) continue;
      this.setBytes(entry, 0);
      this.byBinary.delete(key);
      const left = (this.binariesByTenant.get(tenant) ?? 1) - 1;
      if (left > 0) this.binariesByTenant.set(tenant, left);
      else {
        this.binariesByTenant.delete(tenant);
        this.bytesByTenant.delete(tenant);
      }
      return true;
    }
    return false;
  }
}

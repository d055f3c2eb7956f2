import { siteKey, type Site, type SiteUsage } from '../analysis/attribute.js';

/**
 * Bounds on what one capture's attributed summary may keep in Redis. The
 * target reports its own byte counts and names, so neither a byte filter
 * nor the proto's size bounds the summary: these do, whatever it claims.
 */
export interface SummaryCaps {
  /** Usages kept per capture: the largest in use, then allocated. */
  maxUsages: number;
  /** Code points kept of a function or file name (the status keeps as many: statusFrame). */
  maxNameCodePoints: number;
}

/** The CRD's ceiling on spec.thresholds.maxFindings: the most findings the engine reports for one target. */
export const MAX_REPORTED_FINDINGS = 50;

/**
 * Usages the engine may read for one reported finding: its own line, the
 * other lines of its function when the finding is function-scoped (they are
 * merged), and the other memory (kind `other`) whose site or caller is the
 * finding's owner or caller, which element bytes sum (series.ts
 * elementBytes). 20 leaves room for a function of 9 more lines and 5
 * other-memory sites for each of owner and caller; the recorded services
 * stream (prometheus, go-cache, golang-lru, x/time/rate) has 44 usages in a
 * whole capture.
 */
export const USAGES_PER_FINDING = 20;

export const DEFAULT_SUMMARY_CAPS: SummaryCaps = {
  maxUsages: MAX_REPORTED_FINDINGS * USAGES_PER_FINDING,
  maxNameCodePoints: 512,
};

/**
 * Largest summary one capture may store: the usage cap at names of 512
 * code points is about 1.5 MiB of JSON; the recorded services stream's
 * summaries are about 25 KB.
 */
export const DEFAULT_MAX_SUMMARY_BYTES = 2 * 1024 * 1024;

/** Usages smaller than this in both in-use and allocated bytes are not kept: they never reach a finding (minMapBytes is at least 1 MiB by default). */
export const KEEP_USAGE_BYTES = 64 * 1024;

/** A capture's summary was larger than the admin's ceiling: it is not stored, and the target says so. */
export class SummaryTooLargeError extends Error {
  override readonly name = 'SummaryTooLargeError';
  readonly reason = 'TooLarge';
  constructor(
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(`the capture's attributed summary is ${bytes} bytes, more than the operator's ceiling of ${limit} bytes (--max-summary-bytes)`);
  }
}

/** What a probe's status says while Redis refuses writes (maxmemory reached, noeviction). */
export const STORE_FULL_MESSAGE =
  "The operator's Redis is full (maxmemory reached) and refuses writes: captures are not kept and schedules cannot advance until space is freed. An admin must raise maxmemory or lower --max-redis-bytes-per-namespace, --max-redis-bytes-per-target, --max-window or --max-summary-bytes.";

/** At most `max` code points of `text` (a surrogate pair is one). */
export function capName(text: string, max: number): string {
  if (text.length <= max) return text;
  return [...text].slice(0, max).join('');
}

function capSite(site: Site, max: number): Site {
  const fn = capName(site.function, max);
  const file = capName(site.file, max);
  return fn === site.function && file === site.file ? site : { ...site, function: fn, file };
}

function addInto(target: Partial<Record<string, number>>, source: Partial<Record<string, number>> | undefined): void {
  for (const [k, v] of Object.entries(source ?? {})) target[k] = (target[k] ?? 0) + (v ?? 0);
}

/**
 * The usages a capture keeps: those that can reach a finding (KEEP_USAGE_BYTES),
 * names capped (usages whose capped names coincide become one), then the
 * largest `maxUsages` by in-use bytes, then allocated bytes. A real heap
 * stays far below the cap, so nothing changes for it.
 */
export function capUsages(usages: readonly SiteUsage[], caps: SummaryCaps): SiteUsage[] {
  const byKey = new Map<string, SiteUsage>();
  for (const usage of usages) {
    if (usage.inuseBytes < KEEP_USAGE_BYTES && usage.allocBytes < KEEP_USAGE_BYTES) continue;
    const site = capSite(usage.site, caps.maxNameCodePoints);
    const caller = usage.caller && capSite(usage.caller, caps.maxNameCodePoints);
    const key = site === usage.site && caller === usage.caller ? usage.key : siteKey(site, usage.kind, caller);
    const capped: SiteUsage = site === usage.site && caller === usage.caller ? usage : { ...usage, key, site, ...(caller ? { caller } : {}) };
    const seen = byKey.get(key);
    if (!seen) {
      byKey.set(key, capped);
      continue;
    }
    // Two names equal in their first code points: one site, its figures summed.
    const merged: SiteUsage = {
      ...seen,
      inuseBytes: seen.inuseBytes + capped.inuseBytes,
      allocBytes: seen.allocBytes + capped.allocBytes,
      inuseObjects: seen.inuseObjects + capped.inuseObjects,
      allocObjects: seen.allocObjects + capped.allocObjects,
      components: { ...seen.components },
    };
    addInto(merged.components, capped.components);
    if (seen.allocComponents || capped.allocComponents) {
      merged.allocComponents = { ...seen.allocComponents };
      addInto(merged.allocComponents, capped.allocComponents);
    }
    byKey.set(key, merged);
  }
  const kept = [...byKey.values()];
  if (kept.length <= caps.maxUsages) return kept;
  return kept.sort((a, b) => b.inuseBytes - a.inuseBytes || b.allocBytes - a.allocBytes).slice(0, Math.max(0, caps.maxUsages));
}

/** Allocated bytes of the functions the kept usages name (as owner or caller), names capped as the usages'; other functions are never read. */
export function capAllocByFunction(allocBytesByFunction: ReadonlyMap<string, number>, kept: readonly SiteUsage[], caps: SummaryCaps): Record<string, number> {
  const wanted = new Set<string>();
  for (const usage of kept) {
    wanted.add(usage.site.function);
    if (usage.caller) wanted.add(usage.caller.function);
  }
  // No prototype: a function named __proto__ stays a plain entry.
  const result = Object.create(null) as Record<string, number>;
  for (const [fn, bytes] of allocBytesByFunction) {
    const name = capName(fn, caps.maxNameCodePoints);
    if (wanted.has(name)) result[name] = (result[name] ?? 0) + bytes;
  }
  return result;
}

/**
 * Pinned captures (incidents' evidence, kept for the incident retention)
 * beyond a probe's byte budget: given newest first, the ones that no longer
 * fit once the newer ones are counted. A capture already gone counts 0.
 */
export function pinsOverBudget(pinned: readonly { id: string; bytes: number }[], maxBytes: number): string[] {
  let total = 0;
  const over: string[] = [];
  for (const { id, bytes } of pinned) {
    if (bytes === 0) continue;
    if (total + bytes > maxBytes) over.push(id);
    else total += bytes;
  }
  return over;
}

import { strongerEvidence, type AttributedSnapshot, type Evidence, type Kind, type Site, type SiteUsage } from './attribute.js';
import { adviceFor, type Pattern } from './advice.js';
import type { MapComponent, MapImpl } from './frames.js';
import { linearSlope } from './gctrace.js';

export interface Thresholds {
  /** Map memory below this (in use, or allocated in the window for churn) is not reported. */
  minMapBytes: number;
  /** Growth slower than this is not "growing". */
  minGrowthBytesPerHour: number;
  maxFindings: number;
}

export const DEFAULT_THRESHOLDS: Thresholds = {
  minMapBytes: 1024 * 1024,
  minGrowthBytesPerHour: 1024 * 1024,
  maxFindings: 20,
};

export interface SeriesPoint {
  time: string;
  inuseBytes: number;
}

export interface Finding {
  site: Site;
  kind: Kind;
  pattern: Pattern;
  inuseBytes: number;
  maxInuseBytes: number;
  growthBytesPerHour: number;
  allocBytesPerHour: number;
  evidence: Evidence;
  mapImpl: MapImpl;
  confidence: number;
  advice: string;
  components: Partial<Record<MapComponent, number>>;
  series: SeriesPoint[];
}

export interface SeriesAnalysis {
  captures: number;
  /** Captures identical to the one before: no GC cycle ended in between, so no new information. */
  staleCaptures: number;
  window: { start: string; end: string };
  mapImpl: MapImpl;
  totals: { inuseBytes: number; mapInuseBytes: number };
  findings: Finding[];
}

/** A snapshot whose time is known (the profile's own, or when it was captured). */
export type TimedSnapshot = AttributedSnapshot & { time: Date };

const PATTERN_RANK: Record<Pattern, number> = { growing: 0, retained: 1, churn: 2, stable: 3 };
const EVIDENCE_WEIGHT: Record<Evidence, number> = { symbolized: 1, 'visible-frame': 0.9, 'size-signature': 0.65, none: 0.9 };

/**
 * Per owner site: map in-use bytes over time, growth per hour, allocation
 * rate, and the pattern that explains them.
 */
export function analyzeSeries(
  snapshots: readonly TimedSnapshot[],
  thresholds: Thresholds = DEFAULT_THRESHOLDS,
  sampleNoiseBytes = 512 * 1024,
): SeriesAnalysis {
  if (snapshots.length === 0) throw new Error('analyzeSeries needs at least one capture');
  const ordered = [...snapshots].sort((a, b) => a.time.getTime() - b.time.getTime());
  const distinct = dropStale(ordered);
  const first = distinct[0] as TimedSnapshot;
  const last = distinct[distinct.length - 1] as TimedSnapshot;
  const hours = (last.time.getTime() - first.time.getTime()) / 3_600_000;

  // Each site's usage in each snapshot, indexed once (not searched per site per snapshot).
  const bySite = new Map<string, (SiteUsage | undefined)[]>();
  distinct.forEach((snapshot, i) => {
    for (const usage of snapshot.usages) {
      let row = bySite.get(usage.key);
      if (!row) bySite.set(usage.key, (row = new Array<SiteUsage | undefined>(distinct.length).fill(undefined)));
      row[i] ??= usage;
    }
  });

  // And the last snapshot's usages per owner function, for the same reason.
  const lastByFunction = new Map<string, SiteUsage[]>();
  for (const usage of last.usages) {
    const list = lastByFunction.get(usage.site.function);
    if (list) list.push(usage);
    else lastByFunction.set(usage.site.function, [usage]);
  }

  const findings: Finding[] = [];
  for (const usages of bySite.values()) {
    const template = usages.find((u) => u !== undefined) as SiteUsage;
    const finding = classifySite(template, usages, distinct, hours, thresholds, sampleNoiseBytes, lastByFunction);
    if (finding && isWorthReporting(finding, thresholds, hours)) findings.push(finding);
  }
  findings.sort(bySeriousness);

  return {
    captures: ordered.length,
    staleCaptures: ordered.length - distinct.length,
    window: { start: (ordered[0] as TimedSnapshot).time.toISOString(), end: (ordered[ordered.length - 1] as TimedSnapshot).time.toISOString() },
    mapImpl: distinct.reduce<MapImpl>((impl, s) => (s.mapImpl !== 'unknown' ? s.mapImpl : impl), 'unknown'),
    totals: { inuseBytes: last.totals.inuseBytes, mapInuseBytes: last.totals.mapInuseBytes },
    findings: findings.slice(0, thresholds.maxFindings),
  };
}

function dropStale(ordered: readonly TimedSnapshot[]): TimedSnapshot[] {
  const kept: TimedSnapshot[] = [];
  for (const snapshot of ordered) {
    const previous = kept[kept.length - 1];
    const same =
      previous &&
      previous.totals.allocBytes === snapshot.totals.allocBytes &&
      previous.totals.inuseBytes === snapshot.totals.inuseBytes;
    if (!same) kept.push(snapshot);
  }
  return kept;
}

function classifySite(
  template: SiteUsage,
  usages: readonly (SiteUsage | undefined)[],
  snapshots: readonly TimedSnapshot[],
  hours: number,
  thresholds: Thresholds,
  noise: number,
  lastByFunction: ReadonlyMap<string, readonly SiteUsage[]>,
): Finding | undefined {
  const inuse = usages.map((u) => u?.inuseBytes ?? 0);
  const alloc = usages.map((u) => u?.allocBytes ?? 0);
  const seconds = snapshots.map((s) => s.time.getTime() / 1000);
  const points = inuse.length;
  const firstInuse = inuse[0] as number;
  const lastInuse = inuse[points - 1] as number;
  const maxInuse = Math.max(...inuse);
  const meanInuse = inuse.reduce((a, b) => a + b, 0) / points;
  const rise = lastInuse - firstInuse;
  const growthPerHour = linearSlope(seconds, inuse) * 3600;
  const allocDelta = Math.max(0, (alloc[points - 1] as number) - (alloc[0] as number));
  const allocPerHour = hours > 0 ? allocDelta / hours : 0;

  const trend = kendallTau(inuse, 0.01 * maxInuse);

  const owner = template.site.function;
  const functionAlloc = snapshots.map((s) => s.allocBytesByFunction.get(owner) ?? 0);
  const ownerStillAllocates = (functionAlloc[points - 1] as number) - (functionAlloc[0] as number) > noise;
  const elementsFreed = elementsWereFreed(usages[points - 1] ? lastByFunction.get(owner) : undefined);

  const enoughData = points >= 2;
  const isGrowing =
    enoughData &&
    rise >= Math.max(4 * noise, 0.05 * maxInuse) &&
    growthPerHour >= thresholds.minGrowthBytesPerHour &&
    trend >= 0.5 &&
    (allocDelta === 0 || rise / allocDelta >= 0.15);
  const isChurn = !isGrowing && (enoughData ? allocDelta >= 3 * Math.max(meanInuse, noise) : alloc[0]! >= 10 * Math.max(firstInuse, noise));
  const heldAtHighWater = lastInuse >= 0.8 * maxInuse && lastInuse > 0;

  let pattern: Pattern;
  let strength: number;
  const dataWeight = Math.min(1, (points - 1) / 4);
  if (isGrowing) {
    pattern = 'growing';
    strength = 0.5 + 0.5 * trend * dataWeight;
  } else if (isChurn) {
    pattern = 'churn';
    strength = enoughData ? 0.6 + 0.4 * Math.min(1, allocDelta / (10 * Math.max(meanInuse, noise))) : 0.3;
  } else if (template.kind === 'map' && enoughData && heldAtHighWater && !ownerStillAllocates) {
    pattern = 'retained';
    strength = (elementsFreed ? 0.9 : 0.7) * (0.5 + 0.5 * dataWeight);
  } else {
    pattern = 'stable';
    strength = enoughData ? 0.4 + 0.4 * dataWeight : 0.2;
  }

  const evidence = usages.reduce<Evidence>((e, u) => (u ? strongerEvidence(e, u.evidence) : e), template.evidence);
  const lastUsage = [...usages].reverse().find((u) => u !== undefined) ?? template;
  const mapImpl = template.kind === 'map' ? (lastUsage.mapImpl !== 'unknown' ? lastUsage.mapImpl : snapshots[points - 1]!.mapImpl) : 'unknown';
  return {
    site: template.site,
    kind: template.kind,
    pattern,
    inuseBytes: Math.round(lastInuse),
    maxInuseBytes: Math.round(maxInuse),
    growthBytesPerHour: Math.round(growthPerHour),
    allocBytesPerHour: Math.round(allocPerHour),
    evidence,
    mapImpl,
    confidence: round2(strength * EVIDENCE_WEIGHT[evidence]),
    advice: adviceFor(template.kind, pattern, mapImpl),
    components: lastUsage.components,
    series: snapshots.map((s, i) => ({ time: s.time.toISOString(), inuseBytes: Math.round(inuse[i] as number) })),
  };
}

/**
 * Rank trend in -1..1: how consistently later values exceed earlier ones.
 * Robust to a classic map's growth sawtooth (old and new bucket arrays are
 * both live while it evacuates) and to sampling noise; ties within
 * `tolerance` count neither way.
 */
export function kendallTau(values: readonly number[], tolerance: number): number {
  let concordant = 0;
  let discordant = 0;
  for (let i = 0; i < values.length; i++) {
    for (let j = i + 1; j < values.length; j++) {
      const d = (values[j] as number) - (values[i] as number);
      if (d > tolerance) concordant++;
      else if (d < -tolerance) discordant++;
    }
  }
  const pairs = (values.length * (values.length - 1)) / 2;
  return pairs === 0 ? 0 : (concordant - discordant) / pairs;
}

/**
 * Most of what the owner allocated besides the map structure itself (the
 * values it stored, out-of-line entries) has been freed.
 */
function elementsWereFreed(ownerUsages: readonly SiteUsage[] | undefined): boolean {
  if (!ownerUsages) return false;
  let allocated = 0;
  let inuse = 0;
  for (const usage of ownerUsages) {
    const elementsOnly = usage.kind === 'other';
    const entryBytes = usage.components.entry ?? 0;
    if (elementsOnly) {
      allocated += usage.allocBytes;
      inuse += usage.inuseBytes;
    } else if (entryBytes > 0 || usage.allocBytes > 0) {
      inuse += entryBytes;
    }
  }
  return allocated > 0 && inuse < 0.25 * allocated;
}

function isWorthReporting(finding: Finding, thresholds: Thresholds, hours: number): boolean {
  if (finding.kind === 'other') {
    return finding.pattern === 'growing' && finding.inuseBytes >= thresholds.minMapBytes;
  }
  if (finding.pattern === 'churn') return finding.allocBytesPerHour * Math.max(hours, 0) >= thresholds.minMapBytes || finding.maxInuseBytes >= thresholds.minMapBytes;
  return finding.maxInuseBytes >= thresholds.minMapBytes;
}

function bySeriousness(a: Finding, b: Finding): number {
  const rank = PATTERN_RANK[a.pattern] - PATTERN_RANK[b.pattern];
  if (rank !== 0) return rank;
  if (a.kind !== b.kind) return a.kind === 'map' ? -1 : 1;
  if (a.pattern === 'growing') return b.growthBytesPerHour - a.growthBytesPerHour;
  if (a.pattern === 'churn') return b.allocBytesPerHour - a.allocBytesPerHour;
  return b.inuseBytes - a.inuseBytes;
}

const round2 = (x: number): number => Math.round(Math.max(0, Math.min(1, x)) * 100) / 100;

import type { Frame, HeapProfile, HeapRecord, HiddenFrames } from '../pprof/types.js';
import {
  callerFrame,
  hiddenMapRole,
  isProfilerStack,
  isRuntimeFrame,
  isVisibleMapFrame,
  ownerFrame,
  type MapComponent,
  type MapImpl,
} from './frames.js';
import { inferSizeSignatures, type SizeSignature, type SizeStats } from './signature.js';

export type Kind = 'map' | 'other';

/** How we know an allocation is map memory. */
export type Evidence = 'symbolized' | 'size-signature' | 'visible-frame' | 'none';

export type Site = Frame;

/** Heap usage of one owner site and kind in one capture. */
export interface SiteUsage {
  key: string;
  site: Site;
  kind: Kind;
  evidence: Evidence;
  mapImpl: MapImpl;
  inuseBytes: number;
  allocBytes: number;
  inuseObjects: number;
  allocObjects: number;
  /** In-use bytes by map component (map kind only). */
  components: Partial<Record<MapComponent, number>>;
  /** Bytes ever allocated by map component (map kind only; absent in captures stored before it existed). */
  allocComponents?: Partial<Record<MapComponent, number>>;
  /**
   * The first frame in the target's main module, when it is not the site:
   * the user's code that feeds a map a library owns. The caller with the
   * most bytes when several do.
   */
  caller?: Site;
}

/** One capture, attributed: what is map memory, owned by which code. */
export interface AttributedSnapshot {
  time: Date | undefined;
  mapImpl: MapImpl;
  usages: SiteUsage[];
  /** Bytes ever allocated per owner function (any kind): is the code still active? */
  allocBytesByFunction: Map<string, number>;
  totals: { inuseBytes: number; allocBytes: number; mapInuseBytes: number };
  /** Best evidence available in this capture. */
  evidence: Evidence;
  /** runtime.MemProfileRate that sampled it: how noisy its byte estimates are. */
  memProfileRate?: number;
}

const EVIDENCE_RANK: Record<Evidence, number> = { symbolized: 3, 'visible-frame': 2, 'size-signature': 1, none: 0 };
export const strongerEvidence = (a: Evidence, b: Evidence): Evidence => (EVIDENCE_RANK[a] >= EVIDENCE_RANK[b] ? a : b);

interface CachedAttribution {
  hiddenFrames: HiddenFrames;
  attribution: RecordAttribution;
}

interface RecordAttribution {
  site: Site;
  caller: Site | undefined;
  /** Made by the profiler while it wrote this profile: left out of every site. */
  profiler: boolean;
  kind: Kind;
  evidence: Evidence;
  component: MapComponent | undefined;
  impl: MapImpl;
}

export function siteKey(site: Site, kind: Kind): string {
  return `${kind}\t${site.function}\t${site.file}\t${site.line}`;
}

/** Every sampled allocation becomes map memory (which part) or other memory. */
export function attributeProfile(profile: HeapProfile): AttributedSnapshot {
  // Decoders share one array per distinct stack; attribute each stack once.
  const byStack = new Map<Frame[], CachedAttribution>();
  const attributions = profile.records.map((record) => {
    const known = byStack.get(record.stack);
    if (known && known.hiddenFrames === record.hiddenFrames) return known.attribution;
    const attribution = attributeRecord(record);
    byStack.set(record.stack, { hiddenFrames: record.hiddenFrames, attribution });
    return attribution;
  });
  applySizeSignatures(profile.records, attributions, dominantImpl(attributions));

  const profileImpl = dominantImpl(attributions);
  const usages = new Map<string, SiteUsage>();
  const allocBytesByFunction = new Map<string, number>();
  const totals = { inuseBytes: 0, allocBytes: 0, mapInuseBytes: 0 };
  let evidence: Evidence = 'none';

  const callerBytes = new Map<SiteUsage, Map<string, { frame: Site; bytes: number }>>();
  profile.records.forEach((record, i) => {
    const a = attributions[i] as RecordAttribution;
    totals.inuseBytes += record.inuseBytes;
    totals.allocBytes += record.allocBytes;
    if (a.profiler) return;
    const key = siteKey(a.site, a.kind);
    let usage = usages.get(key);
    if (!usage) {
      usage = {
        key,
        site: a.site,
        kind: a.kind,
        evidence: a.evidence,
        mapImpl: a.kind === 'map' ? (a.impl === 'unknown' ? profileImpl : a.impl) : 'unknown',
        inuseBytes: 0,
        allocBytes: 0,
        inuseObjects: 0,
        allocObjects: 0,
        components: {},
      };
      usages.set(key, usage);
    }
    usage.evidence = strongerEvidence(usage.evidence, a.evidence);
    usage.inuseBytes += record.inuseBytes;
    usage.allocBytes += record.allocBytes;
    usage.inuseObjects += record.inuseObjects;
    usage.allocObjects += record.allocObjects;
    if (a.component) {
      usage.components[a.component] = (usage.components[a.component] ?? 0) + record.inuseBytes;
      const allocComponents = (usage.allocComponents ??= {});
      allocComponents[a.component] = (allocComponents[a.component] ?? 0) + record.allocBytes;
    }
    if (a.caller) {
      const byCaller = callerBytes.get(usage) ?? new Map<string, { frame: Site; bytes: number }>();
      callerBytes.set(usage, byCaller);
      const callerKey = siteKey(a.caller, a.kind);
      const seen = byCaller.get(callerKey) ?? { frame: a.caller, bytes: 0 };
      seen.bytes += record.inuseBytes + record.allocBytes;
      byCaller.set(callerKey, seen);
    }
    allocBytesByFunction.set(a.site.function, (allocBytesByFunction.get(a.site.function) ?? 0) + record.allocBytes);
    if (a.kind === 'map') totals.mapInuseBytes += record.inuseBytes;
    evidence = strongerEvidence(evidence, a.evidence);
  });
  for (const [usage, byCaller] of callerBytes) {
    let best: { frame: Site; bytes: number } | undefined;
    for (const candidate of byCaller.values()) if (!best || candidate.bytes > best.bytes) best = candidate;
    if (best) usage.caller = best.frame;
  }

  return {
    time: profile.time,
    mapImpl: profileImpl,
    usages: [...usages.values()],
    allocBytesByFunction,
    totals,
    evidence,
    ...(profile.memProfileRate > 0 ? { memProfileRate: profile.memProfileRate } : {}),
  };
}

const UNKNOWN_SITE: Site = { function: '(unknown)', file: '', line: 0 };

function attributeRecord(record: HeapRecord): RecordAttribution {
  const site = ownerFrame(record.stack) ?? UNKNOWN_SITE;
  const who = { site, caller: callerFrame(record.stack, site), profiler: isProfilerStack(record.stack) };
  const hiddenCount = record.stack.findIndex((f) => !isRuntimeFrame(f.function));
  const hidden = record.stack.slice(0, hiddenCount < 0 ? record.stack.length : hiddenCount);
  if (record.hiddenFrames === 'resolved') {
    const role = hiddenMapRole(hidden);
    if (role) return { ...who, kind: 'map', evidence: 'symbolized', component: role.component, impl: role.impl };
  }
  const firstVisible = record.stack[hidden.length];
  if (firstVisible && isVisibleMapFrame(firstVisible.function)) {
    return { ...who, kind: 'map', evidence: 'visible-frame', component: 'unknown', impl: 'unknown' };
  }
  return { ...who, kind: 'other', evidence: 'none', component: undefined, impl: 'unknown' };
}

/**
 * Without hidden frames, a site's object sizes may still betray a map: apply
 * the size signature per owner site to records that nothing else explained.
 * One binary has one map implementation, so the profile decides which
 * signature applies: a bucket array larger than any swiss table proves
 * classic maps; many full swiss tables suggest swiss.
 */
function applySizeSignatures(records: readonly HeapRecord[], attributions: RecordAttribution[], knownImpl: MapImpl): void {
  const bySite = new Map<string, number[]>();
  records.forEach((record, i) => {
    const a = attributions[i] as RecordAttribution;
    if (a.kind !== 'other' || record.hiddenFrames === 'resolved' || record.objectSize <= 0) return;
    const key = siteKey(a.site, 'other');
    const list = bySite.get(key);
    if (list) list.push(i);
    else bySite.set(key, [i]);
  });
  const candidates: { indexes: number[]; signatures: SizeSignature[] }[] = [];
  let classicVotes = 0;
  let swissVotes = 0;
  for (const indexes of bySite.values()) {
    const bySize = new Map<number, SizeStats>();
    for (const i of indexes) {
      const record = records[i] as HeapRecord;
      const stats = bySize.get(record.objectSize) ?? { objects: 0, bytes: 0 };
      stats.objects += record.allocObjects;
      stats.bytes += record.allocBytes;
      bySize.set(record.objectSize, stats);
    }
    const signatures = inferSizeSignatures(bySize);
    if (signatures.length === 0) continue;
    if (signatures.some((s) => s.provesClassic)) classicVotes++;
    if (signatures.some((s) => s.looksSwiss)) swissVotes++;
    candidates.push({ indexes, signatures });
  }
  const impl: MapImpl =
    knownImpl !== 'unknown' ? knownImpl : classicVotes > 0 ? 'classic' : swissVotes > 0 ? 'swiss' : 'unknown';
  for (const { indexes, signatures } of candidates) {
    const signature = impl === 'unknown' ? signatures[0] : signatures.find((s) => s.impl === impl);
    if (!signature) continue;
    for (const i of indexes) {
      const component = signature.components.get((records[i] as HeapRecord).objectSize);
      if (!component) continue;
      const a = attributions[i] as RecordAttribution;
      attributions[i] = { ...a, kind: 'map', evidence: 'size-signature', component, impl: signature.impl };
    }
  }
}

function dominantImpl(attributions: readonly RecordAttribution[]): MapImpl {
  let swiss = 0;
  let classic = 0;
  for (const a of attributions) {
    if (a.impl === 'swiss') swiss++;
    if (a.impl === 'classic') classic++;
  }
  if (swiss === 0 && classic === 0) return 'unknown';
  return swiss >= classic ? 'swiss' : 'classic';
}

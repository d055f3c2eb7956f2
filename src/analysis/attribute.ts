import type { Frame, HeapProfile, HeapRecord, HiddenFrames } from '../pprof/types.js';
import { FrameFacts, hiddenMapRole, isVisibleMapFrame, stackOwners, type MapComponent, type MapImpl } from './frames.js';
import { inferSizeSignatures, isStructureSize, plausibleShapesOf, type SizeSignature, type SizeStats } from './signature.js';

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
  /** Index in the profile's list of attributions. */
  id: number;
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
  /** siteKey(site, kind), made once per attribution: attributions are shared by every record of a stack. */
  key: string;
  /** siteKey(caller, kind), made when first needed. */
  callerKey?: string;
}

/** A profile's attributions, each once, and which one each record has (an index into `list`). */
interface Attributions {
  list: RecordAttribution[];
  of: Int32Array;
}

/** Figures summed per attribution, in a Float64Array of SUMS × attributions. */
const SUMS = 4;
const [INUSE_BYTES, ALLOC_BYTES, INUSE_OBJECTS, ALLOC_OBJECTS] = [0, 1, 2, 3];

/** Where a record's memory goes, whatever its kind. */
type Owner = Pick<RecordAttribution, 'site' | 'caller' | 'profiler'>;

function attribution(who: Owner, kind: Kind, evidence: Evidence, component: MapComponent | undefined, impl: MapImpl): RecordAttribution {
  return { site: who.site, caller: who.caller, profiler: who.profiler, kind, evidence, component, impl, key: siteKey(who.site, kind) };
}

export function siteKey(site: Site, kind: Kind): string {
  return `${kind}\t${site.function}\t${site.file}\t${site.line}`;
}

/** Every sampled allocation becomes map memory (which part) or other memory. */
export function attributeProfile(profile: HeapProfile): AttributedSnapshot {
  // Decoders share one array per distinct stack; attribute each stack once.
  const records = profile.records;
  const byStack = new Map<Frame[], CachedAttribution>();
  const attributions: Attributions = { list: [], of: new Int32Array(records.length) };
  const facts = new FrameFacts();
  for (let i = 0; i < records.length; i++) {
    const record = records[i] as HeapRecord;
    const known = byStack.get(record.stack);
    if (known && known.hiddenFrames === record.hiddenFrames) {
      attributions.of[i] = known.id;
      continue;
    }
    const id = attributions.list.push(attributeRecord(record, facts)) - 1;
    byStack.set(record.stack, { hiddenFrames: record.hiddenFrames, id });
    attributions.of[i] = id;
  }
  // One binary has one map implementation: the hidden frames say which when
  // present, then function names or the Go version, then size evidence that
  // only one implementation can produce; otherwise it stays unknown.
  const namedImpl = firstKnown(
    () => dominantImpl(attributions),
    () => implFromGoVersion(profile.goVersion),
    () => implFromFunctionNames(byStack.keys()),
  );
  const profileImpl = applySizeSignatures(records, attributions, namedImpl);

  // Records share attributions (one per stack, and per component and owner
  // after size signatures): sum each attribution's records first, then fold
  // the attributions into sites in the order their records came.
  const sums = new Float64Array(SUMS * attributions.list.length);
  const touched = new Uint8Array(attributions.list.length);
  const firstSeen: number[] = [];
  const totals = { inuseBytes: 0, allocBytes: 0, mapInuseBytes: 0 };
  for (let i = 0; i < records.length; i++) {
    const record = records[i] as HeapRecord;
    const id = attributions.of[i] as number;
    const a = attributions.list[id] as RecordAttribution;
    totals.inuseBytes += record.inuseBytes;
    totals.allocBytes += record.allocBytes;
    if (a.profiler) continue;
    const at = SUMS * id;
    if (touched[id] === 0) {
      touched[id] = 1;
      firstSeen.push(id);
    }
    sums[at + INUSE_BYTES] = (sums[at + INUSE_BYTES] as number) + record.inuseBytes;
    sums[at + ALLOC_BYTES] = (sums[at + ALLOC_BYTES] as number) + record.allocBytes;
    sums[at + INUSE_OBJECTS] = (sums[at + INUSE_OBJECTS] as number) + record.inuseObjects;
    sums[at + ALLOC_OBJECTS] = (sums[at + ALLOC_OBJECTS] as number) + record.allocObjects;
    if (a.kind === 'map') totals.mapInuseBytes += record.inuseBytes;
  }

  const usages = new Map<string, SiteUsage>();
  const allocBytesByFunction = new Map<string, number>();
  let evidence: Evidence = 'none';
  const callerBytes = new Map<SiteUsage, Map<string, { frame: Site; bytes: number }>>();
  for (const id of firstSeen) {
    const a = attributions.list[id] as RecordAttribution;
    const at = SUMS * id;
    const sum = { inuseBytes: sums[at + INUSE_BYTES] as number, allocBytes: sums[at + ALLOC_BYTES] as number, inuseObjects: sums[at + INUSE_OBJECTS] as number, allocObjects: sums[at + ALLOC_OBJECTS] as number };
    const key = a.key;
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
    usage.inuseBytes += sum.inuseBytes;
    usage.allocBytes += sum.allocBytes;
    usage.inuseObjects += sum.inuseObjects;
    usage.allocObjects += sum.allocObjects;
    if (a.component) {
      usage.components[a.component] = (usage.components[a.component] ?? 0) + sum.inuseBytes;
      const allocComponents = (usage.allocComponents ??= {});
      allocComponents[a.component] = (allocComponents[a.component] ?? 0) + sum.allocBytes;
    }
    if (a.caller) {
      let byCaller = callerBytes.get(usage);
      if (!byCaller) callerBytes.set(usage, (byCaller = new Map()));
      const callerKey = (a.callerKey ??= siteKey(a.caller, a.kind));
      const seen = byCaller.get(callerKey);
      if (seen) seen.bytes += sum.inuseBytes + sum.allocBytes;
      else byCaller.set(callerKey, { frame: a.caller, bytes: sum.inuseBytes + sum.allocBytes });
    }
    allocBytesByFunction.set(a.site.function, (allocBytesByFunction.get(a.site.function) ?? 0) + sum.allocBytes);
    evidence = strongerEvidence(evidence, a.evidence);
  }
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

function attributeRecord(record: HeapRecord, facts: FrameFacts): RecordAttribution {
  const { owner, caller, profiler, runtimeFrames } = stackOwners(record.stack, facts);
  const site = owner ?? UNKNOWN_SITE;
  const who = { site, caller, profiler };
  if (record.hiddenFrames === 'resolved') {
    const role = hiddenMapRole(record.stack.slice(0, runtimeFrames));
    if (role) return attribution(who, 'map', 'symbolized', role.component, role.impl);
  }
  const firstVisible = record.stack[runtimeFrames];
  if (firstVisible && isVisibleMapFrame(firstVisible.function)) {
    return attribution(who, 'map', 'visible-frame', 'unknown', 'unknown');
  }
  return attribution(who, 'other', 'none', undefined, 'unknown');
}

/**
 * Without hidden frames, a site's object sizes may still betray a map: apply
 * the size signature per owner site to records that nothing else explained.
 * Sizes are looked up once per distinct size and site (signature.ts holds
 * the precomputed shapes). When the profile's implementation is not known
 * yet, sizes that only one implementation produces decide it; a site found
 * while it stays unknown is map memory of unknown implementation.
 */
function applySizeSignatures(records: readonly HeapRecord[], attributions: Attributions, knownImpl: MapImpl): MapImpl {
  // The records nothing else explained, by owner site (one key lookup per
  // attribution, not per record), in the order the sites first came. Most
  // sites hold no object a map structure could be: only sites with one get
  // their records listed.
  const NOT_YET = -1;
  const siteOf = new Int32Array(attributions.list.length).fill(NOT_YET);
  const siteByKey = new Map<string, number>();
  const largestOf: number[] = [];
  const unexplained = (record: HeapRecord, a: RecordAttribution): boolean =>
    a.kind === 'other' && record.hiddenFrames !== 'resolved' && record.objectSize > 0;
  for (let i = 0; i < records.length; i++) {
    const record = records[i] as HeapRecord;
    const id = attributions.of[i] as number;
    const a = attributions.list[id] as RecordAttribution;
    if (!unexplained(record, a)) continue;
    let site = siteOf[id] as number;
    if (site === NOT_YET) {
      site = siteByKey.get(a.key) ?? -1;
      if (site < 0) siteByKey.set(a.key, (site = largestOf.push(0) - 1));
      siteOf[id] = site;
    }
    if (record.objectSize > (largestOf[site] as number)) largestOf[site] = record.objectSize;
  }
  const bySite: number[][] = largestOf.map(() => []);
  for (let i = 0; i < records.length; i++) {
    const id = attributions.of[i] as number;
    const site = siteOf[id] as number;
    if (site === NOT_YET || (largestOf[site] as number) < SMALLEST_MAP_STRUCTURE) continue;
    if (unexplained(records[i] as HeapRecord, attributions.list[id] as RecordAttribution)) (bySite[site] as number[]).push(i);
  }
  const candidates: { indexes: number[]; signatures: SizeSignature[] }[] = [];
  const proofBytes = { classic: 0, swiss: 0 };
  for (const indexes of bySite) {
    if (indexes.length === 0) continue;
    const structural: number[] = [];
    for (const i of indexes) {
      const size = (records[i] as HeapRecord).objectSize;
      if (isStructureSize(size) && !structural.includes(size)) structural.push(size);
    }
    const plausible = plausibleShapesOf(structural);
    if (plausible.length === 0) continue;
    const bySize = new Map<number, SizeStats>();
    for (const i of indexes) {
      const record = records[i] as HeapRecord;
      let stats = bySize.get(record.objectSize);
      if (!stats) bySize.set(record.objectSize, (stats = { objects: 0, bytes: 0 }));
      // Allocation figures hold the whole growth history; a profile with
      // in-use figures only still has the live structure.
      const useAlloc = record.allocObjects > 0;
      stats.objects += useAlloc ? record.allocObjects : record.inuseObjects;
      stats.bytes += useAlloc ? record.allocBytes : record.inuseBytes;
    }
    const signatures = inferSizeSignatures(bySize, plausible);
    if (signatures.length === 0) continue;
    for (const s of signatures) {
      if (s.provesClassic) proofBytes.classic += s.explainedBytes;
      if (s.provesSwiss) proofBytes.swiss += s.explainedBytes;
    }
    candidates.push({ indexes, signatures });
  }
  const impl = knownImpl !== 'unknown' ? knownImpl : implFromProofs(proofBytes);
  for (const { indexes, signatures } of candidates) {
    const signature =
      impl === 'unknown'
        ? signatures.reduce((a, b) => (b.explainedBytes > a.explainedBytes ? b : a))
        : signatures.find((s) => s.impl === impl);
    if (!signature) continue;
    // One map attribution per component and owner attribution at this site (records share them, as they share their stacks' attributions).
    const asMap = new Map<number, Map<MapComponent, number>>();
    for (const i of indexes) {
      const component = signature.components.get((records[i] as HeapRecord).objectSize);
      if (!component) continue;
      const owner = attributions.of[i] as number;
      let byComponent = asMap.get(owner);
      if (!byComponent) asMap.set(owner, (byComponent = new Map()));
      let mapped = byComponent.get(component);
      if (mapped === undefined) {
        mapped = attributions.list.push(attribution(attributions.list[owner] as RecordAttribution, 'map', 'size-signature', component, impl)) - 1;
        byComponent.set(component, mapped);
      }
      attributions.of[i] = mapped;
    }
  }
  return impl;
}

/** A site without an object of 1 KiB has no bucket array or table a signature could rest on. */
const SMALLEST_MAP_STRUCTURE = 1024;
/** Proofs on both sides: the implementation is the one proved by this many times more bytes, or unknown. */
const PROOF_MARGIN = 4;

function implFromProofs(bytes: { classic: number; swiss: number }): MapImpl {
  if (bytes.classic > 0 && bytes.classic >= PROOF_MARGIN * bytes.swiss) return 'classic';
  if (bytes.swiss > 0 && bytes.swiss >= PROOF_MARGIN * bytes.classic) return 'swiss';
  return 'unknown';
}

/** The first way that knows, asked in order (the later ways walk every frame). */
function firstKnown(...ways: (() => MapImpl)[]): MapImpl {
  for (const way of ways) {
    const impl = way();
    if (impl !== 'unknown') return impl;
  }
  return 'unknown';
}

/**
 * runtime.Version() of the target, when something recorded it: swiss maps
 * are the default from Go 1.24 (GOEXPERIMENT=noswissmap, shown as
 * "X:noswissmap", turns them off in 1.24 and 1.25) and the only maps from 1.26.
 */
export function implFromGoVersion(version: string | undefined): MapImpl {
  const match = version ? /^go1\.(\d+)/.exec(version) : null;
  if (!match) return 'unknown';
  const minor = Number(match[1]);
  if (minor <= 23) return 'classic';
  if (minor <= 25 && /noswissmap/.test(version ?? '')) return 'classic';
  return 'swiss';
}

/** Functions of one implementation anywhere in the profile's stacks (the runtime hides only the leaf ones). */
function implFromFunctionNames(stacks: Iterable<readonly Frame[]>): MapImpl {
  let swiss = false;
  let classic = false;
  for (const stack of stacks) {
    for (const frame of stack) {
      if (frame.function.startsWith('internal/runtime/maps.')) swiss = true;
      else if (CLASSIC_ONLY_FUNCTION.test(frame.function)) classic = true;
    }
  }
  return swiss === classic ? 'unknown' : swiss ? 'swiss' : 'classic';
}

const CLASSIC_ONLY_FUNCTION = /^runtime\.(makeBucketArray|hashGrow|growWork|evacuate|\(\*hmap\)\.)/;

/** The implementation most records' hidden frames name. */
function dominantImpl(attributions: Attributions): MapImpl {
  const perAttribution = new Float64Array(attributions.list.length);
  for (const id of attributions.of) perAttribution[id] = (perAttribution[id] as number) + 1;
  let swiss = 0;
  let classic = 0;
  attributions.list.forEach((a, id) => {
    if (a.impl === 'swiss') swiss += perAttribution[id] as number;
    if (a.impl === 'classic') classic += perAttribution[id] as number;
  });
  if (swiss === 0 && classic === 0) return 'unknown';
  return swiss >= classic ? 'swiss' : 'classic';
}

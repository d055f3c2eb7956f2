import { profileToColumns, type ProfileColumns } from '../pprof/columns.js';
import type { Frame, HeapProfile, HiddenFrames } from '../pprof/types.js';
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

/** How firm each kind of evidence is (a switch: asked for every attribution, where a keyed look-up costs more). */
export function evidenceRank(evidence: Evidence): number {
  switch (evidence) {
    case 'symbolized':
      return 3;
    case 'visible-frame':
      return 2;
    case 'size-signature':
      return 1;
    default:
      return 0;
  }
}
export const strongerEvidence = (a: Evidence, b: Evidence): Evidence => (a === b || evidenceRank(a) >= evidenceRank(b) ? a : b);

interface RecordAttribution {
  site: Site;
  caller: Site | undefined;
  /** Made by the profiler while it wrote this profile: left out of every site. */
  profiler: boolean;
  kind: Kind;
  evidence: Evidence;
  component: MapComponent | undefined;
  impl: MapImpl;
  /** The site and kind, as the profile's SiteIndex numbers them. */
  siteId: number;
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

function attribution(sites: SiteIndex, who: Owner, kind: Kind, evidence: Evidence, component: MapComponent | undefined, impl: MapImpl): RecordAttribution {
  return { site: who.site, caller: who.caller, profiler: who.profiler, kind, evidence, component, impl, siteId: sites.id(who.site, kind) };
}

/** A profile's sites (frame and kind), each numbered once, so that records and attributions refer to them by number. */
class SiteIndex {
  readonly keys: string[] = [];
  private readonly byKey = new Map<string, number>();

  id(frame: Site, kind: Kind): number {
    const key = siteKey(frame, kind);
    let id = this.byKey.get(key);
    if (id === undefined) this.byKey.set(key, (id = this.keys.push(key) - 1));
    return id;
  }

  get count(): number {
    return this.keys.length;
  }
}

export function siteKey(site: Site, kind: Kind): string {
  return `${kind}\t${site.function}\t${site.file}\t${site.line}`;
}

/**
 * Every sampled allocation becomes map memory (which part) or other memory.
 * Takes the engine's column layout as the proto decoder writes it, or
 * records as the formats that edit them leave them.
 */
export function attributeProfile(profile: HeapProfile | ProfileColumns): AttributedSnapshot {
  const columns = 'records' in profile ? profileToColumns(profile) : profile;
  const records = columns.stackOf.length;
  // Every record of a stack has the stack's attribution until size signatures say more.
  const facts = new FrameFacts();
  const sites = new SiteIndex();
  const attributions: Attributions = {
    list: columns.stacks.map((stack, s) => attributeStack(stack, columns.hiddenFrames[s] as HiddenFrames, facts, sites)),
    of: columns.stackOf.slice(),
  };
  // One binary has one map implementation: the hidden frames say which when
  // present, then function names or the Go version, then size evidence that
  // only one implementation can produce; otherwise it stays unknown.
  const namedImpl = firstKnown(
    () => dominantImpl(attributions),
    () => implFromGoVersion(columns.goVersion),
    () => facts.implNamed(), // every frame of every stack was asked about by attributeStack
  );
  const profileImpl = applySizeSignatures(columns, attributions, namedImpl, sites);

  // Records share attributions (one per stack, and per component and owner
  // after size signatures): sum each attribution's records first, then fold
  // the attributions into sites in the order their records came.
  const { inuseBytes, allocBytes, inuseObjects, allocObjects } = columns;
  const sums = new Float64Array(SUMS * attributions.list.length);
  const touched = new Uint8Array(attributions.list.length);
  const firstSeen: number[] = [];
  const totals = { inuseBytes: 0, allocBytes: 0, mapInuseBytes: 0 };
  for (let i = 0; i < records; i++) {
    const id = attributions.of[i] as number;
    const a = attributions.list[id] as RecordAttribution;
    totals.inuseBytes += inuseBytes[i] as number;
    totals.allocBytes += allocBytes[i] as number;
    if (a.profiler) continue;
    const at = SUMS * id;
    if (touched[id] === 0) {
      touched[id] = 1;
      firstSeen.push(id);
    }
    sums[at + INUSE_BYTES] = (sums[at + INUSE_BYTES] as number) + (inuseBytes[i] as number);
    sums[at + ALLOC_BYTES] = (sums[at + ALLOC_BYTES] as number) + (allocBytes[i] as number);
    sums[at + INUSE_OBJECTS] = (sums[at + INUSE_OBJECTS] as number) + (inuseObjects[i] as number);
    sums[at + ALLOC_OBJECTS] = (sums[at + ALLOC_OBJECTS] as number) + (allocObjects[i] as number);
    if (a.kind === 'map') totals.mapInuseBytes += inuseBytes[i] as number;
  }

  const usageOf: (SiteUsage | undefined)[] = new Array(sites.count);
  const usages: SiteUsage[] = [];
  const allocBytesByFunction = new Map<string, number>();
  let evidence: Evidence = 'none';
  const callerBytes = new Map<SiteUsage, Map<number, { frame: Site; bytes: number }>>();
  for (const id of firstSeen) {
    const a = attributions.list[id] as RecordAttribution;
    const at = SUMS * id;
    const sum = { inuseBytes: sums[at + INUSE_BYTES] as number, allocBytes: sums[at + ALLOC_BYTES] as number, inuseObjects: sums[at + INUSE_OBJECTS] as number, allocObjects: sums[at + ALLOC_OBJECTS] as number };
    let usage = usageOf[a.siteId];
    if (!usage) {
      usage = {
        key: sites.keys[a.siteId] as string,
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
      usageOf[a.siteId] = usage;
      usages.push(usage);
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
      const callerId = sites.id(a.caller, a.kind);
      const seen = byCaller.get(callerId);
      if (seen) seen.bytes += sum.inuseBytes + sum.allocBytes;
      else byCaller.set(callerId, { frame: a.caller, bytes: sum.inuseBytes + sum.allocBytes });
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
    time: columns.time === undefined ? undefined : new Date(columns.time),
    mapImpl: profileImpl,
    usages,
    allocBytesByFunction,
    totals,
    evidence,
    ...(columns.memProfileRate > 0 ? { memProfileRate: columns.memProfileRate } : {}),
  };
}

const UNKNOWN_SITE: Site = { function: '(unknown)', file: '', line: 0 };

function attributeStack(stack: readonly Frame[], hiddenFrames: HiddenFrames, facts: FrameFacts, sites: SiteIndex): RecordAttribution {
  const { owner, caller, profiler, runtimeFrames } = stackOwners(stack, facts);
  const site = owner ?? UNKNOWN_SITE;
  const who = { site, caller, profiler };
  if (hiddenFrames === 'resolved') {
    const role = hiddenMapRole(stack.slice(0, runtimeFrames));
    if (role) return attribution(sites, who, 'map', 'symbolized', role.component, role.impl);
  }
  const firstVisible = stack[runtimeFrames];
  if (firstVisible && isVisibleMapFrame(firstVisible.function)) {
    return attribution(sites, who, 'map', 'visible-frame', 'unknown', 'unknown');
  }
  return attribution(sites, who, 'other', 'none', undefined, 'unknown');
}

/**
 * Without hidden frames, a site's object sizes may still betray a map: apply
 * the size signature per owner site to records that nothing else explained.
 * Sizes are looked up once per distinct size and site (signature.ts holds
 * the precomputed shapes). When the profile's implementation is not known
 * yet, sizes that only one implementation produces decide it; a site found
 * while it stays unknown is map memory of unknown implementation.
 */
function applySizeSignatures(columns: ProfileColumns, attributions: Attributions, knownImpl: MapImpl, sites: SiteIndex): MapImpl {
  // The records nothing else explained, by owner site, in the order the
  // sites first came. Most sites hold no object a map structure could be:
  // only sites with one get their records listed.
  const NOT_YET = -1;
  const siteOf = new Int32Array(sites.count).fill(NOT_YET);
  const largestOf: number[] = [];
  const { objectSize, stackOf, hiddenFrames } = columns;
  const records = stackOf.length;
  const unexplained = (i: number, a: RecordAttribution): boolean =>
    a.kind === 'other' && (objectSize[i] as number) > 0 && hiddenFrames[stackOf[i] as number] !== 'resolved';
  for (let i = 0; i < records; i++) {
    const id = attributions.of[i] as number;
    const a = attributions.list[id] as RecordAttribution;
    if (!unexplained(i, a)) continue;
    let site = siteOf[a.siteId] as number;
    if (site === NOT_YET) siteOf[a.siteId] = site = largestOf.push(0) - 1;
    if ((objectSize[i] as number) > (largestOf[site] as number)) largestOf[site] = objectSize[i] as number;
  }
  const bySite: number[][] = largestOf.map(() => []);
  for (let i = 0; i < records; i++) {
    const a = attributions.list[attributions.of[i] as number] as RecordAttribution;
    const site = siteOf[a.siteId] as number;
    if (site === NOT_YET || (largestOf[site] as number) < SMALLEST_MAP_STRUCTURE) continue;
    if (unexplained(i, a)) (bySite[site] as number[]).push(i);
  }
  const candidates: { indexes: number[]; signatures: SizeSignature[] }[] = [];
  const proofBytes = { classic: 0, swiss: 0 };
  for (const indexes of bySite) {
    if (indexes.length === 0) continue;
    const structural: number[] = [];
    for (const i of indexes) {
      const size = objectSize[i] as number;
      if (isStructureSize(size) && !structural.includes(size)) structural.push(size);
    }
    const plausible = plausibleShapesOf(structural);
    if (plausible.length === 0) continue;
    const bySize = new Map<number, SizeStats>();
    for (const i of indexes) {
      const size = objectSize[i] as number;
      let stats = bySize.get(size);
      if (!stats) bySize.set(size, (stats = { objects: 0, bytes: 0 }));
      // Allocation figures hold the whole growth history; a profile with
      // in-use figures only still has the live structure.
      const useAlloc = (columns.allocObjects[i] as number) > 0;
      stats.objects += (useAlloc ? columns.allocObjects[i] : columns.inuseObjects[i]) as number;
      stats.bytes += (useAlloc ? columns.allocBytes[i] : columns.inuseBytes[i]) as number;
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
      const component = signature.components.get(objectSize[i] as number);
      if (!component) continue;
      const owner = attributions.of[i] as number;
      let byComponent = asMap.get(owner);
      if (!byComponent) asMap.set(owner, (byComponent = new Map()));
      let mapped = byComponent.get(component);
      if (mapped === undefined) {
        mapped = attributions.list.push(attribution(sites, attributions.list[owner] as RecordAttribution, 'map', 'size-signature', component, impl)) - 1;
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

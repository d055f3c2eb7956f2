import { profileToColumns, type ProfileColumns } from '../pprof/columns.js';
import { FrameMemo } from '../pprof/frame-table.js';
import type { Frame, HeapProfile, HiddenFrames } from '../pprof/types.js';
import { FrameFacts, hiddenMapRole, isVisibleMapFrame, stackOwners, type MapComponent, type MapImpl, type StackOwners } from './frames.js';
import { inferSizeSignatures, plausibleShapesOf, SizeFigures, type SizeSignature } from './signature.js';

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
   * the user's code that feeds a map a library owns. Part of the usage's
   * identity (siteKey): each caller of a library line is a usage of its own,
   * since each is the user's own map (two caches through one library line).
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

/**
 * A profile's attributions, each once, as columns: one per stack at first
 * (attribution i is stack i), then one per component and owner that size
 * signatures find. `of` says which one each record has.
 */
class Attributions {
  readonly site: Site[] = [];
  /** The site's id in the profile's SiteIndex (owner frame and kind). */
  readonly siteId: number[] = [];
  readonly caller: (Site | undefined)[] = [];
  /** The caller's site id (caller frame and this attribution's kind), or -1. */
  readonly callerId: number[] = [];
  /** Made by the profiler while it wrote this profile: left out of every site. */
  readonly profiler: boolean[] = [];
  readonly kind: Kind[] = [];
  readonly evidence: Evidence[] = [];
  readonly component: (MapComponent | undefined)[] = [];
  readonly impl: MapImpl[] = [];

  constructor(
    private readonly sites: SiteIndex,
    readonly of: Int32Array,
  ) {}

  get count(): number {
    return this.site.length;
  }

  /** How many sites the attributions' owners and callers have between them. */
  get siteCount(): number {
    return this.sites.count;
  }

  add(who: StackOwners, kind: Kind, evidence: Evidence, component: MapComponent | undefined, impl: MapImpl): number {
    return this.push(who.owner ?? UNKNOWN_SITE, who.caller, who.profiler, kind, evidence, component, impl);
  }

  /** Attribution `id`'s owner, as another kind, evidence and component. */
  addLike(id: number, kind: Kind, evidence: Evidence, component: MapComponent, impl: MapImpl): number {
    return this.push(this.site[id] as Site, this.caller[id], this.profiler[id] as boolean, kind, evidence, component, impl);
  }

  private push(site: Site, caller: Site | undefined, profiler: boolean, kind: Kind, evidence: Evidence, component: MapComponent | undefined, impl: MapImpl): number {
    this.site.push(site);
    this.siteId.push(this.sites.id(site, kind));
    this.caller.push(caller);
    this.callerId.push(caller ? this.sites.id(caller, kind) : -1);
    this.profiler.push(profiler);
    this.kind.push(kind);
    this.evidence.push(evidence);
    this.component.push(component);
    return this.impl.push(impl) - 1;
  }
}

/** Figures summed per attribution, in a Float64Array of SUMS × attributions. */
const SUMS = 4;
const [INUSE_BYTES, ALLOC_BYTES, INUSE_OBJECTS, ALLOC_OBJECTS] = [0, 1, 2, 3];

/** A profile's sites (frame and kind), each numbered once, so that records and attributions refer to them by number. */
class SiteIndex {
  private readonly frames: Site[] = [];
  private readonly kinds: Kind[] = [];
  /** Decoders share one Frame per function and line (internFrame): most look-ups end at the object. */
  private readonly byFrame = { map: new Map<Site, number>(), other: new Map<Site, number>() };
  /** Equal frames that are distinct objects (records of other formats, restored hidden frames, long names, a frame table started afresh), by key. */
  private readonly byKey = new Map<string, number>();

  id(frame: Site, kind: Kind): number {
    const byFrame = this.byFrame[kind];
    let id = byFrame.get(frame);
    if (id !== undefined) return id;
    const key = keyOf(frame, kind);
    id = this.byKey.get(key);
    if (id === undefined) {
      id = this.frames.push(frame) - 1;
      this.kinds.push(kind);
      this.byKey.set(key, id);
    }
    byFrame.set(frame, id);
    return id;
  }

  /** The site's key (siteKey), or its key with a caller's. */
  key(id: number, caller?: Site): string {
    return keyOf(this.frames[id] as Site, this.kinds[id] as Kind, caller);
  }

  get count(): number {
    return this.frames.length;
  }
}

/**
 * siteKey, kept per frame object (and caller frame object) for the next
 * capture of the binary: a key seen before is hashed already (the series
 * looks every key up).
 */
function keyOf(frame: Site, kind: Kind, caller?: Site): string {
  // A key of long names is made afresh: serializing a key makes it hold its own copy of the names, and a few long ones would fill the memos' bounds.
  const names = frame.function.length + frame.file.length + (caller ? caller.function.length + caller.file.length : 0);
  if (names > MAX_MEMO_KEY_NAMES) return siteKey(frame, kind, caller);
  if (!caller) {
    const keys = KEYS[kind];
    let key = keys.get(frame);
    if (key === undefined) keys.set(frame, (key = siteKey(frame, kind)));
    return key;
  }
  const memo = CALLER_KEYS[kind];
  let keys = memo.byOwner.get(frame);
  if (keys === undefined) memo.byOwner.set(frame, (keys = new Map()));
  let key = keys.get(caller);
  if (key === undefined) {
    // Bounded in all, not per owner: a hostile profile may give one line thousands of callers.
    if (memo.size >= MAX_MEMO_CALLER_KEYS) {
      memo.byOwner.clear();
      memo.size = 0;
      memo.byOwner.set(frame, (keys = new Map()));
    }
    keys.set(caller, (key = siteKey(frame, kind, caller)));
    memo.size++;
  }
  return key;
}
const MAX_MEMO_KEY_NAMES = 512;
/** Keys with a caller kept per kind (few usages have callers; a real binary has hundreds of such pairs): with names of 512 characters at most, ~10M characters. */
const MAX_MEMO_CALLER_KEYS = 10_000;

const keyChars = (key: string): number => key.length;
const KEYS = { map: new FrameMemo<string>(keyChars), other: new FrameMemo<string>(keyChars) };
const CALLER_KEYS = { map: { byOwner: new Map<Site, Map<Site, string>>(), size: 0 }, other: { byOwner: new Map<Site, Map<Site, string>>(), size: 0 } };

/**
 * A usage's identity, and so its series': the owner line and kind, and the
 * caller line when there is one (a library line fed by two callers is two
 * maps). A usage without a caller keeps the owner-only key. The one place a
 * key is made: stored snapshots' keys are derived again through it
 * (usageKey), so captures stored before callers were part of it meet new ones.
 */
export function siteKey(site: Site, kind: Kind, caller?: Site): string {
  const owner = `${kind}\t${site.function}\t${site.file}\t${site.line}`;
  return caller ? `${owner}\t${caller.function}\t${caller.file}\t${caller.line}` : owner;
}

/** A usage's key from its own fields (siteKey), whatever key it was stored with. */
export function usageKey(usage: Pick<SiteUsage, 'site' | 'kind' | 'caller'>): string {
  return siteKey(usage.site, usage.kind, usage.caller);
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
  const attributions = new Attributions(sites, columns.stackOf.slice());
  columns.stacks.forEach((stack, s) => attributeStack(stack, columns.hiddenFrames[s] as HiddenFrames, facts, attributions));
  // One binary has one map implementation: the hidden frames say which when
  // present, then function names or the Go version, then size evidence that
  // only one implementation can produce; otherwise it stays unknown.
  const namedImpl = firstKnown(
    () => dominantImpl(attributions),
    () => implFromGoVersion(columns.goVersion),
    () => facts.implNamed(), // every frame of every stack was asked about by attributeStack
  );
  const profileImpl = applySizeSignatures(columns, attributions, namedImpl);

  // Records share attributions (one per stack, and per component and owner
  // after size signatures): sum each attribution's records first, then fold
  // the attributions into sites in the order their records came.
  const { inuseBytes, allocBytes, inuseObjects, allocObjects } = columns;
  const { of, profiler, kind } = attributions;
  const sums = new Float64Array(SUMS * attributions.count);
  const touched = new Uint8Array(attributions.count);
  const firstSeen: number[] = [];
  const totals = { inuseBytes: 0, allocBytes: 0, mapInuseBytes: 0 };
  for (let i = 0; i < records; i++) {
    const id = of[i] as number;
    totals.inuseBytes += inuseBytes[i] as number;
    totals.allocBytes += allocBytes[i] as number;
    if (profiler[id]) continue;
    const at = SUMS * id;
    if (touched[id] === 0) {
      touched[id] = 1;
      firstSeen.push(id);
    }
    sums[at + INUSE_BYTES] = (sums[at + INUSE_BYTES] as number) + (inuseBytes[i] as number);
    sums[at + ALLOC_BYTES] = (sums[at + ALLOC_BYTES] as number) + (allocBytes[i] as number);
    sums[at + INUSE_OBJECTS] = (sums[at + INUSE_OBJECTS] as number) + (inuseObjects[i] as number);
    sums[at + ALLOC_OBJECTS] = (sums[at + ALLOC_OBJECTS] as number) + (allocObjects[i] as number);
    if (kind[id] === 'map') totals.mapInuseBytes += inuseBytes[i] as number;
  }

  const { siteId, callerId, evidence: evidenceOf, component: componentOf } = attributions;
  // One usage per owner site and caller site (siteKey): without a caller by
  // the owner's id, with one in a small map per owner (few owners have callers).
  const usageOf: (SiteUsage | undefined)[] = new Array(sites.count);
  const usageOfCaller: (Map<number, SiteUsage> | undefined)[] = new Array(sites.count);
  const usages: SiteUsage[] = [];
  const allocBytesByFunction = new Map<string, number>();
  let evidence: Evidence = 'none';
  for (const id of firstSeen) {
    const at = SUMS * id;
    const inuse = sums[at + INUSE_BYTES] as number;
    const alloc = sums[at + ALLOC_BYTES] as number;
    const site = siteId[id] as number;
    const caller = callerId[id] as number;
    const siteEvidence = evidenceOf[id] as Evidence;
    let byCaller: Map<number, SiteUsage> | undefined;
    let usage: SiteUsage | undefined;
    if (caller < 0) usage = usageOf[site];
    else usage = (byCaller = usageOfCaller[site] ??= new Map()).get(caller);
    if (!usage) {
      const impl = attributions.impl[id] as MapImpl;
      const callerFrame = caller >= 0 ? (attributions.caller[id] as Site) : undefined;
      usage = {
        key: sites.key(site, callerFrame),
        site: attributions.site[id] as Site,
        kind: kind[id] as Kind,
        evidence: siteEvidence,
        mapImpl: kind[id] === 'map' ? (impl === 'unknown' ? profileImpl : impl) : 'unknown',
        inuseBytes: 0,
        allocBytes: 0,
        inuseObjects: 0,
        allocObjects: 0,
        components: {},
      };
      // Set afterwards, not spread into the literal: the literal keeps one fast shape for the many usages without a caller.
      if (callerFrame) usage.caller = callerFrame;
      if (byCaller) byCaller.set(caller, usage);
      else usageOf[site] = usage;
      usages.push(usage);
    }
    usage.evidence = strongerEvidence(usage.evidence, siteEvidence);
    usage.inuseBytes += inuse;
    usage.allocBytes += alloc;
    usage.inuseObjects += sums[at + INUSE_OBJECTS] as number;
    usage.allocObjects += sums[at + ALLOC_OBJECTS] as number;
    const component = componentOf[id];
    if (component) {
      usage.components[component] = (usage.components[component] ?? 0) + inuse;
      const allocComponents = (usage.allocComponents ??= {});
      allocComponents[component] = (allocComponents[component] ?? 0) + alloc;
    }
    const fn = (attributions.site[id] as Site).function;
    allocBytesByFunction.set(fn, (allocBytesByFunction.get(fn) ?? 0) + alloc);
    evidence = strongerEvidence(evidence, siteEvidence);
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

function attributeStack(stack: readonly Frame[], hiddenFrames: HiddenFrames, facts: FrameFacts, attributions: Attributions): number {
  const who = stackOwners(stack, facts);
  if (hiddenFrames === 'resolved') {
    const role = hiddenMapRole(stack.slice(0, who.runtimeFrames));
    if (role) return attributions.add(who, 'map', 'symbolized', role.component, role.impl);
  }
  const firstVisible = stack[who.runtimeFrames];
  if (firstVisible && isVisibleMapFrame(firstVisible.function)) {
    return attributions.add(who, 'map', 'visible-frame', 'unknown', 'unknown');
  }
  return attributions.add(who, 'other', 'none', undefined, 'unknown');
}

/**
 * Without hidden frames, a site's object sizes may still betray a map: apply
 * the size signature per owner site to records that nothing else explained.
 * Sizes are looked up once per distinct size and site (signature.ts holds
 * the precomputed shapes). When the profile's implementation is not known
 * yet, sizes that only one implementation produces decide it; a site found
 * while it stays unknown is map memory of unknown implementation.
 */
function applySizeSignatures(columns: ProfileColumns, attributions: Attributions, knownImpl: MapImpl): MapImpl {
  const { objectSize, hiddenFrames, allocObjects, allocBytes, inuseObjects, inuseBytes } = columns;
  const { of, siteId } = attributions;
  const records = of.length;
  // Other memory of stacks whose hidden frames said nothing (attribution i is still stack i).
  const open = new Uint8Array(attributions.count);
  for (let a = 0; a < open.length; a++) open[a] = attributions.kind[a] === 'other' && hiddenFrames[a] !== 'resolved' ? 1 : 0;
  const unexplained = (i: number): boolean => open[of[i] as number] === 1 && (objectSize[i] as number) > 0;

  // The owner sites of those records in the order they first came, each
  // with its largest object and its number of records. Most sites hold no
  // object a map structure could be: only sites with one are looked at.
  const NOT_YET = -1;
  const ownerSite = new Int32Array(attributions.siteCount).fill(NOT_YET);
  const largest: number[] = [];
  const counts: number[] = [];
  for (let i = 0; i < records; i++) {
    if (!unexplained(i)) continue;
    const id = siteId[of[i] as number] as number;
    let site = ownerSite[id] as number;
    if (site === NOT_YET) {
      ownerSite[id] = site = largest.push(0) - 1;
      counts.push(0);
    }
    if ((objectSize[i] as number) > (largest[site] as number)) largest[site] = objectSize[i] as number;
    counts[site] = (counts[site] as number) + 1;
  }
  // Their records, grouped by site in record order (a counting sort: no list per site).
  const starts = new Int32Array(largest.length + 1);
  for (let site = 0; site < largest.length; site++) {
    starts[site + 1] = (starts[site] as number) + ((largest[site] as number) >= SMALLEST_MAP_STRUCTURE ? (counts[site] as number) : 0);
  }
  const grouped = new Int32Array(starts[largest.length] as number);
  const next = starts.slice(0, largest.length);
  for (let i = 0; i < records; i++) {
    if (!unexplained(i)) continue;
    const site = ownerSite[siteId[of[i] as number] as number] as number;
    if ((largest[site] as number) >= SMALLEST_MAP_STRUCTURE) grouped[(next[site] as number)++] = i;
  }

  const candidates: { records: Int32Array; signatures: SizeSignature[] }[] = [];
  const proofBytes = { classic: 0, swiss: 0 };
  const figures = new SizeFigures();
  for (let site = 0; site < largest.length; site++) {
    const from = starts[site] as number;
    const to = starts[site + 1] as number;
    if (from === to) continue;
    figures.clear();
    for (let k = from; k < to; k++) {
      const i = grouped[k] as number;
      // Allocation figures hold the whole growth history; a profile with
      // in-use figures only still has the live structure.
      const useAlloc = (allocObjects[i] as number) > 0;
      figures.add(objectSize[i] as number, (useAlloc ? allocObjects[i] : inuseObjects[i]) as number, (useAlloc ? allocBytes[i] : inuseBytes[i]) as number);
    }
    const plausible = plausibleShapesOf(figures.structureSizes());
    if (plausible.length === 0) continue;
    const signatures = inferSizeSignatures(figures, plausible);
    if (signatures.length === 0) continue;
    for (const s of signatures) {
      if (s.provesClassic) proofBytes.classic += s.explainedBytes;
      if (s.provesSwiss) proofBytes.swiss += s.explainedBytes;
    }
    candidates.push({ records: grouped.subarray(from, to), signatures });
  }
  const impl = knownImpl !== 'unknown' ? knownImpl : implFromProofs(proofBytes);
  for (const { records: indexes, signatures } of candidates) {
    const signature =
      impl === 'unknown'
        ? signatures.reduce((a, b) => (b.explainedBytes > a.explainedBytes ? b : a))
        : signatures.find((s) => s.impl === impl);
    if (!signature) continue;
    // One map attribution per owner attribution and component at this site (records share them, as they share their stacks' attributions).
    const asMap = new Map<number, number>();
    for (let k = 0; k < indexes.length; k++) {
      const i = indexes[k] as number;
      const component = signature.components.get(objectSize[i] as number);
      if (!component) continue;
      const owner = of[i] as number;
      const key = owner * COMPONENT_COUNT + COMPONENT_NUMBER[component];
      let mapped = asMap.get(key);
      if (mapped === undefined) asMap.set(key, (mapped = attributions.addLike(owner, 'map', 'size-signature', component, impl)));
      of[i] = mapped;
    }
  }
  return impl;
}

/** Every MapComponent, numbered for keys (a Record, so a component added to the type must be added here). */
const COMPONENT_NUMBER: Record<MapComponent, number> = { buckets: 0, overflow: 1, groups: 2, table: 3, directory: 4, header: 5, entry: 6, unknown: 7 };
const COMPONENT_COUNT = Object.keys(COMPONENT_NUMBER).length;

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
  const perAttribution = new Float64Array(attributions.count);
  const { of } = attributions;
  for (let i = 0; i < of.length; i++) perAttribution[of[i] as number] = (perAttribution[of[i] as number] as number) + 1;
  let swiss = 0;
  let classic = 0;
  attributions.impl.forEach((impl, id) => {
    if (impl === 'swiss') swiss += perAttribution[id] as number;
    if (impl === 'classic') classic += perAttribution[id] as number;
  });
  if (swiss === 0 && classic === 0) return 'unknown';
  return swiss >= classic ? 'swiss' : 'classic';
}

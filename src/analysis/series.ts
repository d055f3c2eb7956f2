import { strongerEvidence, type AttributedSnapshot, type Evidence, type Kind, type Site, type SiteUsage } from './attribute.js';
import { adviceFor, type AdviceNote, type Pattern } from './advice.js';
import type { MapComponent, MapImpl } from './frames.js';
import { linearSlope } from './gctrace.js';
import { sameFrame } from '../pprof/frame-table.js';

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

export type FindingScope = 'line' | 'function';

export interface Finding {
  site: Site;
  /**
   * The first frame in the target's main module, when it is not the site:
   * the user's code that feeds a map (or buffer) a library owns.
   */
  caller?: Site;
  /**
   * `line`: one allocation site. `function`: memory that grows through
   * several lines of one function while no single line does (a buffer
   * written from several places); `site.line` is then 0 and `lines` lists
   * them. The engine always sets it; absent (older stored findings) means `line`.
   */
  scope?: FindingScope;
  lines?: number[];
  kind: Kind;
  pattern: Pattern;
  inuseBytes: number;
  maxInuseBytes: number;
  growthBytesPerHour: number;
  allocBytesPerHour: number;
  evidence: Evidence;
  mapImpl: MapImpl;
  confidence: number;
  /**
   * Set (true) on a `stable` map finding the window cannot support: one
   * distinct settled capture, or a slope whose upper bound (3 standard
   * errors of sampling) reaches minGrowthBytesPerHour, so growth of the
   * threshold's size is not ruled out. Its growthBytesPerHour is then not
   * a measurement (the table prints ~). Absent otherwise.
   */
  growthUndetermined?: true;
  advice: string;
  components: Partial<Record<MapComponent, number>>;
  series: SeriesPoint[];
}

export interface SeriesAnalysis {
  captures: number;
  /** Captures identical to the one before: no GC cycle ended in between, so no new information. */
  staleCaptures: number;
  /**
   * Captures taken before the target's process last restarted (its
   * allocation counters fell), left out: the window starts at the restart.
   * Absent in analyses stored before it existed.
   */
  restartedCaptures?: number;
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
 * Distinct captures that may still show the time before the window. A heap
 * profile is published as of the last finished GC cycle, and an allocation
 * only shows once the cycle after it has finished (runtime/mprof.go: mallocs
 * count toward cycle C+2); frees of a cycle show once its sweep is done. So
 * the first capture can lag the program by up to two cycles, and what the
 * second adds over the first can still be from before the window (a fill
 * that was not yet published, an old bucket array already freed). Every
 * distinct capture is at least one more finished cycle, so from the third on
 * everything that changes happened inside the window.
 */
export function warmupCaptures(distinct: number): number {
  return distinct >= 4 ? 2 : distinct === 3 ? 1 : 0;
}

/**
 * Per owner site: map in-use bytes over time, growth per hour, allocation
 * rate, and the pattern that explains them. Trends and activity are read
 * from the settled part of the window only (see warmupCaptures); per
 * function as well as per line, so growth spread over lines is not lost.
 */
export function analyzeSeries(
  snapshots: readonly TimedSnapshot[],
  thresholds: Thresholds = DEFAULT_THRESHOLDS,
  sampleNoiseBytes = 512 * 1024,
): SeriesAnalysis {
  if (snapshots.length === 0) throw new Error('analyzeSeries needs at least one capture');
  const ordered = [...snapshots].sort((a, b) => a.time.getTime() - b.time.getTime());
  const unchanged = dropStale(ordered);
  const distinct = sinceLastRestart(unchanged);
  // The window starts at the restart, if any; otherwise with the first capture, repeated ones included.
  const windowStart = distinct.length < unchanged.length ? distinct[0] : ordered[0];
  const last = distinct[distinct.length - 1] as TimedSnapshot;
  const memProfileRate = Math.max(0, ...distinct.map((s) => s.memProfileRate ?? 0)) || DEFAULT_MEM_PROFILE_RATE;
  const context: SeriesContext = {
    snapshots: distinct,
    seconds: distinct.map((s) => s.time.getTime() / 1000),
    settledFrom: warmupCaptures(distinct.length),
    thresholds,
    noise: sampleNoiseBytes,
    memProfileRate,
    floorNoise: sampleNoiseBytes * Math.min(1, memProfileRate / DEFAULT_MEM_PROFILE_RATE),
    elements: distinct.map(() => undefined),
    times: distinct.map((s) => s.time.toISOString()),
  };

  // Every site of the window, indexed once: site → its usage in each capture.
  const sites = indexSites(distinct);
  const reportable = (kind: Kind, inuse: readonly number[], allocDelta: number): boolean => mayBeReported(kind, inuse, allocDelta, context);

  /** Per site: its finding, when it may be reported. */
  const lineFindings: (Finding | undefined)[] = new Array<Finding | undefined>(sites.templates.length);
  /** Per site: whether it grows, once classified (undefined: not yet; sites that cannot be reported wait until a group needs them). */
  const grows: (boolean | undefined)[] = new Array<boolean | undefined>(sites.templates.length);
  const usagesOf = (i: number): (SiteUsage | undefined)[] => sites.usages[i] as (SiteUsage | undefined)[];
  const classifyLine = (i: number, moved = false): Finding => classifySite({ template: sites.templates[i] as SiteUsage, usages: usagesOf(i), scope: 'line', moved }, context);
  sites.templates.forEach((template, i) => {
    const usages = usagesOf(i);
    if (!reportable(template.kind, inuseOf(usages), allocDeltaOf(usages, context))) return;
    const finding = classifyLine(i);
    grows[i] = finding.pattern === 'growing';
    lineFindings[i] = finding;
  });
  const functionFindings: Finding[] = [];
  for (const group of functionGroups(sites.templates)) {
    // Only a growing group is reported; one too small to be can skip its lines and its merge.
    const inuse = distinct.map((_, c) => group.sites.reduce((sum, i) => sum + (sites.usages[i]?.[c]?.inuseBytes ?? 0), 0));
    if (!reportable(group.template.kind, inuse, Number.NaN)) continue;
    const growingLines = group.sites.filter((i) => (grows[i] ??= classifyLine(i).pattern === 'growing'));
    let usages: (SiteUsage | undefined)[] | undefined; // merged only when needed
    const mergedUsages = (): (SiteUsage | undefined)[] => (usages ??= distinct.map((_, c) => mergeUsages(group.sites.map((i) => sites.usages[i]?.[c]), group)));
    const merged = (): Finding => classifySite({ template: group.template, usages: mergedUsages(), scope: 'function', lines: group.lines }, context);
    if (growingLines.length > 0 && group.template.kind === 'map' && merged().pattern !== 'growing') {
      // One map fed from several lines: a table that grows or splits is
      // freed where it was allocated and allocated anew at the line
      // inserting (internal/runtime/maps/table.go grow, split; runtime/map.go
      // hashGrow, evacuate), and a same-size rehash moves it whole. A map's
      // tables are freed only so (or with the whole map), so other lines of
      // the function giving back map memory while this one rises are the
      // map moving between lines: its growth is the function's, which does
      // not grow.
      for (const i of growingLines) {
        if (!othersFell(group.sites.filter((j) => j !== i).map(usagesOf), context)) continue;
        const finding = classifyLine(i, true);
        grows[i] = finding.pattern === 'growing';
        if (lineFindings[i]) lineFindings[i] = finding;
      }
    }
    if (group.sites.some((i) => grows[i])) continue; // its growth is already reported line by line
    const finding = merged();
    if (finding.pattern === 'growing' && isWorthReporting(finding, thresholds, context)) functionFindings.push(finding);
  }
  const findings = [...lineFindings.filter((f): f is Finding => f !== undefined && isWorthReporting(f, thresholds, context)), ...functionFindings];
  findings.sort(bySeriousness);

  return {
    captures: ordered.length,
    staleCaptures: ordered.length - unchanged.length,
    restartedCaptures: unchanged.length - distinct.length,
    window: { start: (windowStart as TimedSnapshot).time.toISOString(), end: (ordered[ordered.length - 1] as TimedSnapshot).time.toISOString() },
    mapImpl: distinct.reduce<MapImpl>((impl, s) => (s.mapImpl !== 'unknown' ? s.mapImpl : impl), 'unknown'),
    totals: { inuseBytes: Math.round(last.totals.inuseBytes), mapInuseBytes: Math.round(last.totals.mapInuseBytes) },
    findings: findings.slice(0, thresholds.maxFindings),
  };
}

/**
 * The captures since the process last restarted. A heap profile's
 * allocation figures count from the process's start and never fall while it
 * runs (the runtime keeps every bucket), so a total below the one before is
 * a new process: mixing the two would read the restart's drop as memory
 * given back and hide every leak. 1% of slack for the scaling's rounding.
 */
function sinceLastRestart(distinct: TimedSnapshot[]): TimedSnapshot[] {
  let start = 0;
  for (let i = 1; i < distinct.length; i++) {
    const before = distinct[i - 1] as TimedSnapshot;
    const after = distinct[i] as TimedSnapshot;
    const totalFell = before.totals.allocBytes > 0 && after.totals.allocBytes < 0.99 * before.totals.allocBytes;
    if (totalFell || functionsAllocationFell(before, after)) start = i;
  }
  return start === 0 ? distinct : distinct.slice(start);
}

/**
 * Whether functions' allocated bytes fell between two captures by more than
 * sampling explains: within one process a stack's allocation counts only
 * accumulate (runtime/mprof.go: memRecordCycle.add, mProf_Malloc), so that
 * is a new process, even one whose start-up has already allocated more in
 * all than the old one had (a cache loaded at start). Functions are
 * compared only where both captures name them (a stored capture keeps the
 * functions of its largest sites), each allowed 1 % for rounding, and the
 * falls must add up to more than four samples.
 */
function functionsAllocationFell(before: TimedSnapshot, after: TimedSnapshot): boolean {
  let fell = 0;
  for (const [fn, bytes] of before.allocBytesByFunction) {
    const now = after.allocBytesByFunction.get(fn);
    if (now !== undefined) fell += Math.max(0, bytes - now - 0.01 * bytes);
  }
  return fell > RESTART_FALL_SAMPLES * (after.memProfileRate ?? before.memProfileRate ?? DEFAULT_MEM_PROFILE_RATE);
}
const RESTART_FALL_SAMPLES = 4;

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

interface ElementBytes {
  inuse: number;
  alloc: number;
  /** In-use objects, for the typical object size of the sampling model. */
  objects: number;
}

interface SeriesContext {
  snapshots: readonly TimedSnapshot[];
  seconds: readonly number[];
  /** Index of the first settled capture. */
  settledFrom: number;
  thresholds: Thresholds;
  noise: number;
  /** Sampling rate of the profiles (the largest seen), for the noise of each estimate. */
  memProfileRate: number;
  /** The absolute noise floor: sampleNoiseBytes (meant for the default rate) scaled down with denser sampling. */
  floorNoise: number;
  /** Per capture, other memory by function (built when first needed). */
  elements: (Map<string, ElementBytes> | undefined)[];
  /** Per capture, its time as findings' series print it. */
  times: readonly string[];
}

interface SiteSeries {
  template: SiteUsage;
  /** One per distinct capture; undefined where the site had nothing. */
  usages: readonly (SiteUsage | undefined)[];
  scope: FindingScope;
  lines?: number[];
  /** Its rise is memory moved from other lines of its function (their fall offsets it): not growth of its own. */
  moved?: boolean;
}

/** A function group's identity: kind, owner function and file, and the caller line (each caller's map is its own, as in siteKey). */
const functionKey = (u: SiteUsage): string => {
  const owner = `${u.kind}\t${u.site.function}\t${u.site.file}`;
  return u.caller ? `${owner}\t${u.caller.function}\t${u.caller.file}\t${u.caller.line}` : owner;
};

const sameCaller = (a: Site | undefined, b: Site | undefined): boolean => a === b || (a !== undefined && b !== undefined && sameFrame(a, b));

interface SiteIndex {
  /** Each site's first usage in the window, in order of first appearance. */
  templates: SiteUsage[];
  /** Per site, its usage in each capture (undefined where it had nothing). */
  usages: (SiteUsage | undefined)[][];
}

/** One pass over the window's usages: a map from site key to index, built once. */
function indexSites(snapshots: readonly TimedSnapshot[]): SiteIndex {
  const indexOf = new Map<string, number>();
  const templates: SiteUsage[] = [];
  const usages: (SiteUsage | undefined)[][] = [];
  snapshots.forEach((snapshot, c) => {
    for (const usage of snapshot.usages) {
      let i = indexOf.get(usage.key);
      if (i === undefined) {
        indexOf.set(usage.key, (i = templates.length));
        templates.push(usage);
        usages.push(new Array<SiteUsage | undefined>(snapshots.length).fill(undefined));
      }
      // A key seen twice in one capture: the last, as a map of the capture's usages by key kept it.
      (usages[i] as (SiteUsage | undefined)[])[c] = usage;
    }
  });
  return { templates, usages };
}

const inuseOf = (usages: readonly (SiteUsage | undefined)[]): number[] => usages.map((u) => u?.inuseBytes ?? 0);

/** What classifySite takes as allocated over the settled window. */
function allocDeltaOf(usages: readonly (SiteUsage | undefined)[], context: SeriesContext): number {
  const points = usages.length;
  const from = Math.min(context.settledFrom, points - 1);
  return Math.max(0, (usages[points - 1]?.allocBytes ?? 0) - (usages[from]?.allocBytes ?? 0));
}

/**
 * Whether a site's finding could pass isWorthReporting, from the figures
 * it tests alone, computed as classifySite rounds them: other memory only
 * when growing and its last in-use figure is large enough; map memory when
 * its peak is, or (churn) what it allocated. `allocDelta` NaN: only growth
 * counts (function groups).
 */
function mayBeReported(kind: Kind, inuse: readonly number[], allocDelta: number, context: SeriesContext): boolean {
  const min = context.thresholds.minMapBytes;
  if (kind === 'other') return Math.round(inuse[inuse.length - 1] as number) >= min;
  if (Math.round(Math.max(...inuse)) >= min) return true;
  if (Number.isNaN(allocDelta)) return false;
  const hours = windowHours(context);
  const perHour = Math.round(hours > 0 ? allocDelta / hours : 0);
  return perHour * Math.max(hours, 0) >= min;
}

/** Hours of the settled window (classifySite's settledHours, isWorthReporting's hours). */
function windowHours(context: SeriesContext): number {
  const seconds = context.seconds;
  return seconds.length > 1 ? ((seconds[seconds.length - 1] as number) - (seconds[Math.min(context.settledFrom, seconds.length - 1)] as number)) / 3600 : 0;
}

interface FunctionGroup {
  key: string;
  /** Indexes of its sites (SiteIndex). */
  sites: number[];
  lines: number[];
  template: SiteUsage;
}

/** Sites of one kind in one function, fed by one caller (or none), with more than one line. */
function functionGroups(templates: readonly SiteUsage[]): FunctionGroup[] {
  // By function name first (a string the decoder made once, hashed once), then kind, file and caller: no key string per site.
  const byFunction = new Map<string, { kind: Kind; file: string; caller: Site | undefined; sites: number[]; lines: number[]; first: SiteUsage }[]>();
  const inOrder: { sites: number[]; lines: number[]; first: SiteUsage }[] = [];
  templates.forEach((usage, i) => {
    const { function: fn, file, line } = usage.site;
    let groups = byFunction.get(fn);
    if (!groups) byFunction.set(fn, (groups = []));
    let group = groups.find((g) => g.kind === usage.kind && g.file === file && sameCaller(g.caller, usage.caller));
    if (!group) {
      groups.push((group = { kind: usage.kind, file, caller: usage.caller, sites: [], lines: [], first: usage }));
      inOrder.push(group);
    }
    group.sites.push(i);
    group.lines.push(line);
  });
  const result: FunctionGroup[] = [];
  for (const group of inOrder) {
    if (group.sites.length < 2) continue;
    const lines = [...new Set(group.lines)].sort((a, b) => a - b);
    if (lines.length < 2) continue;
    const key = functionKey(group.first);
    const site = { ...group.first.site, line: 0 };
    result.push({ key, sites: group.sites, lines, template: { ...group.first, key: `fn\t${key}`, site } });
  }
  return result;
}

/** One function's usages in one capture, summed. */
function mergeUsages(parts: readonly (SiteUsage | undefined)[], group: FunctionGroup): SiteUsage | undefined {
  const present = parts.filter((u): u is SiteUsage => u !== undefined);
  if (present.length === 0) return undefined;
  // The group's lines share its caller (functionGroups): the template's.
  const merged: SiteUsage = { ...group.template, inuseBytes: 0, allocBytes: 0, inuseObjects: 0, allocObjects: 0, components: {}, allocComponents: {} };
  for (const u of present) {
    merged.inuseBytes += u.inuseBytes;
    merged.allocBytes += u.allocBytes;
    merged.inuseObjects += u.inuseObjects;
    merged.allocObjects += u.allocObjects;
    merged.evidence = strongerEvidence(merged.evidence, u.evidence);
    if (merged.mapImpl === 'unknown') merged.mapImpl = u.mapImpl;
    addComponents(merged.components, u.components);
    addComponents((merged.allocComponents ??= {}), u.allocComponents ?? {});
  }
  return merged;
}

function addComponents(into: Partial<Record<MapComponent, number>>, from: Partial<Record<MapComponent, number>>): void {
  for (const [component, bytes] of Object.entries(from) as [MapComponent, number][]) into[component] = (into[component] ?? 0) + bytes;
}

/** What a trend test needs to know about one series of bytes. */
interface Rise {
  rising: boolean;
  /** Rise of the lower envelope over the settled window (bytes). */
  bytes: number;
  tau: number;
  perHour: number;
  /** The window rose, but its latter half shows the rise has ended (stoppedRising); `rising` is then false. */
  stopped: boolean;
}

/** runtime.MemProfileRate when the program leaves it alone (runtime/mprof.go: 512 KiB). */
export const DEFAULT_MEM_PROFILE_RATE = 512 * 1024;

/**
 * One series as a heap profile estimates it: in-use bytes, the bytes ever
 * allocated (a counter, published with the same cycle as the in-use
 * figures), and in-use objects (for the typical object size; 0 when
 * unknown), one value per capture.
 */
interface SampledSeries {
  inuse: readonly number[];
  alloc: readonly number[];
  objects: readonly number[];
}

/**
 * Sampling variance of a heap profile's in-use estimate, per byte, for
 * objects of `size` bytes sampled every `rate` bytes on average.
 *
 * runtime.MemProfileRate samples each allocation of s bytes with
 * probability p = 1 - exp(-s/R) (mallocgc picks the next sample point from
 * an exponential distribution of mean R), and runtime/pprof scales a sample
 * back by 1/p (protomem.go scaleHeapSample). Each object then contributes
 * s/p with probability p and 0 otherwise: an unbiased estimate whose
 * variance is s²(1-p)/p, so B bytes of such objects are known to within
 * B · s(1-p)/p = B · s/(exp(s/R) - 1). That is about B·R for small objects
 * (s ≪ R: the Poisson count of B/R samples, each worth R) and falls to 0
 * for objects much larger than R (always sampled), such as a big bucket
 * array. MemProfileRate 1 records every allocation exactly. With the size
 * unknown, R (the small-object bound, the largest) is assumed.
 */
export function sampledVariancePerByte(size: number, rate: number): number {
  if (rate <= 1) return 0;
  if (!(size > 0)) return rate;
  const x = size / rate;
  return x > 700 ? 0 : size / Math.expm1(x);
}

/**
 * The statistic of a least-squares slope against its standard error under
 * the sampling model above. Successive estimates are NOT independent: an
 * object sampled at allocation stays sampled (or not) for its whole life,
 * so two captures share the sampling error of every object alive at both.
 * With V(s) the variance per byte, Cov(B̂_j, B̂_k) = V · C_jk, C_jk the bytes
 * alive at both captures, at least B_k minus what was allocated between
 * them (A_k - A_j) and at most min(B_j, B_k). The difference of two
 * captures then has variance V · (2ΔA - ΔB): what was allocated plus what
 * was freed in between. A steady cache whose values are all replaced is
 * resampled (large variance); a map whose tables and values stay only adds
 * the noise of what is new (small variance). Returns +∞ for a rise with no
 * sampling error at all (every allocation recorded).
 */
function slopeSignificance(series: SampledSeries, seconds: readonly number[], rate: number): number {
  const { slope, standardError } = sampledSlope(series, seconds, rate);
  if (standardError <= 0) return slope > 0 ? Number.POSITIVE_INFINITY : 0;
  return slope / standardError;
}

/**
 * The least-squares slope (bytes per second) of `trend`, by default the
 * estimates themselves, and its standard error under the sampling model of
 * slopeSignificance, from the estimates in `series`. A lower envelope of the
 * estimates has about their sampling error, so its slope can be judged
 * against the same standard error.
 */
function sampledSlope(series: SampledSeries, seconds: readonly number[], rate: number, trend: readonly number[] = series.inuse): { slope: number; standardError: number } {
  const n = series.inuse.length;
  if (n < 2) return { slope: 0, standardError: 0 };
  const meanT = seconds.reduce((a, t) => a + t, 0) / n;
  const sxx = seconds.reduce((a, t) => a + (t - meanT) ** 2, 0);
  if (sxx <= 0) return { slope: 0, standardError: 0 };
  const w = seconds.map((t) => (t - meanT) / sxx);
  const v = series.inuse.map((b) => Math.max(0, b));
  const slope = w.reduce((a, wk, k) => a + wk * Math.max(0, trend[k] as number), 0);
  const bytes = v.reduce((a, b) => a + b, 0);
  const objects = series.objects.reduce((a, o) => a + Math.max(0, o), 0);
  const perByte = sampledVariancePerByte(objects > 0 ? bytes / objects : 0, rate);
  let variance = 0;
  for (let j = 0; j < n; j++) {
    const vj = v[j] as number;
    const wj = w[j] as number;
    variance += wj * wj * vj;
    for (let k = j + 1; k < n; k++) {
      const vk = v[k] as number;
      const allocated = Math.max(0, (series.alloc[k] as number) - (series.alloc[j] as number));
      const common = Math.min(Math.max(0, vk - allocated), vj, vk);
      variance += 2 * wj * (w[k] as number) * common;
    }
  }
  variance *= perByte;
  return { slope, standardError: Math.sqrt(Math.max(0, variance)) };
}

/**
 * How far (in standard errors) a rise must stand above what sampling alone
 * explains: one-sided, about 1 in 700 for a site that does not grow.
 */
const GROWTH_SIGNIFICANCE = 3;

/**
 * Whether a settled series rises steadily. Maps never shrink, so a map's
 * memory falls only when something it held is freed (an old bucket array
 * after evacuation, overflow buckets after a same-size rehash, a map built
 * and dropped): the trend is taken on a lower envelope (each capture's
 * minimum with the next two), so such short transients never read as
 * growth, and a level counts once two captures hold it. A rise must be a
 * trend that sampling cannot explain across the whole window: the slope of
 * the estimates against its standard error under the sampling model
 * (slopeSignificance), not a difference of two points.
 */
function riseOf(series: SampledSeries, seconds: readonly number[], context: SeriesContext, growthStep = SLICE_GROWTH_STEP): Rise {
  const values = series.inuse;
  const none: Rise = { rising: false, bytes: 0, tau: 0, perHour: 0, stopped: false };
  if (values.length < 2) return none;

  let envelope = values.map((_, i) => Math.min(...values.slice(i, i + 3)));
  let xs = [...seconds];
  if (envelope.length >= 3) {
    envelope = envelope.slice(0, -1);
    xs = xs.slice(0, -1);
  }
  const peak = Math.max(...values);
  const third = Math.max(1, Math.floor(envelope.length / 3));
  const bytes = median(envelope.slice(-third)) - median(envelope.slice(0, third));
  const perHour = linearSlope(xs, envelope) * 3600;
  const tau = kendallTau(envelope, 0.02 * peak);
  const significance = slopeSignificance(series, seconds, context.memProfileRate);
  const rose = significance >= GROWTH_SIGNIFICANCE && bytes >= 0.05 * peak && perHour >= context.thresholds.minGrowthBytesPerHour && tau >= 0.5;
  const stopped = rose && stoppedRising(series, envelope, xs, perHour / 3600, context.memProfileRate, growthStep);
  return { rising: rose && !stopped, bytes, tau, perHour, stopped };
}

/**
 * Memory that grows by moving into a bigger allocation (a map's tables, a
 * slice's array, a buffer) is flat between two moves, and each move adds
 * at least this share of what it held. A map doubles: a classic map's
 * bucket array (runtime/map.go hashGrow: B+1) and a swiss map's table
 * (internal/runtime/maps/table.go: grow to twice the capacity, or split
 * into two of the same capacity), whose tables reach their load limit
 * together since keys hash uniformly. A slice grows by at least a quarter
 * (runtime/slice.go nextslicecap: newcap += (newcap + 3*256) >> 2 past
 * 256 elements). Memory that grows by many small allocations has no such
 * steps; a quarter keeps it from being read as stopped on too short a
 * latter half.
 */
const MAP_GROWTH_STEP = 1;
const SLICE_GROWTH_STEP = 0.25;

/**
 * Bar for "the latter half still rises on its own": lower than
 * GROWTH_SIGNIFICANCE, as it only confirms a trend the whole window
 * already established (one-sided, about 1 in 40).
 */
const STILL_RISING_SIGNIFICANCE = 2;

/**
 * Whether a rise over the window has ended before the window did: growth
 * means still growing at the end (a cache that warmed up in a burst and
 * then holds its bound rises over the window, but not over its latter
 * half). Judged on the latter half of the envelope (the middle capture
 * included) with the sampling model: its slope is not itself significant,
 * and it falls short of the window's slope by more than sampling explains.
 * The second test keeps a latter half too short or too noisy to show
 * anything from overturning a rise (a buffer resampled at every capture,
 * a map between two doublings over a few captures): only a latter half
 * whose flatness sampling cannot explain away stops a rise.
 */
function stoppedRising(series: SampledSeries, envelope: readonly number[], xs: readonly number[], windowSlope: number, rate: number, growthStep: number): boolean {
  const from = Math.floor((envelope.length - 1) / 2);
  const end = envelope.length - 1;
  if (end - from < 1) return false;
  // At the window's rate, the latter half must have been long enough for the next step of growth.
  const size = envelope[end] as number;
  if (windowSlope * ((xs[end] as number) - (xs[from] as number)) < growthStep * size) return false;
  const late: SampledSeries = { inuse: series.inuse.slice(from, end + 1), alloc: series.alloc.slice(from, end + 1), objects: series.objects.slice(from, end + 1) };
  const { slope, standardError } = sampledSlope(late, xs.slice(from), rate, envelope.slice(from));
  if (standardError <= 0) return slope <= 0;
  return slope < STILL_RISING_SIGNIFICANCE * standardError && windowSlope - slope >= GROWTH_SIGNIFICANCE * standardError;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/**
 * Memory that belongs to what a map holds rather than to the map: its own
 * out-of-line keys and values, plus other memory allocated by the user's
 * code that feeds it (the values stored, the key strings) and by the
 * libraries that code calls (a library's per-entry objects such as an LRU's
 * list elements). That code is the map's caller when the map has one (the
 * owner is then a library line other callers feed too: their elements are
 * their maps'), else its owner.
 */
function elementBytes(context: SeriesContext, index: number, usage: SiteUsage | undefined, template: SiteUsage): ElementBytes {
  const index_ = (context.elements[index] ??= indexOtherMemory(context.snapshots[index] as TimedSnapshot));
  const feeder = template.caller?.function ?? template.site.function;
  const get = (key: string): ElementBytes => index_.get(key) ?? NO_BYTES;
  // Other memory whose site is that code, and other memory whose caller is
  // (a caller is never its usage's site: stackOwners): disjoint.
  const parts = [get(`s\t${feeder}`), get(`c\t${feeder}`)];
  const sum = (key: keyof ElementBytes): number => parts.reduce((a, p) => a + p[key], 0);
  const entryBytes = usage?.components.entry ?? 0;
  return {
    inuse: sum('inuse') + entryBytes,
    alloc: sum('alloc') + (usage?.allocComponents?.entry ?? 0),
    // Out-of-line keys and values are over 128 bytes each (runtime/map.go maxKeySize, maxElemSize): at most this many.
    objects: sum('objects') + entryBytes / 128,
  };
}

const NO_BYTES: ElementBytes = { inuse: 0, alloc: 0, objects: 0 };

/** Other memory of one capture by site function (`s`) and caller function (`c`). */
function indexOtherMemory(snapshot: TimedSnapshot): Map<string, ElementBytes> {
  const index = new Map<string, ElementBytes>();
  const add = (key: string, u: SiteUsage): void => {
    const bytes = index.get(key) ?? { inuse: 0, alloc: 0, objects: 0 };
    bytes.inuse += u.inuseBytes;
    bytes.alloc += u.allocBytes;
    bytes.objects += u.inuseObjects;
    index.set(key, bytes);
  };
  for (const u of snapshot.usages) {
    if (u.kind !== 'other') continue;
    add(`s\t${u.site.function}`, u);
    if (u.caller) add(`c\t${u.caller.function}`, u);
  }
  return index;
}

/**
 * Whether what is counted as a map's elements grew more than the map can
 * hold while its tables stayed the same: then most of that memory is not
 * the map's (its owner's or caller's other memory, reported at its own
 * site), and the map is not growing through it. A map is at most full at
 * its load limit and at least half that right after it grows, since it
 * grows to twice its capacity: a classic map at 6.5 entries per bucket to
 * twice the buckets (runtime/map.go overLoadFactor, hashGrow), a swiss
 * table at 7/8 of its slots to twice the slots or two tables
 * (internal/runtime/maps/table.go maxAvgGroupLoad, rehash, split). So
 * while no table is added its entries, and what they hold, at most double.
 * The stretch is the settled captures since the map last allocated
 * capacity (capacityAllocated has not moved: the same sampled tables
 * throughout); the excess must stand above the sampling error of the
 * elements' estimates.
 */
function outgrowsItsTables(elements: readonly ElementBytes[], capacityAlloc: readonly number[], from: number, context: SeriesContext): boolean {
  const end = elements.length - 1;
  let start = from;
  for (let k = end; k > from; k--) {
    if ((capacityAlloc[k] as number) > (capacityAlloc[k - 1] as number)) {
      start = k;
      break;
    }
  }
  if (start >= end) return false;
  const first = elements[start] as ElementBytes;
  const last = elements[end] as ElementBytes;
  const excess = last.inuse - 2 * first.inuse;
  if (excess <= 0) return false;
  // The variance of last - 2·first if they were a growing map's: its entries stay, so the first
  // estimate is part of the last (covariance, as in slopeSignificance) and the rest is new: V·last.
  const perByte = sampledVariancePerByte(last.objects > 0 ? last.inuse / last.objects : 0, context.memProfileRate);
  return excess > GROWTH_SIGNIFICANCE * Math.sqrt(perByte * last.inuse);
}

/**
 * Bytes a map usage allocated that can hold entries: all but what adds no
 * capacity. The load limit counts a classic map's entries against its
 * array's 2^B buckets, not its overflow buckets (runtime/map.go
 * overLoadFactor), and a swiss map's table header and directory come with
 * a split's groups; out-of-line entries are what the map holds.
 */
function capacityAllocated(usage: SiteUsage | undefined): number {
  if (!usage) return 0;
  const c = usage.allocComponents ?? {};
  return Math.max(0, usage.allocBytes - (c.entry ?? 0) - (c.overflow ?? 0) - (c.table ?? 0) - (c.directory ?? 0));
}

/**
 * Whether the sites' in-use memory, summed, fell over the settled window
 * by more than sampling explains (3 SE; the difference of two captures has
 * variance V·(allocated + freed) in between, as in slopeSignificance).
 */
function othersFell(others: readonly (readonly (SiteUsage | undefined)[])[], context: SeriesContext): boolean {
  const end = context.snapshots.length - 1;
  const from = Math.min(context.settledFrom, end);
  const sum = (c: number, field: 'inuseBytes' | 'allocBytes' | 'inuseObjects'): number => others.reduce((a, usages) => a + (usages[c]?.[field] ?? 0), 0);
  const fall = sum(from, 'inuseBytes') - sum(end, 'inuseBytes');
  if (!(fall > 0)) return false;
  const allocated = Math.max(0, sum(end, 'allocBytes') - sum(from, 'allocBytes'));
  const objects = sum(from, 'inuseObjects');
  const perByte = sampledVariancePerByte(objects > 0 ? sum(from, 'inuseBytes') / objects : 0, context.memProfileRate);
  return fall > GROWTH_SIGNIFICANCE * Math.sqrt(perByte * (2 * allocated + fall));
}

/**
 * Whether the settled series leaves growth at the threshold's rate open:
 * the upper bound of its slope (3 standard errors of sampling above the
 * least-squares slope) reaches minGrowthBytesPerHour.
 */
function growthNotRuledOut(series: SampledSeries, seconds: readonly number[], context: SeriesContext): boolean {
  const { slope, standardError } = sampledSlope(series, seconds, context.memProfileRate);
  return (slope + GROWTH_SIGNIFICANCE * standardError) * 3600 >= context.thresholds.minGrowthBytesPerHour;
}

function classifySite(series: SiteSeries, context: SeriesContext): Finding {
  const { template, usages } = series;
  const { snapshots, seconds, noise } = context;
  const points = usages.length;
  const from = Math.min(context.settledFrom, points - 1);
  const settled = <T>(values: readonly T[]): T[] => values.slice(from);
  const inuse = usages.map((u) => u?.inuseBytes ?? 0);
  const alloc = usages.map((u) => u?.allocBytes ?? 0);
  const settledSeconds = settled(seconds);
  const settledInuse = settled(inuse);
  const settledPoints = settledInuse.length;
  const lastInuse = inuse[points - 1] as number;
  const maxInuse = Math.max(...inuse);
  const meanInuse = settledInuse.reduce((a, b) => a + b, 0) / settledPoints;
  const settledHours = ((settledSeconds[settledPoints - 1] as number) - (settledSeconds[0] as number)) / 3600;
  const allocDelta = Math.max(0, (alloc[points - 1] as number) - (alloc[from] as number));
  const allocPerHour = settledHours > 0 ? allocDelta / settledHours : 0;
  const enoughData = settledPoints >= 2;
  const dataWeight = Math.min(1, (points - 1) / 4);

  // Growth is memory that stays: a site whose rise is a small share of what
  // it allocated meanwhile is building and dropping, whatever its in-use
  // figure does at capture times. Both as rates over the settled window:
  // rise.bytes is a median-of-thirds difference over a shorter span than
  // the window's allocation, so comparing the two bytes figures took a map
  // that keeps one copy in five, rising steadily, for churn.
  const keeps = (rise: Rise, allocated: number): boolean => rise.rising && (allocated <= 0 || settledHours <= 0 || rise.perHour >= (0.15 * allocated) / settledHours);
  const settledSeries: SampledSeries = { inuse: settledInuse, alloc: settled(alloc), objects: settled(usages.map((u) => u?.inuseObjects ?? 0)) };
  const inuseRise = riseOf(settledSeries, settledSeconds, context, template.kind === 'map' ? MAP_GROWTH_STEP : SLICE_GROWTH_STEP);
  let inuseGrows = !series.moved && keeps(inuseRise, allocDelta);
  let pattern: Pattern;
  let strength: number;
  let note: AdviceNote | undefined;
  let growthPerHour = inuseRise.perHour;

  // Churn is memory given back: what was allocated over the window less what it added in use (a site that keeps
  // everything it allocates is not churn, however much that is next to its mean, as at a sparse sampling rate).
  const freedDelta = Math.max(0, allocDelta - Math.max(0, lastInuse - (inuse[from] as number)));
  const churnByAlloc = enoughData ? freedDelta >= 3 * Math.max(meanInuse, noise) : (alloc[0] as number) >= 10 * Math.max(inuse[0] as number, noise);
  const churnStrength = enoughData ? 0.6 + 0.4 * Math.min(1, allocDelta / (10 * Math.max(meanInuse, noise))) : 0.3;

  if (template.kind === 'other') {
    if (inuseGrows) {
      pattern = 'growing';
      strength = 0.5 + 0.5 * inuseRise.tau * dataWeight;
    } else if (churnByAlloc) {
      pattern = 'churn';
      strength = churnStrength;
    } else {
      pattern = 'stable';
      strength = enoughData ? 0.4 + 0.4 * dataWeight : 0.2;
    }
  } else {
    const component = (name: MapComponent): number[] => usages.map((u) => u?.components[name] ?? 0);
    const entries = component('entry');
    const structure = inuse.map((bytes, i) => bytes - (entries[i] as number));
    const elements = usages.map((u, i) => elementBytes(context, i, u, template));
    const elementRise = riseOf(
      { inuse: settled(elements.map((e) => e.inuse)), alloc: settled(elements.map((e) => e.alloc)), objects: settled(elements.map((e) => e.objects)) },
      settledSeconds,
      context,
    );
    const elementsAllocated = (elements[points - 1] as ElementBytes).alloc - (elements[from] as ElementBytes).alloc;
    // The map with what it holds: one footprint, and more samples to read its trend from than either part alone.
    const structureAlloc = usages.map((u) => Math.max(0, (u?.allocBytes ?? 0) - (u?.allocComponents?.entry ?? 0)));
    const structureObjects = usages.map((u, i) => Math.max(0, (u?.inuseObjects ?? 0) - (entries[i] as number) / 128));
    const footprint: SampledSeries = {
      inuse: settled(structure.map((b, i) => b + (elements[i] as ElementBytes).inuse)),
      alloc: settled(structureAlloc.map((a, i) => a + (elements[i] as ElementBytes).alloc)),
      objects: settled(structureObjects.map((o, i) => o + (elements[i] as ElementBytes).objects)),
    };
    const footprintRise = riseOf(footprint, settledSeconds, context);
    // A map's own memory grows only as entries go in, and between doublings
    // it is flat: when it holds elements of its own, whether its growth has
    // ended shows in them (the footprint's latter half), long before the
    // tables would have to double again.
    const holdsElements = Math.max(...settled(elements.map((e) => e.inuse))) >= context.floorNoise;
    if (holdsElements && footprintRise.stopped) inuseGrows = false;
    const elementsGrow =
      (keeps(elementRise, elementsAllocated) ||
        (!series.moved && keeps(footprintRise, Math.max(0, (footprint.alloc[footprint.alloc.length - 1] as number) - (footprint.alloc[0] as number))))) &&
      !outgrowsItsTables(elements, usages.map(capacityAllocated), from, context);
    const mapImplOfSite = template.mapImpl !== 'unknown' ? template.mapImpl : (snapshots[points - 1] as TimedSnapshot).mapImpl;
    // A classic map under insert/delete churn gains overflow buckets until a
    // same-size rehash (runtime/map.go tooManyOverflowBuckets: about one per
    // bucket, at most 2^15), then levels off: overflow buckets still being
    // allocated while the bucket array keeps its size (and what the map
    // holds does not grow) are churn at a bound. Read from the allocation
    // counter, which only rises, rather than from the in-use figure, which
    // a rehash resets.
    const overflowAllocated = (usages[points - 1]?.allocComponents?.overflow ?? 0) - (usages[from]?.allocComponents?.overflow ?? 0);
    // And the arrays it allocates meanwhile are those same-size rehashes: one
    // array of 2^B buckets per 2^B overflow buckets (runtime/map.go
    // tooManyOverflowBuckets, hashGrow -> makeBucketArray(t, h.B)), about as
    // many bytes as the overflow buckets. A map built and dropped over and
    // over allocates arrays of every size at each build (twice its last) and
    // overflow buckets only where a build outruns its spare ones: that is
    // churn of whole maps, not of entries.
    const bucketsAllocated = (usages[points - 1]?.allocComponents?.buckets ?? 0) - (usages[from]?.allocComponents?.buckets ?? 0);
    const overflowChurns =
      mapImplOfSite === 'classic' &&
      bucketsAllocated <= 2 * (component('buckets')[points - 1] as number) + overflowAllocated &&
      overflowAllocated >= Math.max(4 * context.floorNoise, 2 * Math.sqrt(overflowAllocated * context.memProfileRate)) &&
      !riseOf({ inuse: settled(component('buckets')), alloc: settled(usages.map((u) => u?.allocComponents?.buckets ?? 0)), objects: [] }, settledSeconds, context).rising;

    const structureLast = structure[points - 1] as number;
    const structureMax = Math.max(...settled(structure));
    const heldAtHighWater = structureLast > 0 && structureLast >= 0.8 * structureMax;
    const allocatesMap = allocDelta > Math.max(noise, 0.1 * structureLast);
    const lastElements = elements[points - 1] as ElementBytes;
    // Evidence of draining: what the map held (entries, values, keys) was
    // allocated in amounts that matter next to the map, and is gone. Gone
    // within the window (fell from a peak by more than sampling explains),
    // or no longer fed (the owner allocated less than one map's worth of
    // elements meanwhile): a cleared map refilled to its size, by code that
    // also makes short-lived garbage, has elements allocated since the
    // process began and none in use at any capture, and is not drained.
    const linked = lastElements.alloc >= 0.25 * structureLast;
    const elementsPeak = Math.max(...settled(elements.map((e) => e.inuse)));
    const fellInWindow =
      elementsPeak >= 0.25 * structureLast &&
      lastElements.inuse <= 0.1 * elementsPeak &&
      elementsPeak - lastElements.inuse >= GROWTH_SIGNIFICANCE * Math.sqrt(elementsPeak * context.memProfileRate);
    const stoppedFeeding = elementsAllocated <= Math.max(context.floorNoise, structureLast);
    const drained = linked && lastElements.inuse <= 0.1 * lastElements.alloc && lastElements.inuse <= 0.25 * structureLast && (fellInWindow || stoppedFeeding);

    if (inuseGrows && !overflowChurns) {
      pattern = 'growing';
      strength = 0.5 + 0.5 * inuseRise.tau * dataWeight;
    } else if (elementsGrow) {
      // Between its doublings a growing map's own memory is flat; what it
      // holds keeps growing.
      pattern = 'growing';
      strength = 0.5 + 0.4 * elementRise.tau * dataWeight;
      growthPerHour = Math.max(growthPerHour, 0);
    } else if (overflowChurns) {
      pattern = 'churn';
      strength = 0.6 + 0.2 * dataWeight;
      note = 'overflow-churn';
    } else if (churnByAlloc) {
      pattern = 'churn';
      strength = churnStrength;
    } else if (enoughData && heldAtHighWater && !allocatesMap && drained) {
      pattern = 'retained';
      strength = 0.9 * (0.5 + 0.5 * dataWeight);
    } else {
      pattern = 'stable';
      strength = enoughData ? 0.4 + 0.4 * dataWeight : 0.2;
      if (enoughData && heldAtHighWater && !allocatesMap && !linked) {
        note = 'undecidable';
        strength *= 0.8;
      } else if (
        !enoughData ||
        // A rise that ended (in itself or in what the map holds), or that moved from other lines, is shown, not open.
        (!series.moved &&
          !inuseRise.stopped &&
          !(holdsElements && footprintRise.stopped) &&
          growthNotRuledOut(settledSeries, settledSeconds, context))
      ) {
        note = 'insufficient';
      }
    }
  }

  const evidence = usages.reduce<Evidence>((e, u) => (u ? strongerEvidence(e, u.evidence) : e), template.evidence);
  const lastUsage = [...usages].reverse().find((u) => u !== undefined) ?? template;
  const mapImpl = template.kind === 'map' ? (lastUsage.mapImpl !== 'unknown' ? lastUsage.mapImpl : (snapshots[points - 1] as TimedSnapshot).mapImpl) : 'unknown';
  const caller = lastUsage.caller ?? template.caller;
  return {
    site: template.site,
    ...(caller ? { caller } : {}),
    scope: series.scope,
    ...(series.lines ? { lines: series.lines } : {}),
    kind: template.kind,
    pattern,
    inuseBytes: Math.round(lastInuse),
    maxInuseBytes: Math.round(maxInuse),
    growthBytesPerHour: Math.round(growthPerHour),
    allocBytesPerHour: Math.round(allocPerHour),
    evidence,
    mapImpl,
    confidence: round2(strength * EVIDENCE_WEIGHT[evidence]),
    ...(note === 'insufficient' ? { growthUndetermined: true as const } : {}),
    advice: adviceFor(template.kind, pattern, mapImpl, note),
    components: roundComponents(lastUsage.components),
    series: context.times.map((time, i) => ({ time, inuseBytes: Math.round(inuse[i] as number) })),
  };
}

function roundComponents(components: Partial<Record<MapComponent, number>>): Partial<Record<MapComponent, number>> {
  const out: Partial<Record<MapComponent, number>> = {};
  for (const [component, bytes] of Object.entries(components) as [MapComponent, number][]) out[component] = Math.round(bytes);
  return out;
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

function isWorthReporting(finding: Finding, thresholds: Thresholds, context: SeriesContext): boolean {
  const seconds = context.seconds;
  const hours = seconds.length > 1 ? ((seconds[seconds.length - 1] as number) - (seconds[Math.min(context.settledFrom, seconds.length - 1)] as number)) / 3600 : 0;
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

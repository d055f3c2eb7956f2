import { isProfilerFunction, isRuntimeFunction } from '../pprof/runtime-frames.js';
import { BoundedMemo, FrameMemo, sameFrame } from '../pprof/frame-table.js';
import type { Frame } from '../pprof/types.js';

export type MapImpl = 'classic' | 'swiss' | 'unknown';

/** Which part of a map an allocation is. */
export type MapComponent =
  | 'buckets' // classic bucket array
  | 'overflow' // classic overflow bucket
  | 'groups' // swiss table groups
  | 'table' // swiss table header
  | 'directory' // swiss table directory
  | 'header' // hmap / swiss Map header
  | 'entry' // a key or value over 128 bytes, stored out of line
  | 'unknown';

interface MapFrameRole {
  component: MapComponent;
  impl: MapImpl;
}

const SWISS = 'internal/runtime/maps.';

/** Hidden runtime frames that name map memory, most specific first in a stack. */
const HIDDEN_MAP_FRAMES = new Map<string, MapFrameRole>([
  ['runtime.makeBucketArray', { component: 'buckets', impl: 'classic' }],
  ['runtime.hashGrow', { component: 'buckets', impl: 'classic' }],
  ['runtime.(*hmap).newoverflow', { component: 'overflow', impl: 'classic' }],
  ['runtime.(*hmap).createOverflow', { component: 'overflow', impl: 'classic' }],
  [`${SWISS}newarray`, { component: 'groups', impl: 'swiss' }],
  [`${SWISS}newGroups`, { component: 'groups', impl: 'swiss' }],
  [`${SWISS}(*table).reset`, { component: 'groups', impl: 'swiss' }],
  [`${SWISS}(*Map).growToSmall`, { component: 'groups', impl: 'swiss' }],
  [`${SWISS}newTable`, { component: 'table', impl: 'swiss' }],
  [`${SWISS}(*Map).installTableSplit`, { component: 'directory', impl: 'swiss' }],
  [`${SWISS}(*Map).growToTable`, { component: 'directory', impl: 'swiss' }],
  [`${SWISS}NewMap`, { component: 'header', impl: 'swiss' }],
  [`${SWISS}NewEmptyMap`, { component: 'header', impl: 'swiss' }],
  [`${SWISS}newobject`, { component: 'entry', impl: 'swiss' }],
]);

/** Entry points into the map runtime; what they allocate directly is header or entry memory. */
function mapEntryPointRole(fn: string): MapFrameRole | undefined {
  if (/^runtime\.makemap(_small|64)?$/.test(fn)) return { component: 'header', impl: 'unknown' };
  if (/^runtime\.(mapassign|growWork|evacuate|mapclone|mapclone2)(_\w+)?$/.test(fn)) {
    return { component: 'entry', impl: 'unknown' };
  }
  if (fn.startsWith(SWISS)) return { component: 'unknown', impl: 'swiss' };
  return undefined;
}

/** Visible (non-runtime) frames that still mean "this allocation is map memory". */
const VISIBLE_MAP_FRAME = /^(reflect\.(mapassign\w*|makemap\w*|MakeMap\w*|mapclone\w*)|maps\.clone|maps\.Clone|runtime\.mapclone)$/;

/** The role of the map runtime in a stack's hidden (leaf) runtime frames, if any. */
export function hiddenMapRole(hiddenFrames: readonly Frame[]): MapFrameRole | undefined {
  let entryPoint: MapFrameRole | undefined;
  let impl: MapImpl = 'unknown';
  for (const frame of hiddenFrames) {
    const known = HIDDEN_MAP_FRAMES.get(frame.function);
    if (known) return known;
    const role = mapEntryPointRole(frame.function);
    if (role) {
      if (role.impl !== 'unknown') impl = role.impl;
      entryPoint ??= role;
    }
  }
  return entryPoint ? { component: entryPoint.component, impl } : undefined;
}

export function isVisibleMapFrame(fn: string): boolean {
  return VISIBLE_MAP_FRAME.test(fn);
}

/** Top-level packages of the Go standard library (as of Go 1.27). */
const STDLIB_ROOTS = new Set(
  (
    'archive bufio bytes cmp compress container context crypto database debug embed encoding errors expvar ' +
    'flag fmt go hash html image index internal io iter log maps math mime net os path plugin reflect regexp ' +
    'runtime slices sort strconv strings structs sync syscall testing text time unicode unique unsafe weak vendor'
  ).split(' '),
);

/**
 * "encoding/json.(*decodeState).object" → "encoding/json". Type arguments
 * are not the function's package: "slices.Insert[go.shape.struct { V
 * example.com/m/other.V }]" is in slices. Only the head of a name is read,
 * so a name of megabytes costs what a real one does.
 */
export function packagePath(fn: string): string {
  const head = fn.length > MAX_SYMBOL_HEAD ? fn.slice(0, MAX_SYMBOL_HEAD) : fn;
  const bracket = head.indexOf('[');
  const name = bracket < 0 ? head : head.slice(0, bracket);
  const lastSlash = name.lastIndexOf('/');
  const dot = name.indexOf('.', lastSlash + 1);
  return dot < 0 ? name : name.slice(0, dot);
}

/** Far past any Go package path; file paths stop at PATH_MAX. */
const MAX_SYMBOL_HEAD = 1024;
const PATH_MAX = 4096;

export function isStdlibFrame(fn: string): boolean {
  let known = STDLIB_BY_FUNCTION.get(fn);
  if (known === undefined) {
    const path = packagePath(fn);
    const slash = path.indexOf('/');
    known = STDLIB_ROOTS.has(slash < 0 ? path : path.slice(0, slash));
    // Asked for every frame of every stack: once per function name, a bounded memo (it outlives one profile).
    if (fn.length <= MAX_MEMO_NAME) STDLIB_BY_FUNCTION.set(fn, known);
  }
  return known;
}

const STDLIB_BY_FUNCTION = new BoundedMemo<string, boolean>((fn) => fn.length);
const MAX_MEMO_NAME = 1024;

/** What the stack walks ask of one frame, as bits. */
const RUNTIME = 1;
const STDLIB = 2;
const MAIN_MODULE = 4;
const UNNAMED = 8;
const PROFILER = 16;
/** A function only one map implementation has (the runtime hides only the leaf ones, so callers can show them). */
const SWISS_ONLY = 32;
const CLASSIC_ONLY = 64;

/** Facts are the frame's value's: one memo for every profile this process reads. */
const FACTS = new FrameMemo<number>();

const CLASSIC_ONLY_FUNCTION = /^runtime\.(makeBucketArray|hashGrow|growWork|evacuate|\(\*hmap\)\.)/;

/**
 * The facts of each distinct frame, worked out once: decoders share one
 * Frame object per function and line (internFrame), and a profile's stacks
 * walk the same frames over and over, as do the captures of one binary.
 */
export class FrameFacts {
  /** Every fact of every frame this profile asked about. */
  private seen = 0;

  of(frame: Frame): number {
    let facts = FACTS.get(frame);
    if (facts === undefined) {
      const fn = frame.function;
      facts =
        (isRuntimeFunction(fn) ? RUNTIME : 0) |
        (isStdlibFrame(fn) ? STDLIB : 0) |
        (isMainModuleFrame(frame) ? MAIN_MODULE : 0) |
        (fn === '?' ? UNNAMED : 0) |
        (isProfilerFunction(fn) ? PROFILER : 0) |
        (fn.startsWith('internal/runtime/maps.') ? SWISS_ONLY : CLASSIC_ONLY_FUNCTION.test(fn) ? CLASSIC_ONLY : 0);
      FACTS.set(frame, facts);
    }
    this.seen |= facts;
    return facts;
  }

  /** The map implementation named by functions of only one of them among the frames asked about so far, if exactly one is. */
  implNamed(): MapImpl {
    const swiss = (this.seen & SWISS_ONLY) !== 0;
    const classic = (this.seen & CLASSIC_ONLY) !== 0;
    return swiss === classic ? 'unknown' : swiss ? 'swiss' : 'classic';
  }
}

/** Who a stack's memory belongs to, from one walk of its frames. */
export interface StackOwners {
  /**
   * The code that owns the allocation: the first frame (leaf first) outside
   * the runtime and the standard library, so a map filled by json.Unmarshal
   * is owned by the caller of Unmarshal, not by reflect. Falls back to the
   * first non-runtime frame, then to the leaf.
   */
  owner: Frame | undefined;
  /**
   * The first frame in the main module: the user's code that feeds a map
   * owned by a library. Undefined when that is the owner itself or no frame
   * is the user's.
   */
  caller: Frame | undefined;
  /** Made by the profiler while it wrote a profile (isProfilerStack). */
  profiler: boolean;
  /** How many leaf frames are runtime frames (the ones Go hides). */
  runtimeFrames: number;
}

export function stackOwners(stack: readonly Frame[], facts: FrameFacts = new FrameFacts()): StackOwners {
  let owner: Frame | undefined;
  let firstNonRuntime: Frame | undefined;
  let caller: Frame | undefined;
  let profiler = false;
  let runtimeFrames = -1;
  for (let i = 0; i < stack.length; i++) {
    const frame = stack[i] as Frame;
    const f = facts.of(frame);
    if ((f & RUNTIME) === 0 && runtimeFrames < 0) {
      runtimeFrames = i;
      firstNonRuntime = frame;
    }
    if (owner === undefined && (f & (STDLIB | UNNAMED)) === 0) owner = frame;
    if (caller === undefined && (f & MAIN_MODULE) !== 0) caller = frame;
    if ((f & PROFILER) !== 0) profiler = true;
  }
  owner ??= firstNonRuntime ?? stack[0];
  if (caller && owner && sameFrame(caller, owner)) caller = undefined;
  return { owner, caller, profiler, runtimeFrames: runtimeFrames < 0 ? stack.length : runtimeFrames };
}

/** See StackOwners.owner. */
export function ownerFrame(stack: readonly Frame[]): Frame | undefined {
  return stackOwners(stack).owner;
}

/**
 * Whether a frame is in the target's main module, the code its owners
 * wrote. Package main always is. Other packages are told by where the
 * build found their source: dependencies come from the module cache (a
 * path segment `module@version`, also under -trimpath) or a vendor folder;
 * the main module's own packages come from neither.
 */
export function isMainModuleFrame(frame: Frame): boolean {
  const fn = frame.function;
  if (fn === '?' || isStdlibFrame(fn)) return false;
  if (packagePath(fn) === 'main') return true;
  if (frame.file === '') return false;
  const file = frame.file.length > PATH_MAX ? frame.file.slice(0, PATH_MAX) : frame.file;
  return !file.includes('@') && !file.includes('/vendor/');
}

/** See StackOwners.caller. */
export function callerFrame(stack: readonly Frame[]): Frame | undefined {
  return stackOwners(stack).caller;
}

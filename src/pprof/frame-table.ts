import type { Frame } from './types.js';

/**
 * One Frame object per function, file and line for the whole process, as
 * far as a bound allows. The captures of one binary name the same frames
 * capture after capture, so what the engine works out per frame object (its
 * facts, its site keys) is worked out once, not once per capture. Frames
 * are values: when the table is full it starts afresh, and a frame made
 * after that is equal to, if not the same object as, one made before.
 *
 * A process that reads one profile (the CLI on one file) never needs the
 * table: the first profile's frames are only listed, and go into the table
 * when a second profile begins (beginProfile).
 */
export function internFrame(fn: string, file: string, line: number): Frame {
  // Long names stay out: a look-up compares them whole (and V8 hashes strings past 16k characters by length alone).
  if (fn.length > MAX_INTERNED_NAME || file.length > MAX_INTERNED_NAME) return { function: fn, file, line };
  if (!tableInUse) {
    const frame = { function: fn, file, line };
    if (firstFrames.length < MAX_INTERNED_FRAMES) firstFrames.push(frame);
    return frame;
  }
  const frames = framesOf(fn);
  const known = lineIn(frames, file, line);
  if (known) return known;
  const frame = { function: fn, file, line };
  hold(frames, frame);
  return frame;
}

/** A decoder starts a profile: from the second one on, frames are looked up in the table (the first one's put there now). */
export function beginProfile(): void {
  if (tableInUse) return;
  if (profilesBegun++ === 0) return;
  tableInUse = true;
  for (const frame of firstFrames) {
    const frames = framesOf(frame.function);
    if (!lineIn(frames, frame.file, frame.line)) hold(frames, frame);
  }
  firstFrames = [];
}

/** Frames are values: two are the same frame when function, file and line are (the objects may differ). */
export function sameFrame(a: Frame, b: Frame): boolean {
  return a === b || (a.line === b.line && a.function === b.function && a.file === b.file);
}

/** A function has a few allocating lines: a short scan beats a map per function. */
function lineIn(frames: readonly Frame[], file: string, line: number): Frame | undefined {
  for (const frame of frames) if (frame.line === line && frame.file === file) return frame;
  return undefined;
}

function framesOf(fn: string): Frame[] {
  let frames = INTERNED.get(fn);
  if (!frames) INTERNED.set(fn, (frames = []));
  return frames;
}

/** Into the table, within its bounds: the whole table starts afresh when full (a full one's frames stay valid, only unshared). */
function hold(frames: Frame[], frame: Frame): void {
  if (frames.length >= MAX_FRAMES_PER_FUNCTION) return;
  let into = frames;
  const chars = nameChars(frame);
  if (interned >= MAX_INTERNED_FRAMES || internedChars + chars > MAX_NAME_CHARS) {
    INTERNED.clear();
    interned = 0;
    internedChars = 0;
    into = framesOf(frame.function);
  }
  into.push(frame);
  interned++;
  internedChars += chars;
}

/** What a frame's names weigh in the bounds (each frame counted whole, though a function's frames share its name). */
const nameChars = (frame: Frame): number => frame.function.length + frame.file.length;

/** How many frames the table holds (for tests and tools). */
export function internedFrames(): number {
  return interned;
}

/** How many characters of names the table's frames hold, counted per frame (for tests and tools). */
export function internedNameChars(): number {
  return internedChars;
}

/** By function name, the frames made of it. */
const INTERNED = new Map<string, Frame[]>();
let interned = 0;
let internedChars = 0;
let tableInUse = false;
let profilesBegun = 0;
let firstFrames: Frame[] = [];
/** A large service's heap profile names ~25k frames (bench (a): 23.6k); a hostile one only makes the table start afresh more often. */
const MAX_INTERNED_FRAMES = 100_000;
/**
 * Characters of names the table, and each memo, may hold: (a)'s 23.6k
 * frames hold 3.5M. The decode thread reads every tenant's profiles in one
 * heap, so a profile of long names makes the table start afresh sooner, and
 * never holds more than this.
 */
export const MAX_NAME_CHARS = 8 * 1024 * 1024;
/** Go symbols are far shorter; a longer name gets a frame of its own. */
const MAX_INTERNED_NAME = 1024;
/** Lines past this many in one function get frames of their own: equal, not the same object (every user compares by value when objects differ). */
export const MAX_FRAMES_PER_FUNCTION = 64;

/** Each memo holds at most this many entries. */
const MAX_MEMO_ENTRIES = MAX_INTERNED_FRAMES;

/**
 * A memo of what is worked out from a key's value alone, bounded like the
 * table: at most MAX_MEMO_ENTRIES entries and MAX_NAME_CHARS characters of
 * names (`charsOf`: what an entry holds), starting afresh when full. It
 * outlives one profile, so what it holds is bounded whatever a profile holds.
 */
export class BoundedMemo<K, V> {
  private readonly known = new Map<K, V>();
  private chars = 0;
  constructor(private readonly charsOf: (key: K, value: V) => number) {}

  get(key: K): V | undefined {
    return this.known.get(key);
  }

  set(key: K, value: V): void {
    const chars = this.charsOf(key, value);
    if (this.known.size >= MAX_MEMO_ENTRIES || this.chars + chars > MAX_NAME_CHARS) {
      this.known.clear();
      this.chars = 0;
    }
    this.known.set(key, value);
    this.chars += chars;
  }

  /** Characters of names (and values) held (for tests and tools). */
  get heldChars(): number {
    return this.chars;
  }
}

/** A memo keyed by frame objects, for what is worked out from a frame's value alone. */
export class FrameMemo<T> extends BoundedMemo<Frame, T> {
  /** `valueChars`: characters a value holds of its own (a string made from the names), counted with the frame's. */
  constructor(valueChars: (value: T) => number = () => 0) {
    super((frame, value) => nameChars(frame) + valueChars(value));
  }
}

import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Frame, HiddenFrames } from '../pprof/types.js';

/**
 * A decoded profile's distinct stacks (ProfileColumns' stacks, addresses and
 * hidden-frames state), laid out to cross from the decode thread to the
 * event loop cheaply: each distinct string and frame once, everything else
 * in typed arrays that postMessage moves. Cloning the Frame objects and
 * arrays themselves costs the receiving loop one block of 70–170 ms for a
 * 122k-sample profile (35k stacks of 37k frames); this costs a clone of
 * its ~10k strings, and the objects are rebuilt in slices.
 *
 * Frames shared by several stacks stay shared, and so do the arrays.
 */
export interface CompactStacks {
  /** Function names and file names, each once. */
  strings: string[];
  /** Per distinct frame: index of its function and file in `strings`, and its line. */
  frameFunction: Int32Array;
  frameFile: Int32Array;
  frameLine: Float64Array;
  /** Stack s is frames stackFrames[stackStart[s] .. stackStart[s+1]). */
  stackStart: Int32Array;
  stackFrames: Int32Array;
  /** Stack s has addresses addressValues[addressStart[s] .. addressStart[s+1]). */
  addressStart: Int32Array;
  addressValues: Float64Array;
  /** Per stack: HIDDEN_FRAMES index. */
  hidden: Uint8Array;
}

const HIDDEN_FRAMES: readonly HiddenFrames[] = ['resolved', 'unresolved', 'absent'];

export function compactStacks(stacks: readonly Frame[][], addresses: readonly number[][], hiddenFrames: readonly HiddenFrames[]): CompactStacks {
  const strings: string[] = [];
  const stringIndex = new Map<string, number>();
  const intern = (s: string): number => {
    let i = stringIndex.get(s);
    if (i === undefined) stringIndex.set(s, (i = strings.push(s) - 1));
    return i;
  };
  const frameIndex = new Map<Frame, number>();
  const fn: number[] = [];
  const file: number[] = [];
  const line: number[] = [];
  const stackStart = new Int32Array(stacks.length + 1);
  let frameCount = 0;
  let addressCount = 0;
  for (let s = 0; s < stacks.length; s++) {
    frameCount += (stacks[s] as Frame[]).length;
    addressCount += (addresses[s] as number[]).length;
  }
  const stackFrames = new Int32Array(frameCount);
  const addressStart = new Int32Array(stacks.length + 1);
  const addressValues = new Float64Array(addressCount);
  const hidden = new Uint8Array(stacks.length);
  let f = 0;
  let a = 0;
  for (let s = 0; s < stacks.length; s++) {
    for (const frame of stacks[s] as Frame[]) {
      let i = frameIndex.get(frame);
      if (i === undefined) {
        frameIndex.set(frame, (i = fn.length));
        fn.push(intern(frame.function));
        file.push(intern(frame.file));
        line.push(frame.line);
      }
      stackFrames[f++] = i;
    }
    stackStart[s + 1] = f;
    for (const address of addresses[s] as number[]) addressValues[a++] = address;
    addressStart[s + 1] = a;
    hidden[s] = HIDDEN_FRAMES.indexOf(hiddenFrames[s] as HiddenFrames);
  }
  return {
    strings,
    frameFunction: Int32Array.from(fn),
    frameFile: Int32Array.from(file),
    frameLine: Float64Array.from(line),
    stackStart,
    stackFrames,
    addressStart,
    addressValues,
    hidden,
  };
}

/** The typed arrays of `compact`, for postMessage's transfer list. */
export function compactStackBuffers(compact: CompactStacks): ArrayBuffer[] {
  return [compact.frameFunction, compact.frameFile, compact.frameLine, compact.stackStart, compact.stackFrames, compact.addressStart, compact.addressValues, compact.hidden].map(
    (array) => array.buffer as ArrayBuffer,
  );
}

/** The stacks, addresses and hidden-frames states again, rebuilt `perSlice` stacks (or frames) between yields to the event loop. */
export async function expandStacks(compact: CompactStacks, perSlice: number): Promise<{ stacks: Frame[][]; addresses: number[][]; hiddenFrames: HiddenFrames[] }> {
  const frames: Frame[] = new Array<Frame>(compact.frameFunction.length);
  for (let i = 0; i < frames.length; i++) {
    if (i > 0 && i % perSlice === 0) await yieldToLoop();
    frames[i] = { function: compact.strings[compact.frameFunction[i] as number] as string, file: compact.strings[compact.frameFile[i] as number] as string, line: compact.frameLine[i] as number };
  }
  const count = compact.hidden.length;
  const stacks: Frame[][] = new Array<Frame[]>(count);
  const addresses: number[][] = new Array<number[]>(count);
  const hiddenFrames: HiddenFrames[] = new Array<HiddenFrames>(count);
  for (let s = 0; s < count; s++) {
    if (s > 0 && s % perSlice === 0) await yieldToLoop();
    const stack: Frame[] = [];
    for (let f = compact.stackStart[s] as number; f < (compact.stackStart[s + 1] as number); f++) stack.push(frames[compact.stackFrames[f] as number] as Frame);
    stacks[s] = stack;
    addresses[s] = Array.from(compact.addressValues.subarray(compact.addressStart[s] as number, compact.addressStart[s + 1] as number));
    hiddenFrames[s] = HIDDEN_FRAMES[compact.hidden[s] as number] as HiddenFrames;
  }
  return { stacks, addresses, hiddenFrames };
}

import type { Frame } from './types.js';

/** The frames runtime/pprof hides at the leaf end of heap stacks. */
export function isRuntimeFunction(fn: string): boolean {
  return fn.startsWith('runtime.') || fn.startsWith('internal/runtime/');
}

/** pprof.Do and the label functions run the user's own code under labels: that is not the profiler. */
const PPROF_LABELS = /^runtime\/pprof\.(Do\b|.*label)/i;

/** Allocated by the profiler itself while it wrote a profile (runtime/pprof, net/http/pprof). */
export function isProfilerStack(stack: readonly Frame[]): boolean {
  return stack.some((f) => isProfilerFunction(f.function));
}

export function isProfilerFunction(fn: string): boolean {
  return fn.startsWith('net/http/pprof.') || (fn.startsWith('runtime/pprof.') && !PPROF_LABELS.test(fn));
}

export * from './attribute.js';
export * from './series.js';
export * from './gctrace.js';
export { adviceFor, type AdviceNote, type Pattern } from './advice.js';
export type { MapComponent, MapImpl } from './frames.js';
export { ownerFrame, callerFrame, isMainModuleFrame, isStdlibFrame, hiddenMapRole } from './frames.js';
export { isProfilerStack } from '../pprof/runtime-frames.js';
export { allocatedSize } from './sizeclass.js';

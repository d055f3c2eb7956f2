export * from './attribute.js';
export * from './series.js';
export * from './gctrace.js';
export { adviceFor, type Pattern } from './advice.js';
export type { MapComponent, MapImpl } from './frames.js';
export { ownerFrame, isStdlibFrame, hiddenMapRole } from './frames.js';
export { allocatedSize } from './sizeclass.js';

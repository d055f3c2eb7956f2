export * from './types.js';
export * from './errors.js';
export { decodeHeapColumns, decodeHeapProfile, DEFAULT_MAX_PROFILE_BYTES, type DecodeLimits } from './decode.js';
export { parseDebug1Heap, debug1ToHeapProfile, unnamedPcs, symbolQuestions, isDebug1Heap, type SymbolQuestions, type Debug1Heap } from './debug1.js';
export { decodeProtoColumns, decodeProtoHeap } from './proto.js';
export { profileFromColumns, profileToColumns, type ProfileColumns } from './columns.js';
export { MAX_SYMBOL_QUERY, parseSymbolResponse, symbolQueries, type SymbolTable } from './symbols.js';
export { gunzipLimited, isGzip } from './gzip.js';
export { scaleHeapSample } from './scale.js';

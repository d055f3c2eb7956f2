export * from './errors.js';
export * from './http.js';
export * from './capture.js';
export * from './direct.js';
export { BinaryKnowledgeCache } from './binary-knowledge.js';

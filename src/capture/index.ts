export * from './errors.js';
export * from './http.js';
export * from './capture.js';
export * from './direct.js';
export { BinaryKnowledgeCache, DEFAULT_KNOWLEDGE_LIMITS, type KnowledgeLimits } from './binary-knowledge.js';
export { ByteBudget, BudgetHold } from './budget.js';

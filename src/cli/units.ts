import { durationMs } from '../api/duration.js';

/** Go-style durations: "500ms", "10s", "1m30s". */
export function parseDuration(text: string): number {
  try {
    return durationMs(text);
  } catch {
    throw new UsageError(`invalid duration "${text}" (e.g. 10s, 1m30s, 500ms)`);
  }
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1e3, ki: 1024, m: 1e6, mi: 1024 ** 2, g: 1e9, gi: 1024 ** 3 };

/** Byte sizes: "1048576", "64Mi", "1Gi", "500k". */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kKmMgG]i?)?[bB]?$/.exec(text.trim());
  const factor = SIZE_UNITS[(match?.[2] ?? '').toLowerCase()];
  if (!match || factor === undefined) throw new UsageError(`invalid size "${text}" (e.g. 64Mi, 1048576)`);
  return Math.round(Number(match[1]) * factor);
}

export function parseCount(text: string, name: string, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be a whole number ≥ ${min}, got "${text}"`);
  return n;
}

export { formatBytes } from '../analysis/bytes.js';

/** Wrong flags or arguments: exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

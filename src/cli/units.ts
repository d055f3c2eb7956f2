const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go-style durations: "500ms", "10s", "1m30s". */
export function parseDuration(text: string): number {
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(text)) throw new UsageError(`invalid duration "${text}" (e.g. 10s, 1m30s, 500ms)`);
  let total = 0;
  for (const match of text.matchAll(DURATION_PART)) total += Number(match[1]) * (UNIT_MS[match[2] as string] as number);
  return total;
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

export function formatBytes(bytes: number): string {
  const abs = Math.abs(bytes);
  if (abs >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
  if (abs >= 1024 ** 2) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  if (abs >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${Math.round(bytes)} B`;
}

/** Wrong flags or arguments: exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** The CRD's Go-style durations ("5m", "1h30m", "500ms") in milliseconds. */
export function durationMs(text: string): number {
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(text)) throw new Error(`invalid duration "${text}"`);
  let total = 0;
  for (const match of text.matchAll(PART)) total += Number(match[1]) * (UNIT_MS[match[2] as string] as number);
  return total;
}

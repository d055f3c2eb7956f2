/** An RFC 3339 time as the API server writes it (`metav1.Time`, log lines with `timestamps=true`): at most 35 characters. */
export const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/** Longer than any RFC 3339 time: a token past it is not read at all. */
const MAX_TIMESTAMP_LENGTH = 40;

/** `text` when it is an RFC 3339 time that parses, else undefined. */
export function rfc3339(text: string | undefined): string | undefined {
  if (text === undefined || text.length > MAX_TIMESTAMP_LENGTH || !RFC3339.test(text)) return undefined;
  return Number.isFinite(Date.parse(text)) ? text : undefined;
}

/**
 * The timestamp of the last of `lines` (a `pods/log?timestamps=true`
 * answer) that starts with one: where the next read resumes (sinceTime).
 * A log server that is a tenant's (spec.cluster) can put anything first
 * on a line; what is kept in Redis and sent back is a time or nothing.
 */
export function lastLogTimestamp(lines: readonly string[]): string | undefined {
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i] ?? '';
    const space = line.indexOf(' ');
    const stamp = rfc3339(line.slice(0, space < 0 ? Math.min(line.length, MAX_TIMESTAMP_LENGTH + 1) : Math.min(space, MAX_TIMESTAMP_LENGTH + 1)));
    if (stamp) return stamp;
  }
  return undefined;
}

/**
 * What the status may hold of a profile's own bytes (function and file
 * names, line numbers, sums of its values). The API server refuses a whole
 * status write when one field breaks the CRD's schema, so a hostile or odd
 * profile could otherwise freeze a probe's status.
 */

export const INT32_MAX = 2 ** 31 - 1;

/**
 * Control characters and bidirectional overrides (which could forge lines
 * or reorder text in kubectl's output) become U+FFFD; at most `max` code
 * points are kept (the CRD's maxLength counts those).
 */
export function printable(text: string, max: number): string {
  // eslint-disable-next-line no-control-regex
  return [...text.replace(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]/gu, '\ufffd')].slice(0, max).join('');
}

/** A line number for an int32 field with minimum 0 (0: unknown). */
export function int32Line(line: number): number {
  return Number.isInteger(line) && line >= 0 && line <= INT32_MAX ? line : 0;
}

/** A byte count for an int64 field: whole, and 0 when not a finite number. */
export function wholeBytes(value: number, { signed = false } = {}): number {
  if (!Number.isFinite(value)) return 0;
  const whole = Math.round(value);
  return signed ? whole : Math.max(0, whole);
}

/** A source frame as the status keeps it. */
export function statusFrame(frame: { function: string; file: string; line: number }): { function: string; file: string; line: number } {
  return { function: printable(frame.function, 512), file: printable(frame.file, 512), line: int32Line(frame.line) };
}

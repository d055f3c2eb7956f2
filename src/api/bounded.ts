/**
 * What the status may hold of a profile's own bytes (function and file
 * names, line numbers, sums of its values). The API server refuses a whole
 * status write when one field breaks the CRD's schema, so a hostile or odd
 * profile could otherwise freeze a probe's status.
 */

export const INT32_MAX = 2 ** 31 - 1;

/**
 * Terminal escape sequences, introduced by ESC or by their C1 forms: CSI
 * (`ESC [` … final byte: colours, cursor moves, screen clears), the string
 * sequences OSC/DCS/SOS/PM/APC (`ESC ]` … BEL or ST: window titles, OSC 8
 * hyperlinks, OSC 52 clipboard writes) and two-byte escapes. Dropped whole,
 * so nothing of them (`[2J`) is left to read as text. A string sequence
 * never runs past a line break, so an unterminated one cannot eat lines.
 */
// eslint-disable-next-line no-control-regex
const ESCAPE_SEQUENCE = /(?:\u001b\[|\u009b)[0-?]*[ -/]*[@-~]?|(?:\u001b[\]PX^_]|[\u0090\u0098\u009d-\u009f])[^\u0007\u001b\u009c\n]*(?:\u0007|\u001b\\|\u009c)?|\u001b[ -/]*[0-~]?/gu;

/**
 * Control characters and bidirectional overrides (which could forge lines
 * or reorder text in kubectl's output or on a terminal) become U+FFFD,
 * after escape sequences are dropped whole; at most `max` code points are
 * kept (the CRD's maxLength counts those). The one sanitiser for anything
 * a target or a tenant supplied, in the status and on a terminal alike.
 */
export function printable(text: string, max: number): string {
  return [...text.replace(ESCAPE_SEQUENCE, '').replace(NOT_PRINTABLE, '\ufffd')].slice(0, max).join('');
}

// eslint-disable-next-line no-control-regex
const NOT_PRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]/gu;

/**
 * Text for a terminal: `printable()` line by line, so line breaks stay the
 * only control characters that reach it (a carriage return, which could
 * overwrite what was printed, does not).
 */
export function printableLines(text: string): string {
  return text
    .split('\n')
    .map((line) => printable(line, Number.POSITIVE_INFINITY))
    .join('\n');
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

import { ProfileError } from './errors.js';

/** PC (return address - 1) to function name, as /debug/pprof/symbol answers. */
export type SymbolTable = Map<number, string>;

/**
 * Longest query string of one symbol request. With an API server proxy path
 * in front, the request line stays well inside the 8 KiB header limits of
 * Go's server, the API server and common proxies.
 */
export const MAX_SYMBOL_QUERY = 3000;

/**
 * Longest symbol name kept (bytes of UTF-8). Go's symbol names are package
 * path + receiver + function; the longest in the standard library and in
 * the third-party modules of test/targets is under 200, and generic
 * instantiations (`pkg.F[...]`, the runtime prints type arguments as
 * `...`) stay short. 1 KiB is five times that: a longer name is not a Go
 * symbol anyone reads, and is cut at the limit (never dropped: the PC was
 * asked for and stays named).
 */
export const MAX_SYMBOL_NAME_BYTES = 1024;

/**
 * The most a truthful answer to one request can be: a query of
 * MAX_SYMBOL_QUERY characters names at most MAX_SYMBOL_QUERY / 4 PCs ("0x1+"
 * is the shortest word), each answered by one line of its PC (at most
 * "0x" + 16 hex digits), a space, a name of at most MAX_SYMBOL_NAME_BYTES
 * and a newline, after the `num_symbols: N` line. About 780 KB: the default
 * ceiling on one symbol answer (--max-symbol-answer-bytes) rounds it up to 1 MiB.
 */
export const MAX_TRUTHFUL_SYMBOL_ANSWER = 32 + Math.floor(MAX_SYMBOL_QUERY / 4) * (18 + 1 + MAX_SYMBOL_NAME_BYTES + 1);

/** `0xPC+0xPC+...` query strings (what `GET /debug/pprof/symbol?...` reads), each at most MAX_SYMBOL_QUERY long. */
export function symbolQueries(pcs: readonly number[], maxLength = MAX_SYMBOL_QUERY): string[] {
  const queries: string[] = [];
  let current = '';
  for (const pc of pcs) {
    const word = `0x${pc.toString(16)}`;
    if (current && current.length + 1 + word.length > maxLength) {
      queries.push(current);
      current = '';
    }
    current = current ? `${current}+${word}` : word;
  }
  if (current) queries.push(current);
  return queries;
}

/** The PCs a query asks for (the inverse of symbolQueries). */
export function queriedPcs(query: string): Set<number> {
  const pcs = new Set<number>();
  for (const word of query.split('+')) {
    const pc = Number.parseInt(word, 16);
    if (Number.isFinite(pc)) pcs.add(pc);
  }
  return pcs;
}

const NEWLINE = 0x0a;
const SPACE = 0x20;

/**
 * Parses `num_symbols: N` followed by `0xPC name` lines; unknown PCs are
 * simply absent. Only PCs in `asked` are kept (a target that names PCs
 * nobody asked for grows nothing), each name cut at MAX_SYMBOL_NAME_BYTES.
 * Names are read out of the bytes one by one, so none of them shares (and
 * keeps alive) the answer's text.
 */
export function parseSymbolResponse(answer: Uint8Array | string, asked?: ReadonlySet<number>): SymbolTable {
  const bytes = typeof answer === 'string' ? Buffer.from(answer, 'utf8') : Buffer.from(answer.buffer, answer.byteOffset, answer.byteLength);
  const firstEnd = lineEnd(bytes, 0);
  if (!/^num_symbols: \d+/.test(bytes.toString('latin1', 0, Math.min(firstEnd, 64)))) {
    throw new ProfileError('NotAProfile', 'symbol endpoint did not answer "num_symbols: N"');
  }
  const table: SymbolTable = new Map();
  for (let start = firstEnd + 1; start < bytes.length; ) {
    const end = lineEnd(bytes, start);
    const space = bytes.indexOf(SPACE, start);
    if (space > start && space < end && space - start <= 20) {
      const pc = Number.parseInt(bytes.toString('latin1', start, space), 16);
      if (Number.isFinite(pc) && (!asked || asked.has(pc)) && !table.has(pc)) {
        const name = cutName(bytes, space + 1, end);
        if (name) table.set(pc, name);
      }
    }
    start = end + 1;
  }
  return table;
}

function lineEnd(bytes: Buffer, from: number): number {
  const at = bytes.indexOf(NEWLINE, from);
  return at < 0 ? bytes.length : at;
}

/** The name in bytes [from, to), trimmed, at most MAX_SYMBOL_NAME_BYTES (cut on a character boundary). */
function cutName(bytes: Buffer, from: number, to: number): string {
  let start = from;
  let end = to;
  while (start < end && isBlank(bytes[start] ?? 0)) start++;
  while (end > start && isBlank(bytes[end - 1] ?? 0)) end--;
  if (end - start > MAX_SYMBOL_NAME_BYTES) {
    end = start + MAX_SYMBOL_NAME_BYTES;
    // Never split a UTF-8 sequence: back up over continuation bytes.
    while (end > start && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  }
  return bytes.toString('utf8', start, end);
}

function isBlank(byte: number): boolean {
  return byte === SPACE || byte === 0x09 || byte === 0x0d;
}

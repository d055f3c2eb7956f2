import { ProfileError } from './errors.js';

/** PC (return address - 1) to function name, as /debug/pprof/symbol answers. */
export type SymbolTable = Map<number, string>;

/**
 * Longest query string of one symbol request. With an API server proxy path
 * in front, the request line stays well inside the 8 KiB header limits of
 * Go's server, the API server and common proxies.
 */
export const MAX_SYMBOL_QUERY = 3000;

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

/** Parses `num_symbols: N` followed by `0xPC name` lines; unknown PCs are simply absent. */
export function parseSymbolResponse(text: string): SymbolTable {
  const lines = text.split('\n');
  if (!/^num_symbols: \d+/.test(lines[0] ?? '')) {
    throw new ProfileError('NotAProfile', 'symbol endpoint did not answer "num_symbols: N"');
  }
  const table: SymbolTable = new Map();
  for (const line of lines.slice(1)) {
    const space = line.indexOf(' ');
    if (space <= 0) continue;
    const pc = Number.parseInt(line.slice(0, space), 16);
    const name = line.slice(space + 1).trim();
    if (Number.isFinite(pc) && name) table.set(pc, name);
  }
  return table;
}

import { ProfileError } from './errors.js';

/** PC (return address - 1) to function name, as /debug/pprof/symbol answers. */
export type SymbolTable = Map<number, string>;

/** The POST body net/http/pprof's symbol handler reads: `0xPC+0xPC+...`. */
export function formatSymbolRequest(pcs: readonly number[]): string {
  return pcs.map((pc) => `0x${pc.toString(16)}`).join('+');
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

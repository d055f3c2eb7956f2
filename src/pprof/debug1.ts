import { ProfileError } from './errors.js';
import { scaleHeapSample } from './scale.js';
import { isRuntimeFunction } from './runtime-frames.js';
import { sameFrame } from './frame-table.js';
import { queriedPcs, symbolQueries, type SymbolTable } from './symbols.js';
import type { Frame, HeapProfile, HeapRecord } from './types.js';

/** A `/debug/pprof/heap?debug=1` profile before symbol resolution. */
export interface Debug1Heap {
  /** runtime.MemProfileRate (the header says heap/<2*rate>). */
  memProfileRate: number;
  records: Debug1Record[];
  /** Frames the `#` lines named, keyed by the PC they print (return address - 1). */
  framesByPc: Map<number, Frame[]>;
  /** Entry of the physical function each named PC is in (`func+0xOFF`: PC - OFF). */
  entryByPc: Map<number, number>;
  /** `# Name = value` lines of the trailing runtime.MemStats block. */
  memStats: Map<string, number>;
  /** What this parse holds on a JS heap, estimated as PARSED_COST counts it (at most maxParsedBytes). */
  parsedBytes: number;
}

/** Raw sampled counts, exactly as printed. */
export interface Debug1Record {
  inuseObjects: number;
  inuseBytes: number;
  allocObjects: number;
  allocBytes: number;
  /** Return addresses, leaf first, including the runtime frames `#` lines hide. */
  pcs: number[];
}

const HEADER = /^heap profile: (\d+): (\d+) \[(\d+): (\d+)\] @ heap\/(\d+)\s*$/;
const RECORD = /^(\d+): (\d+) \[(\d+): (\d+)\] @((?: 0x[0-9a-fA-F]+)*)\s*$/;
const MEMSTAT = /^# (\w+) = (\d+)\s*$/;

/**
 * Bytes of JS heap one parsed object holds, measured (Node 20, x64) with
 * process.memoryUsage().heapUsed around a structured clone of parses of
 * 8 MiB texts (the copy the event loop gets from the decode thread), GC'd
 * before and after: one-PC records 275 B each, 4-PC 271 B, 16-PC 280 B,
 * 64-PC 646 B (134 B + 8 B per PC, an array of PCs holding room for ~17);
 * a `#` line naming a new PC 188 B (its Frame, the frame array and two map
 * entries). A `#` line adding an inlined frame to a named PC, and a
 * MemStats line, are a Frame or a map entry and their strings: counted as
 * a named PC. Recorded Go answers come out at 0.8-1.3 of their text
 * (test/pprof/testdata, test/verdicts/testdata/streams: 450-920 text bytes
 * per record, one `#` line per visible PC).
 */
export const PARSED_COST = {
  /** A record with up to 16 PCs. */
  record: 280,
  /** Each PC past the 16th. */
  pc: 8,
  /** A PC a `#` line names, an inlined frame, a MemStats line. */
  named: 192,
} as const;

/**
 * A debug=1 may parse into at most this many bytes, or its text's length,
 * whichever is larger: the parse stays within the bytes the text took
 * (the in-flight budget counts those), as Go's own answers do (0.8-1.3 of
 * the text, the larger ratios in answers of tens of KB), while a text of
 * records shaped to be short (23 bytes: one PC, no `#` line: 275 bytes
 * parsed) is refused once its parse passes its text.
 */
export const MIN_PARSED_BYTES = 1024 * 1024;

export interface Debug1Limits {
  /** Refuse (`TooLarge`) once the parse holds more than this (PARSED_COST). Default: the text's length, at least MIN_PARSED_BYTES. */
  maxParsedBytes?: number;
}

export function isDebug1Heap(text: string): boolean {
  return text.startsWith('heap profile:');
}

/** `text`: the answer, decoded or as its UTF-8 bytes (read a line at a time: no string of the whole answer). */
export function parseDebug1Heap(text: string | Uint8Array, limits: Debug1Limits = {}): Debug1Heap {
  const maxParsedBytes = limits.maxParsedBytes ?? Math.max(MIN_PARSED_BYTES, text.length);
  let parsedBytes = 0;
  const count = (bytes: number): void => {
    parsedBytes += bytes;
    if (parsedBytes > maxParsedBytes) {
      throw new ProfileError('TooLarge', `debug=1 heap profile: its records parse into more than ${maxParsedBytes} bytes (limit)`);
    }
  };
  const lines = lineReader(text);
  const header = HEADER.exec(lines.next() ?? '');
  if (!header) {
    throw new ProfileError('NotAProfile', 'not a debug=1 heap profile: first line is not "heap profile: ... @ heap/N"');
  }
  const memProfileRate = Number(header[5]) / 2;
  const records: Debug1Record[] = [];
  const framesByPc = new Map<number, Frame[]>();
  const entryByPc = new Map<number, number>();
  const memStats = new Map<string, number>();
  let current: Debug1Record | undefined;
  let framesOfCurrent = new Set<number>();

  for (let i = 1, line = lines.next(); line !== undefined; i++, line = lines.next()) {
    if (line.startsWith('#\t')) {
      if (!current) continue;
      const parts = line.split(/\t+/);
      // "#", "0xPC", "func+0xOFF", "file:line"
      const pc = Number.parseInt(parts[1] ?? '', 16);
      const location = parts[3] ?? '';
      const offset = /\+0x([0-9a-fA-F]+)$/.exec(parts[2] ?? '');
      const name = (parts[2] ?? '').replace(/\+0x[0-9a-fA-F]+$/, '');
      const colon = location.lastIndexOf(':');
      if (!Number.isFinite(pc) || !name) continue;
      const frame: Frame = {
        function: name,
        file: colon > 0 ? location.slice(0, colon) : location,
        line: colon > 0 ? Number(location.slice(colon + 1)) || 0 : 0,
      };
      // Inlined calls print several frames with one PC; keep them together,
      // once, however many records repeat that PC.
      if (!framesOfCurrent.has(pc)) {
        framesOfCurrent.add(pc);
        // Every record prints its PCs' `#` lines again: only a PC named for the first time adds to the parse.
        if (!framesByPc.has(pc)) count(PARSED_COST.named);
        framesByPc.set(pc, [frame]);
        if (offset) entryByPc.set(pc, pc - Number.parseInt(offset[1] ?? '0', 16));
      } else {
        const frames = framesByPc.get(pc);
        if (frames && !frames.some((f) => sameFrame(f, frame))) {
          count(PARSED_COST.named);
          frames.push(frame);
        }
      }
      continue;
    }
    const memStat = MEMSTAT.exec(line);
    if (memStat) {
      count(PARSED_COST.named);
      memStats.set(memStat[1] ?? '', Number(memStat[2]));
      continue;
    }
    const record = RECORD.exec(line);
    if (record) {
      current = {
        inuseObjects: Number(record[1]),
        inuseBytes: Number(record[2]),
        allocObjects: Number(record[3]),
        allocBytes: Number(record[4]),
        pcs: (record[5] ?? '')
          .trim()
          .split(' ')
          .filter(Boolean)
          .map((pc) => Number.parseInt(pc, 16)),
      };
      count(PARSED_COST.record + PARSED_COST.pc * Math.max(0, current.pcs.length - 16));
      records.push(current);
      framesOfCurrent = new Set();
      continue;
    }
    if (line.trim() === '' || line.startsWith('#')) continue;
    throw new ProfileError('Malformed', `debug=1 heap profile: unexpected line ${i + 1}: ${truncate(line)}`);
  }
  return { memProfileRate, records, framesByPc, entryByPc, memStats, parsedBytes };
}

/** The text's lines one at a time (an array of all of them would hold ~40 bytes per line more than the parse). */
function lineReader(text: string | Uint8Array): { next(): string | undefined } {
  const bytes = typeof text === 'string' ? undefined : Buffer.from(text.buffer, text.byteOffset, text.byteLength);
  const length = text.length;
  let at = 0;
  return {
    next(): string | undefined {
      if (at > length) return undefined;
      // A UTF-8 sequence never holds the byte 0x0a: lines split the same in bytes as in the decoded text.
      const found = bytes ? bytes.indexOf(0x0a, at) : (text as string).indexOf('\n', at);
      const end = found < 0 ? length : found;
      const line = bytes ? bytes.toString('utf8', at, end) : (text as string).slice(at, end);
      at = end + 1;
      return line;
    },
  };
}

/** PCs (as the symbol endpoint wants them: return address - 1) that no `#` line named. */
export function unnamedPcs(heap: Debug1Heap): number[] {
  const unnamed = new Set<number>();
  for (const record of heap.records) {
    for (const pc of record.pcs) {
      if (!heap.framesByPc.has(pc - 1)) unnamed.add(pc - 1);
    }
  }
  return [...unnamed];
}

/** What a capture asks /symbol about one debug=1 (symbolQuestions). */
export interface SymbolQuestions {
  /**
   * The unnamed PCs (unnamedPcs, in that order) that matter to this
   * capture: those the binary already has names for, and those `queries`
   * ask. The others stay unnamed this time, as if never seen.
   */
  pcs: number[];
  /** The first `maxQueries` symbol queries (symbolQueries) of the unnamed PCs the binary has no name for. */
  queries: string[];
  /** How many queries all of those would take (more than `queries.length`: some were left out). */
  totalQueries: number;
}

/**
 * The symbol requests one capture makes for a debug=1: however many PCs
 * the text holds, the answer is bounded by `maxQueries` queries of
 * MAX_SYMBOL_QUERY characters and by the names the binary already has.
 */
export function symbolQuestions(heap: Debug1Heap, isKnown: (pc: number) => boolean, maxQueries: number): SymbolQuestions {
  const unnamed = unnamedPcs(heap);
  const all = symbolQueries(unnamed.filter((pc) => !isKnown(pc)));
  const queries = all.slice(0, Math.max(0, maxQueries));
  const asked = new Set<number>();
  for (const query of queries) for (const pc of queriedPcs(query)) asked.add(pc);
  return { pcs: unnamed.filter((pc) => asked.has(pc) || isKnown(pc)), queries, totalQueries: all.length };
}

/**
 * A record's PCs split the way runtime/pprof's proto builder splits them:
 * the leading runtime frames it hides (return addresses, as printed), and
 * the addresses of the locations it writes for the rest. Like the builder,
 * a run of inlined frames (one physical function: the same entry, different
 * names) is one location, addressed by its first PC - 1, and PCs without a
 * name past the leaf end (runtime.goexit) are left out. A stack of runtime
 * frames only is shown whole, as the builder does.
 */
export function protoView(heap: Debug1Heap, record: Debug1Record, hideRuntime = true): { hiddenPcs: number[]; addresses: number[] } {
  const hiddenPcs: number[] = [];
  const addresses: number[] = [];
  let previous: { entry: number | undefined; name: string } | undefined;
  for (const pc of record.pcs) {
    const frames = heap.framesByPc.get(pc - 1);
    const name = frames?.[0]?.function;
    if (hideRuntime && addresses.length === 0 && (name === undefined || isRuntimeFunction(name))) {
      hiddenPcs.push(pc);
      continue;
    }
    if (name === undefined) continue;
    const entry = heap.entryByPc.get(pc - 1);
    const inlinedInto = previous !== undefined && entry !== undefined && previous.entry === entry && previous.name !== name;
    if (!inlinedInto) addresses.push(pc - 1);
    previous = { entry, name };
  }
  if (addresses.length === 0 && hideRuntime) return protoView(heap, record, false);
  return { hiddenPcs, addresses };
}

/**
 * Builds full stacks: `#` lines name the visible frames; the symbol table
 * (from /debug/pprof/symbol) names the hidden runtime frames.
 */
export function debug1ToHeapProfile(heap: Debug1Heap, symbols?: SymbolTable): HeapProfile {
  const records: HeapRecord[] = heap.records.map((record) => {
    const stack: Frame[] = [];
    const { addresses } = protoView(heap, record);
    let unresolved = 0;
    for (const pc of record.pcs) {
      const frames = heap.framesByPc.get(pc - 1);
      if (frames) {
        stack.push(...frames);
        continue;
      }
      const name = symbols?.get(pc - 1);
      if (name) stack.push({ function: name, file: '', line: 0 });
      else unresolved++;
    }
    const inuse = scaleHeapSample(record.inuseObjects, record.inuseBytes, heap.memProfileRate);
    const alloc = scaleHeapSample(record.allocObjects, record.allocBytes, heap.memProfileRate);
    const objectSize =
      record.allocObjects > 0
        ? record.allocBytes / record.allocObjects
        : record.inuseObjects > 0
          ? record.inuseBytes / record.inuseObjects
          : 0;
    return {
      stack,
      hiddenFrames: unresolved > 0 ? (symbols ? 'unresolved' : 'absent') : 'resolved',
      addresses,
      objectSize: Math.round(objectSize),
      inuseObjects: inuse.count,
      inuseBytes: inuse.bytes,
      allocObjects: alloc.count,
      allocBytes: alloc.bytes,
    };
  });
  return {
    format: 'debug1',
    time: undefined,
    memProfileRate: heap.memProfileRate,
    buildId: undefined,
    records,
  };
}


function truncate(line: string): string {
  return line.length > 80 ? `${line.slice(0, 77)}...` : line;
}

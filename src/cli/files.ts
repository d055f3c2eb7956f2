import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { profileFromColumns, type ProfileColumns } from '../pprof/columns.js';
import { decodeHeapColumns, type DecodeLimits } from '../pprof/decode.js';
import { debug1ToHeapProfile, parseDebug1Heap, type Debug1Heap } from '../pprof/debug1.js';
import { learnHiddenFrames, restoreHiddenFrames, type HiddenFrameTable } from '../pprof/hidden-frames.js';
import { ProfileError } from '../pprof/errors.js';
import { parseSymbolResponse, type SymbolTable } from '../pprof/symbols.js';
import type { HeapProfile } from '../pprof/types.js';

/** Files that make one capture: `x.pb.gz` (or `x.pb`), `x.txt` (debug=1) and `x.sym` (symbols). */
interface CaptureFiles {
  stem: string;
  proto?: string;
  debug1?: string;
  symbols?: string;
}

export interface LoadedCapture {
  name: string;
  time: Date;
  /** A proto nothing restored stays in the decoder's columns; restored or debug=1 captures are records. */
  profile: HeapProfile | ProfileColumns;
}

const EXTENSIONS: [string, keyof Omit<CaptureFiles, 'stem'>][] = [
  ['.pb.gz', 'proto'],
  ['.pb', 'proto'],
  ['.gz', 'proto'],
  ['.txt', 'debug1'],
  ['.sym', 'symbols'],
];

export function groupCaptureFiles(paths: readonly string[]): CaptureFiles[] {
  const byStem = new Map<string, CaptureFiles>();
  for (const path of paths) {
    const match = EXTENSIONS.find(([ext]) => path.endsWith(ext));
    const stem = match ? path.slice(0, -match[0].length) : path;
    const group = byStem.get(stem) ?? { stem };
    group[match ? match[1] : 'proto'] = path;
    byStem.set(stem, group);
  }
  return [...byStem.values()];
}

/** Reads a file, refusing one larger than the limit before reading it. */
async function readLimited(path: string, maxBytes: number): Promise<Buffer> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (err) {
    throw new ProfileError('Empty', `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (size > maxBytes) throw new ProfileError('TooLarge', `file is ${size} bytes, more than the ${maxBytes}-byte limit`);
  return readFile(path);
}

async function siblingSymbols(files: CaptureFiles, maxBytes: number): Promise<SymbolTable | undefined> {
  const path = files.symbols ?? `${files.stem}.sym`;
  try {
    return parseSymbolResponse((await readLimited(path, maxBytes)).toString('utf8'));
  } catch (err) {
    if (files.symbols) throw err;
    return undefined;
  }
}

/** One capture's files, read: the proto decoded, debug=1 and symbols as they are. */
interface ReadCapture {
  files: CaptureFiles;
  proto: ProfileColumns | undefined;
  debug1: Debug1Heap | undefined;
  symbols: SymbolTable | undefined;
}

async function named<T>(path: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    if (err instanceof ProfileError) throw new ProfileError(err.code, `${basename(path)}: ${err.message}`);
    throw err;
  }
}

async function readCapture(files: CaptureFiles, limits: DecodeLimits, withDebug1: boolean): Promise<ReadCapture> {
  let proto: ProfileColumns | undefined;
  if (files.proto) {
    const path = files.proto;
    proto = await named(path, async () => decodeHeapColumns(await readLimited(path, limits.maxBytes), limits));
  }
  let debug1: Debug1Heap | undefined;
  let symbols: SymbolTable | undefined;
  if (files.debug1 && withDebug1) {
    const path = files.debug1;
    const bytes = await named(path, () => readLimited(path, limits.maxBytes));
    symbols = await named(path, () => siblingSymbols(files, limits.maxBytes));
    if (bytes.subarray(0, 14).toString('latin1') === 'heap profile: ') {
      debug1 = await named(path, async () => parseDebug1Heap(bytes.toString('utf8')));
    } else if (!proto) {
      proto = await named(path, async () => decodeHeapColumns(bytes, limits, symbols)); // a proto under another name
    }
  }
  return { files, proto, debug1, symbols };
}

/**
 * Loads saved captures the way live captures are read: every debug=1 file
 * (with its .sym) teaches its binary's hidden frames, and each proto is
 * then restored from what its binary's debug=1 files taught. A debug=1 file
 * without a proto stands for its capture itself. Files without a timestamp
 * of their own are dated by modification time.
 */
export async function* loadCaptures(groups: readonly CaptureFiles[], limits: DecodeLimits): AsyncGenerator<LoadedCapture> {
  // First the captures that teach (their protos name the build), then the rest.
  const teaching = await Promise.all(groups.filter((g) => g.debug1).map((g) => readCapture(g, limits, true)));
  const tables = new Map<string, HiddenFrameTable>();
  for (const read of teaching) {
    if (!read.debug1) continue;
    const build = read.proto?.buildId ?? '';
    const table = tables.get(build) ?? new Map();
    learnHiddenFrames(read.debug1, read.symbols ?? new Map(), table);
    tables.set(build, table);
  }
  const taught = new Map(teaching.map((read) => [read.files, read]));
  for (const group of groups) {
    const read = taught.get(group) ?? (await readCapture(group, limits, false));
    taught.delete(group);
    let profile: HeapProfile | ProfileColumns;
    if (read.proto) {
      const table = tables.get(read.proto.buildId ?? '');
      profile = table ? restoreHiddenFrames(profileFromColumns(read.proto), (key) => table.get(key)) : read.proto;
    } else if (read.debug1) {
      profile = debug1ToHeapProfile(read.debug1, read.symbols);
    } else {
      throw new ProfileError('Empty', `${basename(group.stem)}: no profile file`);
    }
    const time = read.proto?.time !== undefined ? new Date(read.proto.time) : (await stat(group.debug1 ?? group.proto ?? group.stem)).mtime;
    yield { name: basename(group.stem), time, profile: 'records' in profile ? { ...profile, time } : { ...profile, time: time.getTime() } };
  }
}

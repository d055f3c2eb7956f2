import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { decodeHeapProfile, type DecodeLimits } from '../pprof/decode.js';
import { debug1ToHeapProfile, parseDebug1Heap } from '../pprof/debug1.js';
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
  profile: HeapProfile;
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

/**
 * Loads one capture from its files. debug=1 text with symbols wins (it has
 * the hidden runtime frames); the proto supplies the timestamp. Files
 * without a timestamp of their own are dated by modification time.
 */
export async function loadCapture(files: CaptureFiles, limits: DecodeLimits): Promise<LoadedCapture> {
  const named = async <T>(path: string, load: () => Promise<T>): Promise<T> => {
    try {
      return await load();
    } catch (err) {
      if (err instanceof ProfileError) throw new ProfileError(err.code, `${basename(path)}: ${err.message}`);
      throw err;
    }
  };
  let proto: HeapProfile | undefined;
  if (files.proto) {
    const path = files.proto;
    proto = await named(path, async () => decodeHeapProfile(await readLimited(path, limits.maxBytes), limits));
  }
  let profile = proto;
  if (files.debug1) {
    const path = files.debug1;
    profile = await named(path, async () => {
      const bytes = await readLimited(path, limits.maxBytes);
      const symbols = await siblingSymbols(files, limits.maxBytes);
      const text = bytes.toString('utf8');
      if (!text.startsWith('heap profile:')) return decodeHeapProfile(bytes, limits, symbols);
      return debug1ToHeapProfile(parseDebug1Heap(text), symbols);
    });
  }
  if (!profile) throw new ProfileError('Empty', `${basename(files.stem)}: no profile file`);
  const time = proto?.time ?? profile.time ?? (await stat(files.debug1 ?? files.proto ?? files.stem)).mtime;
  return { name: basename(files.stem), time, profile: { ...profile, time } };
}

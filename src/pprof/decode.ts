import { ProfileError } from './errors.js';
import { gunzipLimited, isGzip } from './gzip.js';
import { debug1ToHeapProfile, isDebug1Heap, parseDebug1Heap } from './debug1.js';
import { profileFromColumns, profileToColumns, type ProfileColumns } from './columns.js';
import { decodeProtoColumns } from './proto.js';
import type { SymbolTable } from './symbols.js';
import type { HeapProfile } from './types.js';

export interface DecodeLimits {
  /** Largest profile accepted, compressed or inflated. */
  maxBytes: number;
  /** Largest inflated size (default: maxBytes). */
  maxInflatedBytes?: number;
  /** Largest inflated/compressed ratio (default: none). */
  maxRatio?: number;
  /**
   * Most samples a proto profile may hold (default: none). Each becomes a
   * record: a small answer can hold a million of them, so a process that
   * keeps what others send bounds this as well as the bytes.
   */
  maxRecords?: number;
}

export const DEFAULT_MAX_PROFILE_BYTES = 64 * 1024 * 1024;

/**
 * Any heap profile net/http/pprof serves, from bytes: gzipped or plain
 * proto, or debug=1 text. Errors are ProfileErrors with a one-line message.
 */
export function decodeHeapProfile(bytes: Uint8Array, limits: DecodeLimits = { maxBytes: DEFAULT_MAX_PROFILE_BYTES }, symbols?: SymbolTable): HeapProfile {
  const decoded = decodeEither(bytes, limits, symbols);
  return 'records' in decoded ? decoded : profileFromColumns(decoded);
}

/** decodeHeapProfile into the engine's column layout, as attribution reads it (a proto makes no object per sample). */
export function decodeHeapColumns(bytes: Uint8Array, limits: DecodeLimits = { maxBytes: DEFAULT_MAX_PROFILE_BYTES }, symbols?: SymbolTable): ProfileColumns {
  const decoded = decodeEither(bytes, limits, symbols);
  return 'records' in decoded ? profileToColumns(decoded) : decoded;
}

/** A proto as columns, debug=1 text as records: each as its decoder makes it. */
function decodeEither(bytes: Uint8Array, limits: DecodeLimits, symbols: SymbolTable | undefined): HeapProfile | ProfileColumns {
  if (bytes.length === 0) throw new ProfileError('Empty', 'profile is empty');
  if (bytes.length > limits.maxBytes) {
    throw new ProfileError('TooLarge', `profile is ${bytes.length} bytes, more than the ${limits.maxBytes}-byte limit`);
  }
  const raw = isGzip(bytes) ? gunzipLimited(bytes, { maxBytes: limits.maxInflatedBytes ?? limits.maxBytes, ...(limits.maxRatio !== undefined ? { maxRatio: limits.maxRatio } : {}) }) : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const head = raw.subarray(0, 256).toString('latin1');
  if (isDebug1Heap(head)) return debug1ToHeapProfile(parseDebug1Heap(raw.toString('utf8')), symbols);
  if (/^\s*(<!doctype|<html|<\?xml|<head|<body)/i.test(head)) {
    throw new ProfileError('HtmlPage', `got an HTML page, not a profile: ${describeHtml(raw.toString('utf8', 0, 4096))}`);
  }
  if (looksLikeText(raw)) {
    const firstLine = head.split('\n')[0]?.trim().slice(0, 80) ?? '';
    throw new ProfileError('NotAProfile', `not a heap profile: text starting "${firstLine}"`);
  }
  return decodeProtoColumns(raw, limits.maxRecords);
}

function describeHtml(html: string): string {
  const title = /<title>([^<]*)<\/title>/i.exec(html)?.[1]?.trim();
  return title ? `"${title.slice(0, 80)}"` : 'no title';
}

/** Protobuf starts with a field tag byte and holds binary varints; text does not. */
function looksLikeText(raw: Buffer): boolean {
  const sample = raw.subarray(0, 512);
  let printable = 0;
  for (const byte of sample) {
    if (byte === 9 || byte === 10 || byte === 13 || (byte >= 32 && byte < 127)) printable++;
  }
  return sample.length > 0 && printable / sample.length > 0.95;
}

import { Gunzip } from 'fflate';
import { ProfileError } from './errors.js';

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

export interface InflateLimits {
  /** Largest inflated size. */
  maxBytes: number;
  /** Largest inflated/compressed ratio, checked as the stream goes (past RATIO_FLOOR_BYTES of output). */
  maxRatio?: number;
}

/** Small outputs are never judged by their ratio (a 2 KiB profile of zeros is fine). */
export const RATIO_FLOOR_BYTES = 1024 * 1024;
/**
 * Input fed per step. Deflate's best case is about 1032:1, so one step
 * yields at most ~4 MiB before the limits are checked again.
 */
const STEP_BYTES = 4096;

/**
 * Inflates as a stream and stops at the first step past a limit, so a gzip
 * bomb costs one step's output, not the cap, and ends in a clear error
 * (zlib's maxOutputLength on a sync call would build up to the cap first).
 */
export function gunzipLimited(bytes: Uint8Array, limits: number | InflateLimits): Buffer {
  const { maxBytes, maxRatio } = typeof limits === 'number' ? { maxBytes: limits, maxRatio: undefined } : limits;
  const chunks: Uint8Array[] = [];
  let produced = 0;
  let consumed = 0;
  let over: ProfileError | undefined;
  const inflater = new Gunzip((chunk) => {
    produced += chunk.length;
    if (produced > maxBytes) over ??= new ProfileError('TooLarge', `profile inflates to more than ${maxBytes} bytes (limit)`);
    else chunks.push(chunk);
  });
  try {
    for (let offset = 0; offset < bytes.length && !over; offset += STEP_BYTES) {
      const step = bytes.subarray(offset, offset + STEP_BYTES);
      consumed += step.length;
      inflater.push(step, offset + STEP_BYTES >= bytes.length);
      if (!over && maxRatio !== undefined && produced > RATIO_FLOOR_BYTES && produced > maxRatio * consumed) {
        over = new ProfileError('TooLarge', `profile inflates more than ${maxRatio} times its compressed size (limit)`);
      }
    }
  } catch (err) {
    if (/unexpected EOF/i.test(String((err as Error).message))) throw new ProfileError('TruncatedGzip', 'gzip stream is truncated');
    throw new ProfileError('Malformed', 'gzip stream is corrupt');
  }
  if (over) throw over;
  return Buffer.concat(chunks, produced);
}

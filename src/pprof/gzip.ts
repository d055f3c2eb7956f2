import { gunzipSync } from 'node:zlib';
import { ProfileError } from './errors.js';

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Inflates with a hard cap on the output, so a gzip bomb costs at most
 * `maxBytes` of memory and ends in a clear error.
 */
export function gunzipLimited(bytes: Uint8Array, maxBytes: number): Buffer {
  try {
    return gunzipSync(bytes, { maxOutputLength: maxBytes });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
      throw new ProfileError('TooLarge', `profile inflates to more than ${maxBytes} bytes (limit)`);
    }
    if (code === 'Z_BUF_ERROR' || /unexpected end/i.test(String((err as Error).message))) {
      throw new ProfileError('TruncatedGzip', 'gzip stream is truncated');
    }
    throw new ProfileError('Malformed', `gzip stream is corrupt: ${(err as Error).message}`);
  }
}


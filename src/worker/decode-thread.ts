/**
 * Worker-thread entry: tries the pure decoders on a target's answer so
 * that a profile which is slow or heavy to decode costs this thread, not
 * the event loop that keeps job locks and leases alive.
 */
import { parentPort } from 'node:worker_threads';
import { parseDebug1Heap } from '../pprof/debug1.js';
import { decodeHeapProfile, type DecodeLimits } from '../pprof/decode.js';
import { ProfileError } from '../pprof/errors.js';

export interface DecodeRequest {
  id: number;
  kind: 'proto' | 'debug1';
  bytes: Uint8Array;
  limits: DecodeLimits;
}

export type DecodeReply = { id: number; ok: true; records: number } | { id: number; ok: false; code: ProfileError['code'] | 'Internal'; message: string };

parentPort?.on('message', (request: DecodeRequest) => {
  let reply: DecodeReply;
  try {
    const records = request.kind === 'proto' ? decodeHeapProfile(request.bytes, request.limits).records.length : parseDebug1Heap(Buffer.from(request.bytes).toString('utf8')).records.length;
    reply = { id: request.id, ok: true, records };
  } catch (err) {
    reply = err instanceof ProfileError ? { id: request.id, ok: false, code: err.code, message: err.message } : { id: request.id, ok: false, code: 'Internal', message: 'decoder failed' };
  }
  parentPort?.postMessage(reply);
});

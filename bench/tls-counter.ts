/**
 * Preloaded into the operator child by controller-scale (`node --import`):
 * counts TLS connections opened (tls.connect) and writes the count to
 * $MAPLEAK_BENCH_TLS_COUNT_FILE every 200 ms, so the benchmark can tell how
 * many new connections the operator makes to the API server.
 */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const tls = require('node:tls') as typeof import('node:tls');
const file = process.env.MAPLEAK_BENCH_TLS_COUNT_FILE;
if (file) {
  let count = 0;
  const original = tls.connect;
  (tls as { connect: unknown }).connect = function (this: unknown, ...args: unknown[]) {
    count++;
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  };
  // Only when it changed: a write every 200 ms was itself 1% of the idle operator's CPU in the profile.
  let written = -1;
  const flush = (): void => {
    if (count === written) return;
    written = count;
    writeFileSync(file, `${count}\n`);
  };
  flush();
  setInterval(flush, 200).unref();
}

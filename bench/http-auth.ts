/**
 * `node dist/bench/http-auth.js`: what authentication costs a request, as
 * ratios of medians against an open peer in the same run (/healthz on the
 * same server): a probe read with a cached token and decision, and with a
 * token seen for the first time (TokenReview + SubjectAccessReview against
 * the local API server); new against cached isolates the reviews (both read
 * the probe from the API server and its series from Redis). Rounds
 * alternate the kinds.
 */
import { probePath, startAuthHarness, TEAM_A } from '../test/server/harness.js';
import { bearer, bindClusterRole, ensureServiceAccount, serviceAccountToken } from '../test/support/tokens.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 200);

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

async function timed(request: () => Promise<Response>, expected: number): Promise<number> {
  const started = process.hrtime.bigint();
  const response = await request();
  await response.arrayBuffer();
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (response.status !== expected) throw new Error(`expected ${expected}, got ${response.status}`);
  return ms;
}

const harness = await startAuthHarness('bench-auth');
try {
  const reader = { namespace: TEAM_A, name: 'bench-reader' };
  await ensureServiceAccount(harness.kc, reader.namespace, reader.name);
  await bindClusterRole(harness.kc, 'mapleakprobe-viewer', reader, TEAM_A);
  const cached = bearer(await serviceAccountToken(harness.kc, reader.namespace, reader.name));
  // Fresh tokens are minted ahead, so minting is not timed.
  const fresh = await Promise.all(Array.from({ length: ROUNDS }, () => serviceAccountToken(harness.kc, reader.namespace, reader.name)));
  // Warm up: the binding is live, the cache holds the first token.
  for (let i = 0; i < 20; i++) await timed(() => harness.get(probePath(TEAM_A), cached), 200).catch(() => undefined);

  const open: number[] = [];
  const warm: number[] = [];
  const cold: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    open.push(await timed(() => harness.get('/healthz'), 200));
    warm.push(await timed(() => harness.get(probePath(TEAM_A), cached), 200));
    cold.push(await timed(() => harness.get(probePath(TEAM_A), bearer(fresh[i] ?? '')), 200));
  }
  const base = median(open);
  console.log(`${ROUNDS} rounds, medians:`);
  console.log(`  GET /healthz (open peer)                      ${base.toFixed(2)} ms   1.00x`);
  console.log(`  GET probe, cached token and decision          ${median(warm).toFixed(2)} ms   ${(median(warm) / base).toFixed(2)}x`);
  console.log(`  GET probe, new token (TokenReview + SAR)      ${median(cold).toFixed(2)} ms   ${(median(cold) / base).toFixed(2)}x`);
  console.log(`  new token vs cached token (the two reviews)   ${(median(cold) / median(warm)).toFixed(2)}x`);
} finally {
  await harness.stop();
}

// Who may read what over HTTP, against the real local API server with the
// chart's own ClusterRoles (see harness.ts): users are ServiceAccounts with
// and without bindings.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { KubeConfig } from '@kubernetes/client-node';
import { ReviewsBusyError } from '../../src/auth/limiter.js';
import { DEFAULT_REVIEWER_OPTIONS, KubernetesAccessReviewer } from '../../src/auth/reviewer.js';
import { startOperator } from '../../src/cli/operator.js';
import { auditLogPath, restartApiserver } from '../cluster/cluster.js';
import { freeLoopbackPort } from '../cluster/redis.js';
import { testOperatorConfig } from '../support/operator-config.js';
import { bearer, bindClusterRole, ensureServiceAccount, serviceAccountToken, tokenKubeconfig } from '../support/tokens.js';
import { waitFor } from '../support/wait.js';
import { CAPTURE_ID, OPERATOR_ACCOUNT, PROBE, probePath, profilePath, RELEASE_NS, startAuthHarness, TEAM_A, TEAM_B, type AuthHarness } from './harness.js';

const CLUSTER = 'server-auth';

describe('HTTP API authentication and authorisation (TokenReview + SubjectAccessReview, the chart’s ClusterRoles)', () => {
  let harness: AuthHarness;
  let kc: KubeConfig;
  let profileBytes: Buffer;
  let get: AuthHarness['get'];
  const tokens: Record<'alice' | 'nobody', string> = { alice: '', nobody: '' };
  const alice = { namespace: TEAM_A, name: 'alice' };

  before(async () => {
    harness = await startAuthHarness(CLUSTER);
    ({ kc, profileBytes, get } = harness);
    for (const name of ['alice', 'nobody'] as const) {
      await ensureServiceAccount(kc, TEAM_A, name);
      tokens[name] = await serviceAccountToken(kc, TEAM_A, name);
    }
  });

  after(async () => {
    await harness?.stop();
  });

  test('/healthz and /readyz answer without a token', async () => {
    assert.equal((await get('/healthz')).status, 200);
    assert.equal((await get('/readyz')).status, 200);
  });

  test('no token, a malformed header, a garbage token, an oversized token: 401 everywhere, with a fixed answer', async () => {
    const garbage = 'garbage-token-' + 'x'.repeat(20);
    const cases: [string, Record<string, string>][] = [
      ['anonymous', {}],
      ['basic auth', { authorization: 'Basic YWxpY2U6c2VjcmV0' }],
      ['garbage bearer token', bearer(garbage)],
      ['empty bearer', { authorization: 'Bearer ' }],
      ['9 KiB token', bearer('a'.repeat(9 * 1024))],
    ];
    for (const [what, headers] of cases) {
      for (const path of [probePath(TEAM_A), profilePath(TEAM_A), '/metrics', '/api/v1/no-such-route']) {
        const response = await get(path, headers);
        assert.equal(response.status, 401, `${what} on ${path}`);
        assert.match(response.headers.get('www-authenticate') ?? '', /^Bearer /);
        const body = await response.text();
        assert.deepEqual(JSON.parse(body), { error: 'Unauthorized: send a valid bearer token (Authorization: Bearer <token>)' });
        for (const echoed of [garbage, TEAM_A, PROBE, CAPTURE_ID]) assert.ok(!body.includes(echoed), `${what}: the answer does not echo ${echoed}`);
      }
    }
  });

  test('a ServiceAccount with no binding: 403 on probe data, profiles and /metrics', async () => {
    for (const path of [probePath(TEAM_A), profilePath(TEAM_A), probePath(TEAM_B), '/metrics']) {
      const response = await get(path, bearer(tokens.nobody));
      assert.equal(response.status, 403, path);
      assert.deepEqual(await response.json(), { error: 'Forbidden' });
    }
    // Without the right to read it, nobody learns whether a probe exists: 403, not 404.
    assert.equal((await get(probePath(TEAM_A, 'no-such-probe'), bearer(tokens.nobody))).status, 403);
  });

  test('mapleakprobe-viewer bound in team-a: team-a probe data 200, team-b 403, raw profiles 403 until mapleakprobe-profile-reader is bound', async () => {
    await bindClusterRole(kc, 'mapleakprobe-viewer', alice, TEAM_A);
    const probe = await waitFor('team-a probe data readable by alice', async () => {
      const response = await get(probePath(TEAM_A), bearer(tokens.alice));
      return response.status === 200 && ((await response.json()) as { metadata: { namespace: string }; targets: { captures: { id: string }[]; analysis?: { captures: number } }[] });
    }, 30_000, 500);
    assert.equal(probe.metadata.namespace, TEAM_A);
    assert.deepEqual(probe.targets.map((t) => t.captures.map((c) => c.id)), [[CAPTURE_ID]]);
    assert.equal(probe.targets[0]?.analysis?.captures, 1, 'the per-capture analysis is served');

    assert.equal((await get(probePath(TEAM_B), bearer(tokens.alice))).status, 403, 'another namespace');
    assert.equal((await get(probePath(TEAM_A, 'no-such-probe'), bearer(tokens.alice))).status, 404, 'allowed to read: a missing probe is 404');
    assert.equal((await get(profilePath(TEAM_A), bearer(tokens.alice))).status, 403, 'viewer alone cannot download raw profiles');
    assert.equal((await get('/metrics', bearer(tokens.alice))).status, 403, 'viewer alone cannot read /metrics');

    await bindClusterRole(kc, 'mapleakprobe-profile-reader', alice, TEAM_A);
    // A denial is cached for 5 s: the new binding takes effect after that.
    const profile = await waitFor('team-a profile readable by alice', async () => {
      const response = await get(profilePath(TEAM_A), bearer(tokens.alice));
      return response.status === 200 && { type: response.headers.get('content-type'), bytes: Buffer.from(await response.arrayBuffer()) };
    }, 30_000, 500);
    assert.equal(profile.type, 'application/octet-stream');
    assert.ok(profile.bytes.equals(profileBytes), 'the stored profile, byte for byte');
    assert.equal((await get(profilePath(TEAM_B), bearer(tokens.alice))).status, 403, 'profiles of another namespace');
  });

  test('/metrics: 401 without a token, 403 without the grant, 200 with mapleakprobe-metrics-reader', async () => {
    const scraper = { namespace: TEAM_A, name: 'scraper' };
    await ensureServiceAccount(kc, scraper.namespace, scraper.name);
    const token = await serviceAccountToken(kc, scraper.namespace, scraper.name);
    assert.equal((await get('/metrics')).status, 401);
    assert.equal((await get('/metrics', bearer(token))).status, 403);
    await bindClusterRole(kc, 'mapleakprobe-metrics-reader', scraper);
    const text = await waitFor('/metrics readable', async () => {
      const response = await get('/metrics', bearer(token));
      return response.status === 200 && (await response.text());
    }, 30_000, 500);
    assert.match(text, /^mapleak_auth_reviews_total\{review="token",outcome="allowed"\} \d+/m);
    assert.match(text, /^mapleak_http_auth_rejections_total\{reason="forbidden"\} \d+/m);
    assert.equal((await get(probePath(TEAM_A), bearer(token))).status, 403, 'the metrics grant reads no probe data');
  });

  test('a token is reviewed once per cache period, however many requests carry it', async () => {
    const token = await serviceAccountToken(kc, TEAM_A, 'alice');
    const before = tokenReviewsByOperator().length;
    for (let i = 0; i < 50; i++) assert.equal((await get(probePath(TEAM_A), bearer(token))).status, 200);
    // The audit log is written asynchronously; give it a moment.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(tokenReviewsByOperator().length - before, 1, '50 requests, one TokenReview');
  });

  test('a flood of distinct garbage tokens: every answer 401 or 503, reviews at most 8 at once', async (t) => {
    const before = tokenReviewsByOperator().length;
    const started = Date.now();
    const flood = 400;
    const statuses = await Promise.all(Array.from({ length: flood }, (_, i) => get(probePath(TEAM_A), bearer(`flood-${i}-${'z'.repeat(40)}`)).then(async (r) => (await r.arrayBuffer(), r.status))));
    const elapsedMs = Date.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const reviews = tokenReviewsByOperator().slice(before);
    const counts = statuses.reduce<Record<number, number>>((acc, s) => ({ ...acc, [s]: (acc[s] ?? 0) + 1 }), {});
    t.diagnostic(`${flood} concurrent requests with distinct garbage tokens in ${elapsedMs} ms: ${JSON.stringify(counts)}; ${reviews.length} TokenReviews, at most ${maxOverlap(reviews)} at once`);
    assert.deepEqual(Object.keys(counts).map(Number).filter((s) => s !== 401 && s !== 503), [], 'only 401 or 503');
    assert.ok(reviews.length <= flood - (counts[503] ?? 0), 'one review per token at most, none for a refused request');
    assert.ok(maxOverlap(reviews) <= 8, 'at most 8 TokenReviews in flight');
    // The server still answers its legitimate users.
    assert.equal((await get(probePath(TEAM_A), bearer(tokens.alice))).status, 200);
  });

  test('a flood of never-seen tokens takes only their share of the reviews: a user accepted before keeps access past its cache period', async (t) => {
    // The operator's reviewer with a short cache, against the real API server; the flood holds every slot new tokens may use.
    const reviewer = new KubernetesAccessReviewer(kc, { ...DEFAULT_REVIEWER_OPTIONS, cacheTtlMs: 300 });
    const aliceName = `system:serviceaccount:${TEAM_A}:alice`;
    assert.equal((await reviewer.authenticate(tokens.alice))?.username, aliceName);
    await new Promise((resolve) => setTimeout(resolve, 400)); // past its cache period: the next request reviews it again
    let flooding = true;
    const outcomes = { rejected: 0, busy: 0, other: 0 };
    // More than every slot and queue place of the old single limiter (8 + 64), so it would have refused the user too.
    const flood = Array.from({ length: 128 }, async (_, w) => {
      for (let i = 0; flooding; i++) {
        try {
          outcomes[(await reviewer.authenticate(`flood-${w}-${i}-${'z'.repeat(40)}`)) ? 'other' : 'rejected']++;
        } catch (err) {
          outcomes[err instanceof ReviewsBusyError ? 'busy' : 'other']++;
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const seen: (string | undefined)[] = [];
    for (let i = 0; i < 5; i++) {
      seen.push((await reviewer.authenticate(tokens.alice))?.username);
      await new Promise((resolve) => setTimeout(resolve, 400));
    }
    flooding = false;
    await Promise.all(flood);
    t.diagnostic(`flood: ${JSON.stringify(outcomes)}`);
    assert.deepEqual(seen, Array(5).fill(aliceName), 'every request of the user accepted before is still that user');
    assert.ok(outcomes.busy > 0 && outcomes.rejected > 0, 'the flood filled its share and was refused past it');
    assert.equal(outcomes.other, 0, 'no flood token accepted, no other error');
  });

  test('an API server that cannot be reached, or does not answer: 503, never 200', async () => {
    // A closed port, and a listener that accepts connections and never answers.
    const closedPort = await freeLoopbackPort();
    const silent = await silentListener();
    const silentPort = silent.port;
    const forBusy = await silentListener();
    try {
      for (const [what, port] of [['refused', closedPort], ['silent', silentPort]] as const) {
        const kubeconfig = tokenKubeconfig({ server: `https://127.0.0.1:${port}` }, kc, 'worker', 'not-checked', join(harness.dir, `${what}.kubeconfig`));
        const broken = await startOperator(testOperatorConfig({ kubeconfigPath: kubeconfig }, harness.redis.url, { role: 'worker', leaderElect: false, identity: `server-auth-${what}`, auth: { timeoutMs: 1500 } }));
        try {
          for (const path of [probePath(TEAM_A), '/metrics']) {
            const started = Date.now();
            const response = await fetch(`http://127.0.0.1:${broken.port}${path}`, { headers: bearer(tokens.alice), signal: AbortSignal.timeout(20_000) });
            assert.equal(response.status, 503, `${what}: ${path}`);
            assert.equal(response.headers.get('retry-after'), '1');
            assert.deepEqual(await response.json(), { error: 'Cannot check access right now: the Kubernetes API server did not answer; try again' });
            assert.ok(Date.now() - started < 10_000, `${what}: answered within the review timeout`);
          }
          assert.equal((await fetch(`http://127.0.0.1:${broken.port}/healthz`)).status, 200, 'liveness does not depend on the API server');
        } finally {
          await broken.stop();
        }
      }

      // While reviews hang: of 2 slots and 3 places in line, tokens never accepted get a quarter, at least one of each (1 runs, 1 waits); every further request is refused at once.
      const kubeconfig = tokenKubeconfig({ server: `https://127.0.0.1:${forBusy.port}` }, kc, 'worker', 'not-checked', join(harness.dir, 'busy.kubeconfig'));
      const busy = await startOperator(testOperatorConfig({ kubeconfigPath: kubeconfig }, harness.redis.url, { role: 'worker', leaderElect: false, identity: 'server-auth-busy', auth: { timeoutMs: 3000, maxInFlight: 2, maxWaiting: 3 } }));
      try {
        const started = Date.now();
        const pending = Promise.all(
          Array.from({ length: 20 }, async (_, i) => {
            const response = await fetch(`http://127.0.0.1:${busy.port}${probePath(TEAM_A)}`, { headers: bearer(`busy-${i}`), signal: AbortSignal.timeout(20_000) });
            return { status: response.status, error: ((await response.json()) as { error: string }).error, ms: Date.now() - started };
          }),
        );
        await new Promise((resolve) => setTimeout(resolve, 1500));
        assert.equal(forBusy.accepted(), 1, 'one review of a new token in flight: one connection to the API server, the rest wait or are refused');
        const answers = await pending;
        const refused = answers.filter((a) => a.error === 'Too many access checks in flight; try again');
        assert.ok(answers.every((a) => a.status === 503));
        assert.equal(refused.length, 18, '20 requests, 1 in flight + 1 waiting: 18 refused');
        assert.ok(refused.every((a) => a.ms < 1500), 'refused at once, not after the timeout');
        assert.equal(forBusy.accepted(), 2, 'one connection per review: 1, then the 1 that waited');
      } finally {
        await busy.stop();
      }
    } finally {
      silent.close();
      forBusy.close();
    }
  });

  test('the API server going away after access was granted: reads answer 503 with a fixed message, then 200 again', async () => {
    const headers = bearer(tokens.alice);
    assert.equal((await get(probePath(TEAM_A), headers)).status, 200, 'token and decision now cached');
    const restarted = restartApiserver(harness.cluster, 4000);
    try {
      const during = await waitFor('a read while the API server is down', async () => {
        const response = await get(probePath(TEAM_A), headers);
        return response.status !== 200 && { status: response.status, body: await response.text() };
      }, 10_000, 100);
      assert.equal(during.status, 503);
      assert.deepEqual(JSON.parse(during.body), { error: 'temporarily unavailable; try again' }, 'no stack trace, no upstream error text');
    } finally {
      await restarted;
    }
    await waitFor('reads served again', async () => (await get(probePath(TEAM_A), headers)).status === 200, 60_000, 500);
  });

  /** TokenReviews the operator's ServiceAccount sent, from the API server's audit log. */
  function tokenReviewsByOperator(): { received: number; completed: number }[] {
    const user = `system:serviceaccount:${RELEASE_NS}:${OPERATOR_ACCOUNT}`;
    return readFileSync(auditLogPath(harness.cluster), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { user: { username: string }; objectRef?: { resource?: string }; requestReceivedTimestamp: string; stageTimestamp: string; stage: string })
      .filter((e) => e.user.username === user && e.objectRef?.resource === 'tokenreviews' && e.stage === 'ResponseComplete')
      .map((e) => ({ received: micros(e.requestReceivedTimestamp), completed: micros(e.stageTimestamp) }));
  }
});

/** A TCP listener that accepts connections and never answers (an API server that hangs). */
async function silentListener(): Promise<{ port: number; accepted(): number; close(): void }> {
  const open = new Set<Socket>();
  let accepted = 0;
  const server: Server = createServer((socket) => {
    accepted++;
    open.add(socket);
    // Read (and drop) what the client sends, so its hang-up is seen.
    socket.resume();
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as { port: number }).port,
    accepted: () => accepted,
    close: () => {
      for (const socket of open) socket.destroy();
      server.close();
    },
  };
}

/** An audit timestamp (RFC 3339 with microseconds) in microseconds. */
function micros(timestamp: string): number {
  const match = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(timestamp);
  if (!match) throw new Error(`unexpected audit timestamp ${timestamp}`);
  return Date.parse(`${match[1]}Z`) * 1000 + Number((match[2] ?? '').padEnd(6, '0').slice(0, 6));
}

/** The most intervals that overlap at one instant. */
function maxOverlap(intervals: readonly { received: number; completed: number }[]): number {
  const edges = intervals.flatMap((i) => [
    { at: i.received, delta: 1 },
    { at: i.completed, delta: -1 },
  ]);
  // Ends before starts at the same instant: touching intervals do not overlap.
  edges.sort((a, b) => a.at - b.at || a.delta - b.delta);
  let open = 0;
  let most = 0;
  for (const edge of edges) {
    open += edge.delta;
    most = Math.max(most, open);
  }
  return most;
}

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { ConnectionErrorReporter, errorKind, errorText, isConnectionError } from '../../src/observability/connection-errors.js';
import { jsonLogger } from '../../src/observability/log.js';
import { OperatorMetrics } from '../../src/observability/metrics.js';
import { freeLoopbackPort } from '../cluster/redis.js';

const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' });

function setup(): { reporter: ConnectionErrorReporter; lines: Record<string, unknown>[]; metrics: OperatorMetrics; advance: (ms: number) => void } {
  let now = 1_000_000;
  const lines: Record<string, unknown>[] = [];
  const metrics = new OperatorMetrics(false);
  const log = jsonLogger({}, 'info', (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
  const reporter = new ConnectionErrorReporter(log, metrics, { firstRepeatMs: 30_000, maxRepeatMs: 300_000 }, () => now);
  return { reporter, lines, metrics, advance: (ms) => (now += ms) };
}

async function counter(metrics: OperatorMetrics, labels: { component: string; kind: string }): Promise<number> {
  const { values } = await metrics.connectionErrors.get();
  return values.find((v) => v.labels.component === labels.component && v.labels.kind === labels.kind)?.value ?? 0;
}

async function reachable(metrics: OperatorMetrics, dependency: string): Promise<number | undefined> {
  return (await metrics.dependencyReachable.get()).values.find((v) => v.labels.dependency === dependency)?.value;
}

describe('connection errors: logged with backoff, all counted', () => {
  test('an outage is one line, then repeats at 30 s, 1, 2, 4 min and every 5 min, each with what it suppressed', async () => {
    const { reporter, lines, metrics, advance } = setup();
    // ioredis retries every few hundred ms, leader election every 2 s: one error per second here.
    const loggedAt: number[] = [];
    for (let second = 0; second < 20 * 60; second++) {
      const before = lines.length;
      reporter.failure('redis', second % 2 ? 'store' : 'worker', refused);
      if (lines.length > before) loggedAt.push(second);
      advance(1000);
    }
    assert.deepEqual(loggedAt, [0, 30, 90, 210, 450, 750, 1050]);
    assert.equal(lines[0]?.msg, 'redis unreachable');
    assert.equal(lines[0]?.kind, 'ECONNREFUSED');
    assert.equal(lines[1]?.msg, 'redis still unreachable');
    assert.deepEqual(lines[1]?.suppressed, { store: 15, worker: 14 });
    assert.equal(lines[1]?.failures, 31);
    assert.equal(lines[1]?.forMs, 30_000);
    assert.equal(await counter(metrics, { component: 'store', kind: 'ECONNREFUSED' }), 600);
    assert.equal(await counter(metrics, { component: 'worker', kind: 'ECONNREFUSED' }), 600);
    assert.equal(await reachable(metrics, 'redis'), 0);
    assert.equal(await reachable(metrics, 'kubernetes'), 1);
  });

  test('recovered once every failing component has succeeded; a component that never failed does not end it', async () => {
    const { reporter, lines, metrics, advance } = setup();
    reporter.failure('kubernetes', 'leader-election', refused);
    reporter.failure('kubernetes', 'pod-watch', refused);
    advance(5000);
    reporter.success('kubernetes', 'probe-watch');
    reporter.success('kubernetes', 'leader-election');
    assert.equal(reporter.failing('kubernetes'), true, 'the pod watch still fails');
    assert.equal(await reachable(metrics, 'kubernetes'), 0);
    reporter.success('kubernetes', 'pod-watch');
    assert.equal(reporter.failing('kubernetes'), false);
    assert.equal(await reachable(metrics, 'kubernetes'), 1);
    assert.deepEqual(
      lines.map((l) => l.msg),
      ['kubernetes unreachable', 'kubernetes recovered'],
    );
    assert.equal(lines[1]?.afterMs, 5000);
    assert.equal(lines[1]?.failures, 2);
    // A new outage starts its backoff afresh.
    reporter.failure('kubernetes', 'pod-watch', refused);
    assert.equal(lines.at(-1)?.msg, 'kubernetes unreachable');
  });

  test('kinds are a bounded set read from real errors; texts are one line of at most 200 characters', async () => {
    const port = await freeLoopbackPort();
    // What a Redis connection emits on 'error' when nothing listens.
    const redis = new Redis({ port, host: '127.0.0.1', retryStrategy: () => null });
    const redisError = await new Promise<unknown>((resolve) => redis.once('error', resolve));
    redis.disconnect();
    assert.equal(errorKind(redisError), 'ECONNREFUSED');
    assert.ok(isConnectionError(redisError));
    const fetchError = await fetch(`http://127.0.0.1:${port}/`).catch((err: unknown) => err);
    assert.equal(errorKind(fetchError), 'ECONNREFUSED', 'fetch puts the socket error in its cause');
    assert.equal(errorKind({ code: 503, message: 'HTTP-Code: 503' }), 'http-503');
    assert.ok(isConnectionError({ code: 503 }), 'an API server that cannot serve is an outage');
    assert.equal(isConnectionError({ code: 403 }), false, 'a refusal is not');
    assert.equal(errorKind({ code: 502 }), 'http-5xx');
    assert.equal(errorKind({ statusCode: 418 }), 'http-4xx');
    assert.equal(errorKind(new Error('Connection is closed.')), 'closed');
    assert.equal(errorKind(new Error('ERR unknown command')), 'other');
    assert.equal(isConnectionError(new Error('ERR unknown command')), false);
    const body = `HTTP-Code: 500 Message: Unknown API Status Code! Body: ${'x'.repeat(5000)}\nHeaders: {"authorization": "..."}`;
    const text = errorText(new Error(body));
    assert.equal(text.length, 200);
    assert.ok(!text.includes('Headers'));
  });
});

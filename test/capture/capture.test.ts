import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { captureHeap, CaptureError, directPprofClient, fetchBytes, BinaryKnowledgeCache } from '../../src/capture/index.js';
import { contentTypeOf, HttpAnswerError } from '../../src/capture/http.js';
import { ProfileError } from '../../src/pprof/index.js';
import { readFixture } from '../support/fixtures.js';
import { NOT_FOUND_PAGE, startServer, type TestServer } from '../support/http-server.js';

const LIMITS = { maxBytes: 8 * 1024 * 1024 };

describe('fetchBytes against real local servers', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer((req, res) => {
      if (req.url === '/slow') return; // never answers
      if (req.url === '/huge') {
        res.writeHead(200);
        const chunk = Buffer.alloc(64 * 1024, 7);
        let sent = 0;
        const pump = (): void => {
          while (sent < 64 && res.write(chunk)) sent++;
          if (sent < 64) res.once('drain', pump);
          else res.end();
        };
        return pump();
      }
      if (req.url === '/missing') {
        res.writeHead(404, { 'content-type': 'text/html' });
        return res.end(NOT_FOUND_PAGE);
      }
      res.end('ok');
    });
  });
  after(() => server.close());

  test('a slow target times out with a clear error', async () => {
    const started = Date.now();
    await assert.rejects(fetchBytes(`${server.url}/slow`, { timeoutMs: 300, maxBytes: 1024 }), (err: unknown) => {
      assert.ok(err instanceof CaptureError);
      assert.equal(err.code, 'Timeout');
      assert.match(err.message, /did not answer within 300 ms/);
      return true;
    });
    assert.ok(Date.now() - started < 5000);
  });

  test('a body over the limit is cut off', async () => {
    await assert.rejects(fetchBytes(`${server.url}/huge`, { timeoutMs: 5000, maxBytes: 1024 * 1024 }), (err: unknown) => {
      assert.ok(err instanceof CaptureError);
      assert.equal(err.code, 'TooLarge');
      return true;
    });
  });

  test('an HTTP error is described (status, content type, size), never quoted', async () => {
    await assert.rejects(fetchBytes(`${server.url}/missing`, { timeoutMs: 5000, maxBytes: 1024 }), (err: unknown) => {
      assert.ok(err instanceof HttpAnswerError);
      assert.equal(err.status, 404);
      assert.deepEqual(err.answer, { status: 404, contentType: 'text/html', bytes: 100 });
      assert.match(err.message, /answered HTTP 404 \(text\/html, 100 bytes\)$/);
      assert.doesNotMatch(err.message, /Not Found/);
      return true;
    });
  });

  test('a content type that is not a media type is "unknown"', () => {
    assert.equal(contentTypeOf('Text/HTML; charset=utf-8'), 'text/html');
    assert.equal(contentTypeOf('application/json'), 'application/json');
    assert.equal(contentTypeOf('secret=hunter2 <b>'), 'unknown');
    assert.equal(contentTypeOf(undefined), 'unknown');
  });

  test('a closed port is a connection error', async () => {
    const closed = await startServer(() => undefined);
    const url = closed.url;
    await closed.close();
    await assert.rejects(fetchBytes(url, { timeoutMs: 2000, maxBytes: 1024 }), (err: unknown) => err instanceof CaptureError && err.code === 'ConnectionFailed');
  });
});

describe('captureHeap', () => {
  let server: TestServer;
  let symbolRequests = 0;
  let symbolsBroken = false;
  const proto = readFixture('go1.26', 'heap-001.pb.gz');
  const debug1 = readFixture('go1.26', 'heap-001.txt');
  const symbols = readFixture('go1.26', 'heap-001.sym');
  before(async () => {
    // Serves a real Go 1.26 capture the way net/http/pprof does.
    server = await startServer((req, res) => {
      if (req.url === '/debug/pprof/heap') return res.end(proto);
      if (req.url === '/debug/pprof/heap?debug=1') return res.end(debug1);
      const url = new URL(req.url ?? '/', 'http://target');
      if (url.pathname === '/debug/pprof/symbol') {
        // Like net/http/pprof in a module that says go >= 1.22: GET-only patterns.
        if (req.method !== 'GET') {
          res.writeHead(405);
          return res.end('Method Not Allowed');
        }
        symbolRequests++;
        if (symbolsBroken) {
          res.writeHead(404);
          return res.end('404 page not found');
        }
        const wanted = new Set(url.search.slice(1).split('+'));
        const lines = symbols.toString('utf8').split('\n').slice(1).filter((l) => wanted.has(l.split(' ')[0] ?? ''));
        return res.end(`num_symbols: 1\n${lines.join('\n')}\n`);
      }
      res.writeHead(404);
      res.end('404 page not found');
    });
  });
  after(() => server.close());

  test('the first capture of a binary learns its hidden frames from debug=1 and /symbol; later ones need the proto alone', async () => {
    const cache = new BinaryKnowledgeCache();
    const client = directPprofClient(`${server.url}/debug/pprof`, 5000);
    const first = await captureHeap(client, { limits: LIMITS, knowledge: cache, scope: 'pod-a' });
    assert.deepEqual(first.warnings, []);
    assert.ok(first.proto.equals(proto), 'raw proto kept byte for byte');
    assert.equal(first.profile.format, 'proto', 'the proto is the measurement');
    assert.ok(first.cost.debug1 && first.cost.requests >= 3 && first.cost.bytes > proto.length);
    assert.ok(first.profile.records.every((r) => r.hiddenFrames === 'resolved'), 'every record restored');
    assert.ok(first.profile.records.some((r) => r.stack.some((f) => f.function.startsWith('internal/runtime/maps.'))), 'map internals are back');
    assert.ok(first.time.getFullYear() >= 2026);
    const asked = symbolRequests;
    assert.ok(asked >= 1);

    const second = await captureHeap(client, { limits: LIMITS, knowledge: cache, scope: 'pod-a' });
    assert.equal(symbolRequests, asked, 'no symbol request');
    assert.deepEqual({ debug1: second.cost.debug1, requests: second.cost.requests, bytes: second.cost.bytes }, { debug1: false, requests: 1, bytes: proto.length }, 'the proto alone');
    assert.equal(second.debug1, undefined);
    assert.deepEqual(
      second.profile.records.map((r) => r.stack.map((f) => f.function)),
      first.profile.records.map((r) => r.stack.map((f) => f.function)),
      'the same stacks as the capture that read debug=1',
    );

    // Another pod of the same binary where build ids may be shared (one namespace): nothing to learn.
    const replica = await captureHeap(client, { limits: LIMITS, knowledge: cache, scope: 'pod-a2', binaryScope: 'pod-a' });
    assert.equal(replica.cost.debug1, false, 'a replica reuses what its binary taught');
    // Another target claiming the same build id elsewhere learns for itself.
    const other = await captureHeap(client, { limits: LIMITS, knowledge: cache, scope: 'pod-b' });
    assert.ok(other.cost.debug1);
    assert.equal(symbolRequests, 2 * asked, 'knowledge is not shared across scopes');
  });

  test('debug=1 policy: always reads it every time, never not at all', async () => {
    const cache = new BinaryKnowledgeCache();
    const client = directPprofClient(`${server.url}/debug/pprof`, 5000);
    for (let i = 0; i < 2; i++) {
      const always = await captureHeap(client, { limits: LIMITS, knowledge: cache, scope: 'always', debug1: { mode: 'always' } });
      assert.ok(always.cost.debug1);
    }
    const never = await captureHeap(client, { limits: LIMITS, knowledge: new BinaryKnowledgeCache(), scope: 'never', debug1: { mode: 'never' } });
    assert.equal(never.cost.requests, 1);
    assert.ok(never.profile.records.every((r) => r.hiddenFrames === 'absent'), 'proto-only: size signatures take over');
  });

  test('symbol requests per capture are capped, and the capture says what it left out', async () => {
    const before = symbolRequests;
    const capture = await captureHeap(directPprofClient(`${server.url}/debug/pprof`, 5000), { limits: LIMITS, knowledge: new BinaryKnowledgeCache(), scope: 'capped', maxSymbolRequests: 0 });
    assert.equal(symbolRequests, before);
    assert.match(capture.warnings.join(), /symbol requests left out \(limit 0 per capture\)/);
  });

  test('without a symbol endpoint the capture still counts, with a warning', async () => {
    symbolsBroken = true;
    try {
      const capture = await captureHeap(directPprofClient(`${server.url}/debug/pprof`, 5000), { limits: LIMITS, knowledge: new BinaryKnowledgeCache(), scope: 'broken' });
      assert.equal(capture.profile.format, 'proto');
      assert.match(capture.warnings.join(), /symbol endpoint: .*HTTP 404/);
    } finally {
      symbolsBroken = false;
    }
  });

  test('a target that is not pprof fails the capture with a profile error', async () => {
    const page = await startServer((_req, res) => res.end(NOT_FOUND_PAGE));
    try {
      await assert.rejects(captureHeap(directPprofClient(page.url, 5000), { limits: LIMITS, knowledge: new BinaryKnowledgeCache(), scope: 'page' }), (err: unknown) => err instanceof ProfileError && err.code === 'HtmlPage');
    } finally {
      await page.close();
    }
  });
});

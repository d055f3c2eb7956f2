import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CaptureError } from '../../src/capture/errors.js';
import { HttpAnswerError } from '../../src/capture/http.js';
import { ProfileError } from '../../src/pprof/errors.js';
import { validPathPrefix } from '../../src/worker/capture-round.js';
import { describeFailure } from '../../src/worker/describe.js';

const PLANTED = 'planted-secret-91b2';
const settings = { timeoutMs: 3000, maxProfileBytes: 1024 };

describe('failures reach the status in the operator’s words', () => {
  test('an error answer is described by status, content type and size', () => {
    const err = new HttpAnswerError(`http://pod/debug/pprof/heap answered HTTP 500`, { status: 500, contentType: 'text/html', bytes: 311 });
    assert.deepEqual(describeFailure(err, settings), { reason: 'Http500', message: 'the target answered HTTP 500 (text/html, 311 bytes)' });
    const notFound = new HttpAnswerError('x', { status: 404, contentType: 'unknown', bytes: 0 });
    assert.match(describeFailure(notFound, settings).message, /^pprof not found \(is net\/http\/pprof imported/);
  });

  test('profile errors get fixed messages, whatever their own message quotes', () => {
    for (const code of ['HtmlPage', 'NotAProfile', 'Malformed', 'TooLarge'] as const) {
      const described = describeFailure(new ProfileError(code, `got "${PLANTED}"`), settings);
      assert.equal(described.reason, code);
      assert.ok(!described.message.includes(PLANTED), described.message);
    }
  });

  test('connection errors keep only a system error code', () => {
    assert.equal(describeFailure(new CaptureError('ConnectionFailed', 'http://10.0.0.1:6060/heap: ECONNREFUSED', undefined, 'ECONNREFUSED'), settings).message, 'nothing answered on the pprof port (ECONNREFUSED)');
    assert.equal(describeFailure(new CaptureError('ConnectionFailed', `x: connection error`), settings).message, 'nothing answered on the pprof port');
    assert.equal(describeFailure(new CaptureError('Timeout', `x ${PLANTED}`), settings).message, 'target too slow: no complete answer within 3000 ms');
  });

  test('anything else is an operator error, with no text of its own', () => {
    assert.deepEqual(describeFailure(new Error(`ApiException body ${PLANTED}`), settings), { reason: 'CaptureFailed', message: 'the capture failed (an operator error; see its log)' });
  });
});

describe('pathPrefix: plain segments only (the CRD says the same)', () => {
  test('accepted', () => {
    for (const prefix of ['/', '/debug/pprof', '/internal/v1.2/pprof', '/a_b~c-d']) assert.ok(validPathPrefix(prefix), prefix);
  });
  test('refused', () => {
    for (const prefix of ['', 'debug', '/debug/', '/debug//pprof', '/../api', '/a/..', '/.hidden', '/a%2e%2e', '/a?b', '/a#b', '/a b', `/${'x'.repeat(65)}`, '/1/2/3/4/5/6/7/8/9']) {
      assert.ok(!validPathPrefix(prefix), prefix);
    }
  });
});

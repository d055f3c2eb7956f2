import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { jsonLogger, redactText, registerSecret } from '../../src/observability/log.js';

function capture(): { lines: string[]; log: ReturnType<typeof jsonLogger> } {
  const lines: string[] = [];
  return { lines, log: jsonLogger({ component: 'test' }, 'debug', (line) => lines.push(line)) };
}

describe('logs are redacted by field name and by value', () => {
  test('fields named like secrets are redacted', () => {
    const { lines, log } = capture();
    log.info('connecting', { password: 'p', token: 't', kubeconfig: 'k', clientKey: 'x', host: 'redis' });
    const record = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
    assert.deepEqual([record.password, record.token, record.kubeconfig, record.clientKey, record.host], ['[redacted]', '[redacted]', '[redacted]', '[redacted]', 'redis']);
  });

  test('known secret values are redacted wherever they appear, in the message too', () => {
    registerSecret('s3cr3t-redis-password');
    const { lines, log } = capture();
    log.warn('auth failed with s3cr3t-redis-password', { error: new Error('WRONGPASS s3cr3t-redis-password'), nested: { list: ['x s3cr3t-redis-password y'] } });
    assert.ok(!lines.join('').includes('s3cr3t-redis-password'), lines.join(''));
    assert.match(lines[0] ?? '', /auth failed with \[redacted\]/);
  });

  test('bearer tokens, JWTs and PEM blocks are redacted by shape', () => {
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJrdWJlcm5ldGVzIn0.c2lnbmF0dXJlLXZhbHVl';
    const pem = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----';
    const { lines, log } = capture();
    log.error('request failed', { error: `headers: Authorization: Bearer abcdefgh12345678; token ${jwt}; key ${pem}` });
    const text = lines.join('');
    assert.ok(!text.includes('abcdefgh12345678'));
    assert.ok(!text.includes(jwt));
    assert.ok(!text.includes('MIIEvQIBADANBgkqhkiG9w0BAQEFAASC'));
    assert.match(text, /Bearer \[redacted\]/);
  });

  test('ordinary text is left alone; short values are never registered (they would redact words)', () => {
    registerSecret('abc');
    assert.equal(redactText('capture round done: abc targets, verdict Leaking'), 'capture round done: abc targets, verdict Leaking');
  });
});

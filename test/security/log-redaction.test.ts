import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { remoteKubeHttp } from '../../src/clusters/kube-http.js';
import { jsonLogger } from '../../src/observability/log.js';

describe('the log redaction knows the tenants\' credentials in use', () => {
  test('a remote kubeconfig\'s token, of no recognisable shape, is redacted wherever a line would carry it', () => {
    // Not a JWT, and without "Bearer " in front: only knowing the value can redact it.
    const token = 'opaque-tenant-token-93kq1x7z';
    const http = remoteKubeHttp({ server: 'https://127.0.0.1:6443', insecureSkipTlsVerify: false, token });
    try {
      const lines: string[] = [];
      const log = jsonLogger({ test: 'redaction' }, 'info', (line) => lines.push(line));
      log.warn(`some library quoted ${token} in its message`, { detail: `token=${token}`, nested: { value: [token] } });
      assert.equal(lines.length, 1);
      assert.ok(!lines[0]!.includes(token), lines[0]);
      assert.match(lines[0]!, /some library quoted \[redacted\] in its message/);
    } finally {
      http.close();
    }
  });
});

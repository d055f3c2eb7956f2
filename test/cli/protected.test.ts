import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Report } from '../../src/analysis/report.js';
import { runCli, type CliResult } from '../support/cli.js';
import { buildTarget, startTarget, type RunningTarget } from '../support/go-targets.js';

const TOKEN = 'tok-7f3a9c1e5b2d4f60';
const BASIC = 'scraper:pw-91c2e7a4';

/** A CA and a certificate for 127.0.0.1 that it signed, made with openssl. */
function makeCertificates(dir: string): { ca: string; cert: string; key: string } {
  const ssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  };
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=mapleak test CA');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  execFileSync('sh', ['-c', 'printf "subjectAltName=IP:127.0.0.1\\n" > san.ext'], { cwd: dir });
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '1', '-extfile', 'san.ext');
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
}

function assertNoCredentials(result: CliResult): void {
  for (const secret of [TOKEN, BASIC, Buffer.from(BASIC).toString('base64')]) {
    assert.ok(!result.stdout.includes(secret) && !result.stderr.includes(secret), 'credentials never printed');
  }
}

describe('mapleak analyze --url on a protected pprof endpoint (HTTPS, bearer token or basic auth)', () => {
  const work = mkdtempSync(join(tmpdir(), 'mapleak-protected-'));
  let target: RunningTarget;
  let url: string;
  let ca: string;

  before(async () => {
    const certs = makeCertificates(work);
    ca = certs.ca;
    const binary = await buildTarget('leaky', '1.26');
    target = await startTarget(binary, work, ['-mode', 'retained', '-tls-cert', certs.cert, '-tls-key', certs.key, '-require-bearer', TOKEN, '-require-basic', BASIC]);
    url = target.url.replace(/^http:/, 'https:');
    await new Promise((resolve) => setTimeout(resolve, 2000));
  });
  after(() => target?.stop());

  const analyze = (...extra: string[]): Promise<CliResult> => runCli(['analyze', '--url', url, '--every', '1s', '--count', '2', '--json', ...extra]);

  test('with the CA and a bearer token: symbolized findings, no warnings', async () => {
    const result = await analyze('--cacert', ca, '--header', `Authorization: Bearer ${TOKEN}`);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout) as Report;
    assert.deepEqual(report.warnings, []);
    assert.ok(report.findings.some((f) => f.kind === 'map' && f.evidence === 'symbolized'), 'symbols fetched through the same credentials');
    assertNoCredentials(result);
  });

  test('basic auth as a header works the same way', async () => {
    const result = await analyze('--cacert', ca, '--header', `Authorization: Basic ${Buffer.from(BASIC).toString('base64')}`);
    assert.equal(result.code, 0, result.stderr);
    assertNoCredentials(result);
  });

  test('without credentials: a clear 401, exit 1', async () => {
    const result = await analyze('--cacert', ca);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /HTTP 401/);
    assertNoCredentials(result);
  });

  test('a certificate nobody trusts is refused unless --insecure', async () => {
    const refused = await analyze('--header', `Authorization: Bearer ${TOKEN}`);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /certificate|SELF_SIGNED|UNABLE_TO_VERIFY/i);
    assertNoCredentials(refused);
    const insecure = await analyze('--insecure', '--header', `Authorization: Bearer ${TOKEN}`);
    assert.equal(insecure.code, 0, insecure.stderr);
  });

  test('a header with a line break or a bad name is a usage error that does not echo it', async () => {
    const result = await analyze('--header', `Authorization: Bearer ${TOKEN}\r\nX-Evil: 1`);
    assert.equal(result.code, 2);
    assertNoCredentials(result);
    assert.equal((await analyze('--header', 'no colon here')).code, 2);
  });
});

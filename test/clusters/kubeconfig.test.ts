import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { KubeconfigRejected, parseTenantKubeconfig } from '../../src/clusters/kubeconfig.js';
import { ensurePki, type ClusterPki } from '../cluster/pki.js';

const POLICY = { allowInsecureTls: false };
/** Planted in every rejected file: no error message may contain it. */
const PLANTED = 'planted-secret-7f3a9c';

describe('tenant kubeconfigs are data: an inline-only allowlist', () => {
  let pki: ClusterPki;
  let b64: (file: string) => string;

  before(async () => {
    pki = await ensurePki(join(mkdtempSync(join(tmpdir(), 'mapleak-kubeconfig-')), 'pki'));
    b64 = (file) => readFileSync(file).toString('base64');
  });

  /** A kubeconfig whose current context's cluster and user carry `cluster` and `user`. */
  const config = (cluster: Record<string, unknown>, user: Record<string, unknown>): Buffer =>
    Buffer.from(
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:6443', ...cluster } }],
        users: [{ name: 'u', user }],
        contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u', namespace: 'kube-system' } }],
        'current-context': 'ctx',
      }),
    );

  const rejects = (bytes: Buffer, pattern: RegExp, policy = POLICY): void => {
    assert.throws(
      () => parseTenantKubeconfig(bytes, policy),
      (err: unknown) => {
        assert.ok(err instanceof KubeconfigRejected, String(err));
        assert.match(err.message, pattern);
        assert.ok(!err.message.includes(PLANTED), `the message quotes the file: ${err.message}`);
        return true;
      },
    );
  };

  test('inline server, CA, token and client certificate are accepted', () => {
    const credentials = parseTenantKubeconfig(
      config({ 'certificate-authority-data': b64(pki.caCert), 'tls-server-name': 'kubernetes' }, { token: 'abc.def', 'client-certificate-data': b64(pki.adminCert), 'client-key-data': b64(pki.adminKey) }),
      POLICY,
    );
    assert.equal(credentials.server, 'https://127.0.0.1:6443');
    assert.equal(credentials.token, 'abc.def');
    assert.equal(credentials.tlsServerName, 'kubernetes');
    assert.equal(credentials.insecureSkipTlsVerify, false);
    assert.deepEqual(credentials.caPem, readFileSync(pki.caCert));
    assert.deepEqual(credentials.certPem, readFileSync(pki.adminCert));
    assert.deepEqual(credentials.keyPem, readFileSync(pki.adminKey));
  });

  test('YAML works as well as JSON, and the context namespace is ignored', () => {
    const yaml = [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: c',
      '  cluster:',
      '    server: https://example.test:443/',
      `    certificate-authority-data: ${b64(pki.caCert)}`,
      'users:',
      '- name: u',
      '  user: {token: t0ken-value}',
      'contexts:',
      '- name: x',
      '  context: {cluster: c, user: u, namespace: kube-system}',
      'current-context: x',
    ].join('\n');
    const credentials = parseTenantKubeconfig(Buffer.from(yaml), POLICY);
    assert.equal(credentials.server, 'https://example.test', 'trailing slash dropped');
    assert.equal(credentials.token, 't0ken-value');
  });

  const refusedUserFields: [string, unknown, RegExp][] = [
    ['exec', { apiVersion: 'client.authentication.k8s.io/v1', command: '/bin/sh', args: ['-c', `touch /tmp/${PLANTED}`] }, /exec credential plugins are not run/],
    ['auth-provider', { name: 'gcp', config: { 'cmd-path': `/bin/${PLANTED}` } }, /auth-provider plugins are not run/],
    ['token-file', `/var/run/secrets/kubernetes.io/serviceaccount/token#${PLANTED}`, /file references are not read/],
    ['tokenFile', `/var/run/secrets/${PLANTED}`, /file references are not read/],
    ['client-certificate', `/etc/${PLANTED}.crt`, /file references are not read/],
    ['client-key', `/etc/${PLANTED}.key`, /file references are not read/],
    ['as', PLANTED, /impersonation is not allowed/],
    ['as-groups', ['system:masters', PLANTED], /impersonation is not allowed/],
    ['as-uid', PLANTED, /impersonation is not allowed/],
    ['as-user-extra', { scopes: [PLANTED] }, /impersonation is not allowed/],
    ['username', PLANTED, /basic authentication is not supported/],
    ['password', PLANTED, /basic authentication is not supported/],
  ];
  for (const [field, value, pattern] of refusedUserFields) {
    test(`user field ${field} is refused by name, without quoting the file`, () => {
      rejects(config({}, { token: 'ok-token', [field]: value }), new RegExp(`user field ${field} is refused: ${pattern.source}`));
    });
  }

  test('cluster file references and proxies are refused', () => {
    rejects(config({ 'certificate-authority': `/etc/${PLANTED}` }, {}), /cluster field certificate-authority is refused: file references are not read/);
    rejects(config({ 'proxy-url': `http://${PLANTED}:3128` }, {}), /cluster field proxy-url is refused: proxies are not supported/);
  });

  test('unknown fields are refused without naming them', () => {
    rejects(config({}, { [PLANTED]: 'x' }), /the user has an unsupported field; only token, client-certificate-data, client-key-data are accepted/);
    rejects(config({ [PLANTED]: 'x' }, {}), /the cluster has an unsupported field/);
  });

  test('insecure-skip-tls-verify only behind the operator flag', () => {
    const insecure = config({ 'insecure-skip-tls-verify': true }, { token: 'tok-value' });
    rejects(insecure, /--insecure-kubeconfig-tls is off/);
    assert.equal(parseTenantKubeconfig(insecure, { allowInsecureTls: true }).insecureSkipTlsVerify, true);
  });

  test('the server must be an https URL without credentials', () => {
    rejects(config({ server: `http://${PLANTED}:8080` }, {}), /must be an https:\/\/ URL/);
    rejects(config({ server: `https://user:${PLANTED}@h:6443` }, {}), /must not carry credentials/);
    rejects(config({ server: `https://h:6443/?x=${PLANTED}` }, {}), /must not carry credentials, a query or a fragment/);
    rejects(config({ server: PLANTED }, {}), /is not a URL/);
  });

  test('data fields must be base64 PEM, tokens printable, cert and key together', () => {
    rejects(config({ 'certificate-authority-data': Buffer.from(PLANTED).toString('base64') }, {}), /certificate-authority-data is not base64-encoded PEM/);
    rejects(config({ 'certificate-authority-data': Buffer.from(`-----BEGIN CERTIFICATE-----\n${PLANTED}\n-----END CERTIFICATE-----\n`).toString('base64') }, {}), /is not a PEM certificate/);
    rejects(config({}, { token: `a\r\nX-Injected: ${PLANTED}` }), /token is not a bearer token/);
    rejects(config({}, { 'client-certificate-data': b64(pki.adminCert) }), /must be given together/);
  });

  test('not a kubeconfig at all: a clear message, never the bytes', () => {
    rejects(Buffer.from(`{{{ ${PLANTED}`), /not valid YAML or JSON/);
    rejects(Buffer.from(`- ${PLANTED}`), /not a mapping/);
    rejects(Buffer.from(JSON.stringify({ 'current-context': PLANTED, contexts: [] })), /names no context/);
    rejects(Buffer.alloc(0), /empty/);
    rejects(Buffer.alloc(300 * 1024, 0x20), /larger than/);
  });

  test('YAML tags construct nothing', () => {
    rejects(Buffer.from(`current-context: !!js/function "function(){ return '${PLANTED}' }"`), /not valid YAML or JSON/);
  });
});

import assert from 'node:assert/strict';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { directPprofClient, POD_ADDRESS_NOT_ALLOWED } from '../../src/capture/direct.js';
import { CaptureError } from '../../src/capture/errors.js';
import { fetchBytes } from '../../src/capture/http.js';
import { AddressAllowlist } from '../../src/clusters/address-allowlist.js';
import { ADDRESS_NOT_ALLOWED, allowlistedHttpsAgent } from '../../src/clusters/dial-guard.js';
import { apiServerProxyClient } from '../../src/capture/proxy.js';
import { REMOTE_SERVER_UNREACHABLE, RemoteServerUnreachable, remoteKubeHttp } from '../../src/clusters/kube-http.js';
import { describePodListFailure } from '../../src/clusters/pod-list-failure.js';
import { describeFailure } from '../../src/worker/describe.js';
import { certificateForName } from '../support/name-certificate.js';

/** A plain TCP listener that counts the connections it accepted: the proof that nothing was dialled. */
async function countingListener(host: string): Promise<{ port: number; accepted: () => number; close: () => void }> {
  let accepted = 0;
  const server = net.createServer((socket) => {
    accepted++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return { port: (server.address() as AddressInfo).port, accepted: () => accepted, close: () => server.close() };
}

describe('dialling only what the allowlist allows', () => {
  let tls: { ca: Buffer; cert: Buffer; key: Buffer };
  let server: https.Server;
  let serverPort: number;
  let requests = 0;

  before(async () => {
    tls = certificateForName('localhost');
    server = https.createServer({ cert: tls.cert, key: tls.key }, (_req, res) => {
      requests++;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"items":[]}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    serverPort = (server.address() as AddressInfo).port;
  });

  after(() => {
    server.closeAllConnections();
    server.close();
  });

  test('an IP literal outside the list: the request fails with ERR_ADDRESS_NOT_ALLOWED and the listener accepted nothing', async () => {
    const listener = await countingListener('127.0.0.2');
    try {
      const agent = allowlistedHttpsAgent(AddressAllowlist.parse(['127.0.0.1/32']), { ca: tls.ca });
      const err = await fetchBytes(`https://127.0.0.2:${listener.port}/api/v1/namespaces/x/pods`, { timeoutMs: 5000, maxBytes: 1024, agent }).then(
        () => assert.fail('answered'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof CaptureError && err.code === 'ConnectionFailed' && err.systemCode === ADDRESS_NOT_ALLOWED, String(err));
      assert.doesNotMatch(err.message, /not in the operator|allowlist/, 'the message is the usual connection failure; the code says why');
      assert.equal(listener.accepted(), 0);
      // A plain connect to the same listener is counted: the zero above is not the listener's fault.
      const socket = net.connect(listener.port, '127.0.0.2');
      await new Promise<void>((resolve) => socket.once('connect', resolve));
      socket.destroy();
      await waitUntil(() => listener.accepted() === 1);
      assert.equal(listener.accepted(), 1);
      agent.destroy();
    } finally {
      listener.close();
    }
  });

  test('a name whose only address is outside the list is refused before any connection', async () => {
    const listener = await countingListener('127.0.0.1');
    try {
      const agent = allowlistedHttpsAgent(AddressAllowlist.parse(['10.0.0.0/8', '0.0.0.0/0']), { ca: tls.ca });
      const err = await fetchBytes(`https://localhost:${listener.port}/`, { timeoutMs: 5000, maxBytes: 1024, agent }).then(
        () => assert.fail('answered'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof CaptureError && err.systemCode === ADDRESS_NOT_ALLOWED, String(err));
      assert.equal(listener.accepted(), 0, 'localhost is 127.0.0.1: loopback, which 0.0.0.0/0 does not list explicitly');
      agent.destroy();
    } finally {
      listener.close();
    }
  });

  test('a name whose address is allowed: connected to the checked address, the certificate verified against the name', async () => {
    const before = requests;
    const agent = allowlistedHttpsAgent(AddressAllowlist.parse(['127.0.0.1/32']), { ca: tls.ca });
    const body = await fetchBytes(`https://localhost:${serverPort}/api/v1/namespaces/x/pods`, { timeoutMs: 5000, maxBytes: 1024, agent });
    assert.equal(body.toString(), '{"items":[]}');
    assert.equal(requests, before + 1);
    // The same server by its address: the certificate names localhost only, so verification was on the name above.
    const byAddress = await fetchBytes(`https://127.0.0.1:${serverPort}/`, { timeoutMs: 5000, maxBytes: 1024, agent }).then(
      () => 'answered',
      (e: unknown) => (e instanceof CaptureError ? e.systemCode : String(e)),
    );
    assert.equal(byAddress, 'ERR_TLS_CERT_ALTNAME_INVALID');
    agent.destroy();
  });

  test('Direct capture with an allowlist: a pod IP outside it fails the target in operator words, nothing dialled', async () => {
    const listener = await countingListener('127.0.0.3');
    try {
      const allowed = AddressAllowlist.parse(['127.0.0.4/32']);
      const client = directPprofClient(`http://127.0.0.3:${listener.port}/debug/pprof`, 5000, { allowedAddresses: allowed });
      await assert.rejects(client.get('/heap', 1024), (err: unknown) => err instanceof CaptureError && err.code === 'BadUrl' && err.message === POD_ADDRESS_NOT_ALLOWED);
      assert.doesNotMatch(POD_ADDRESS_NOT_ALLOWED, /127\./);
      assert.equal(listener.accepted(), 0);
      // The same client shape for an allowed IP does dial.
      const open = await countingListener('127.0.0.4');
      try {
        const reaching = directPprofClient(`http://127.0.0.4:${open.port}/debug/pprof`, 2000, { allowedAddresses: allowed });
        await assert.rejects(reaching.get('/heap', 1024), (err: unknown) => err instanceof CaptureError && err.code === 'ConnectionFailed');
        assert.equal(open.accepted(), 1);
      } finally {
        open.close();
      }
    } finally {
      listener.close();
    }
  });

  test('a remote API server that cannot be reached reads the same for a pod list and a capture through its proxy; the code goes to the log only', async () => {
    const closed = await countingListener('127.0.0.1');
    closed.close();
    const outside = await countingListener('127.0.0.3');
    try {
      const allowed = AddressAllowlist.parse(['127.0.0.1/32']);
      const cases = [
        { server: `https://127.0.0.1:${closed.port}`, code: 'ECONNREFUSED' },
        { server: `https://127.0.0.3:${outside.port}`, code: ADDRESS_NOT_ALLOWED },
      ];
      for (const { server, code } of cases) {
        const http = remoteKubeHttp({ server, insecureSkipTlsVerify: false, caPem: tls.ca }, allowed);
        try {
          const listing = await http.get('/api/v1/namespaces/apps/pods', { timeoutMs: 5000, maxBytes: 1024 }).then(() => assert.fail('answered'), (e: unknown) => e);
          assert.ok(listing instanceof RemoteServerUnreachable && listing.systemCode === undefined && listing.dialCode === code, `${server}: ${String(listing)}`);
          assert.deepEqual(describePodListFailure(listing, true, 5000), { message: REMOTE_SERVER_UNREACHABLE, detail: { code: 'ConnectionFailed', systemCode: code } });
          const capture = await apiServerProxyClient(http, { namespace: 'apps', name: 'p', port: 6060, pathPrefix: '/debug/pprof' }, 5000).get('/heap', 1024).then(() => assert.fail('answered'), (e: unknown) => e);
          assert.deepEqual(describeFailure(capture, { timeoutMs: 5000, maxProfileBytes: 1024 }), { reason: 'ConnectionFailed', message: REMOTE_SERVER_UNREACHABLE }, 'not "nothing answered on the pprof port (CODE)"');
          assert.doesNotMatch(String((capture as Error).message), /127\.0\.0|ECONN|ERR_/);
        } finally {
          http.close();
        }
      }
      assert.equal(outside.accepted(), 0);
    } finally {
      outside.close();
    }
  });

  test('IPv6: an address inside the list is dialled, one outside it is not, behind brackets as URLs write them', async () => {
    const v6 = await countingListener('::1');
    try {
      const url = `https://[::1]:${v6.port}/`;
      const refusedAgent = allowlistedHttpsAgent(AddressAllowlist.parse(['::/0']), { ca: tls.ca });
      const refused = await fetchBytes(url, { timeoutMs: 5000, maxBytes: 1024, agent: refusedAgent }).then(() => 'answered', (e: unknown) => (e instanceof CaptureError ? e.systemCode : String(e)));
      assert.equal(refused, ADDRESS_NOT_ALLOWED, '::/0 does not list loopback explicitly');
      assert.equal(v6.accepted(), 0);
      const allowedAgent = allowlistedHttpsAgent(AddressAllowlist.parse(['::1/128']), { ca: tls.ca });
      // The listener closes every connection at once: the dial happened, the TLS handshake did not.
      await fetchBytes(url, { timeoutMs: 5000, maxBytes: 1024, agent: allowedAgent }).then(() => assert.fail('answered'), () => undefined);
      await waitUntil(() => v6.accepted() === 1);
      assert.equal(v6.accepted(), 1);
      refusedAgent.destroy();
      allowedAgent.destroy();
    } finally {
      v6.close();
    }
  });
});

async function waitUntil(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !ok(); i++) await new Promise((resolve) => setTimeout(resolve, 20));
}

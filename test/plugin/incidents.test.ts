// kubectl mapleak incidents and profile --incident, without a cluster: the
// table, the choice of capture, and what the plugin makes of an answer that
// is not the operator's (a real HTTP server on loopback answers it).
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { IncidentStatus, MapLeakProbe } from '../../src/api/types.js';
import { PluginError } from '../../src/plugin/kube.js';
import { formatIncidents } from '../../src/plugin/probes.js';
import { pickIncidentCapture, readIncidents, type ListedIncident } from '../../src/plugin/profile.js';

const incident = (over: Partial<IncidentStatus>): IncidentStatus => ({
  id: 'i1', pod: 'checkout-0', namespace: 'shop', container: 'server', reason: 'OOMKilled', exitCode: 137, time: '2026-12-01T11:56:00.000Z', detectedTime: '2026-12-01T11:56:03.000Z',
  restartCount: 1, restarts: 1, verdict: 'Leaking', captureIds: ['a1', 'a2'],
  findings: [{ function: 'main.(*store).put', file: '/src/main.go', line: 41, kind: 'map', pattern: 'growing', inuseBytes: 212 << 20, growthBytesPerHour: 1 << 30, growingUpToKill: true }],
  ...over,
});
const probe = (incidents: IncidentStatus[]) => ({ metadata: { name: 'checkout', namespace: 'shop' }, spec: {}, status: { incidents } }) as unknown as MapLeakProbe;

describe('kubectl mapleak incidents and profile --incident', () => {
  let server: Server;
  let url: string;
  let answer = '';
  before(async () => {
    server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(answer));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test('the table numbers incidents newest first and says when one stands for several restarts', () => {
    const now = new Date('2026-12-01T12:00:00Z');
    const lines = formatIncidents(probe([incident({ id: 'i2', restartCount: 5, restarts: 3, time: '2026-12-01T11:59:00.000Z' }), incident({})]), now).split('\n');
    assert.match(lines[0]!, /^#\s+AGE\s+POD\s+CONTAINER\s+REASON\s+EXIT\s+RESTART\s+VERDICT\s+CAPTURES\s+TOP FINDING$/);
    assert.match(lines[1]!, /^1\s+60s\s+checkout-0\s+server\s+OOMKilled\s+137\s+5 \(3 restarts\)\s+Leaking\s+2\s+map\/growing up to the end main\.\(\*store\)\.put main\.go:41 212\.0 MiB$/);
    assert.match(lines[2]!, /^2\s+4m\s+checkout-0\s+server\s+OOMKilled\s+137\s+1\s+Leaking/);
    assert.match(formatIncidents(probe([]), now), /^No incidents for shop\/checkout/);
  });

  test('--incident N picks the last capture still stored, or the one named; a gone pin is a clear error', () => {
    const listed: ListedIncident[] = [
      { ...incident({}), captures: [{ id: 'a1', time: 't1', profile: '/p/a1' }, { id: 'a2', time: 't2', profile: null }] },
    ];
    assert.equal(pickIncidentCapture(listed, 1, 'latest').id, 'a1', 'a2 expired: the last one still stored');
    assert.equal(pickIncidentCapture(listed, 1, 'a1').pod, 'checkout-0');
    assert.throws(() => pickIncidentCapture(listed, 1, 'a2'), (err: Error) => err instanceof PluginError && err.message === 'incident 1 keeps no capture a2; kept: a1');
    assert.throws(() => pickIncidentCapture(listed, 2, 'latest'), /no incident 2; there are 1/);
    assert.throws(() => pickIncidentCapture([], 1, 'latest'), /this probe has no incidents/);
  });

  test('an answer that is not the operator\'s incident list is a clear error, not a crash', async () => {
    const api = { url, token: 't', timeoutMs: 5000, maxBytes: 1 << 20 };
    for (const body of ['{}', '{"incidents": {"0": 1}}', '{"incidents": [{"id": "x"}]}', '<html>']) {
      answer = body;
      await assert.rejects(readIncidents(api, 'shop', 'checkout'), (err: Error) => err instanceof PluginError && /operator/.test(err.message), body);
    }
    answer = JSON.stringify({ incidents: [{ ...incident({}), captures: [] }] });
    assert.equal((await readIncidents(api, 'shop', 'checkout')).length, 1);
  });
});

/**
 * debug=1 and /symbol are the costly questions a capture may ask (tens of
 * MB, dozens of requests): they are paced per binary (`--min-debug1-interval`,
 * a 30-minute rest for a /symbol that fails) and per target. The build id
 * that keys a binary is the target's own claim, so a hostile target that
 * names a new one in every profile must not be asked again on every capture.
 *
 * The target here is a loopback HTTP server written to misbehave (a tenant
 * can run any program): a valid heap profile whose build id changes on every
 * answer, a debug=1 of PCs no `#` line names, and a /symbol that names none.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { Function as ProfileFunction, Label, Line, Location, Mapping, Profile, Sample, StringTable, ValueType } from 'pprof-format';
import { BinaryKnowledgeCache, captureHeap, directPprofClient, type CaptureOptions } from '../../src/capture/index.js';
import { startServer, type TestServer } from '../support/http-server.js';

const LIMITS = { maxBytes: 8 * 1024 * 1024 };
const PCS = 64;

/** A heap profile of one binary, `buildId` as it claims: PCS records of 2 MiB in use each, none with its hidden frames known. */
function heapProfile(buildId: string): Buffer {
  const s = new StringTable();
  const types = ['alloc_objects', 'alloc_space', 'inuse_objects', 'inuse_space'].map((x) => new ValueType({ type: s.dedup(x), unit: s.dedup(x.endsWith('space') ? 'bytes' : 'count') }));
  const mapping = new Mapping({ id: 1, memoryStart: 0x400000, memoryLimit: 0x800000, filename: s.dedup('/app/server'), buildId: s.dedup(buildId) });
  const locations = Array.from({ length: PCS }, (_, i) => new Location({ id: i + 1, mappingId: 1, address: 0x401000 + i * 16, line: [new Line({ functionId: i + 1, line: 10 + i })] }));
  const functions = Array.from({ length: PCS }, (_, i) => new ProfileFunction({ id: i + 1, name: s.dedup(`main.alloc${i}`), filename: s.dedup('/src/main.go') }));
  const samples = locations.map((l) => new Sample({ locationId: [l.id], value: [32, 32 * 65536, 32, 32 * 65536], label: [new Label({ key: s.dedup('bytes'), num: 65536 })] }));
  return gzipSync(new Profile({ stringTable: s, sampleType: types, sample: samples, location: locations, function: functions, mapping: [mapping], period: 524288, timeNanos: BigInt(Date.now()) * 1_000_000n }).encode());
}

/** debug=1 listing each record's PC, with no `#` line to name it: only /symbol could. */
function debug1Text(): string {
  const records = Array.from({ length: PCS }, (_, i) => `32: 2097152 [32: 2097152] @ 0x${(0x401000 + i * 16 + 1).toString(16)}\n`);
  return `heap profile: ${PCS * 32}: ${PCS * 2097152} [${PCS * 32}: ${PCS * 2097152}] @ heap/524288\n${records.join('')}`;
}

describe('debug=1 and /symbol are paced per target, whatever build id its profiles claim', () => {
  let target: TestServer;
  let answers = 0;
  const asked = { debug1: 0, symbol: 0 };
  /** Stable, or a new build id in every proto answer. */
  let rotate = true;
  /** /symbol names every PC asked, or none. */
  let names = false;

  before(async () => {
    target = await startServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://target');
      if (url.pathname === '/debug/pprof/heap' && url.searchParams.get('debug') === '1') {
        asked.debug1++;
        return void res.end(debug1Text());
      }
      if (url.pathname === '/debug/pprof/heap') return void res.end(heapProfile(rotate ? `build-${answers++}` : 'build-stable'));
      if (url.pathname === '/debug/pprof/symbol') {
        asked.symbol++;
        const pcs = names ? url.search.slice(1).split('+').filter(Boolean) : [];
        return void res.end(`num_symbols: 1\n${pcs.map((pc, i) => `${pc} runtime.mallocgc${i}\n`).join('')}`);
      }
      res.statusCode = 404;
      res.end();
    });
  });
  after(() => target.close());

  const capture = (options: Pick<CaptureOptions, 'knowledge' | 'scope' | 'binaryScope'> & { minIntervalMs: number }) =>
    captureHeap(directPprofClient(`${target.url}/debug/pprof`, 5000), {
      limits: LIMITS,
      knowledge: options.knowledge,
      scope: options.scope,
      ...(options.binaryScope ? { binaryScope: options.binaryScope } : {}),
      debug1: { minIntervalMs: options.minIntervalMs, minUnknownBytes: 0 },
    });

  test('a new build id on every answer: four captures within --min-debug1-interval read debug=1 once', async () => {
    rotate = true;
    names = true;
    asked.debug1 = 0;
    const knowledge = new BinaryKnowledgeCache();
    for (let i = 0; i < 4; i++) await capture({ knowledge, scope: 'team-a/pod-1', binaryScope: 'team-a', minIntervalMs: 10 * 60_000 });
    assert.ok(answers >= 4, 'every proto claimed another binary');
    assert.equal(asked.debug1, 1, 'the interval holds for the pod, not only for the build id it names');
    // Another pod is another target: its first capture may ask.
    await capture({ knowledge, scope: 'team-a/pod-2', binaryScope: 'team-a', minIntervalMs: 10 * 60_000 });
    assert.equal(asked.debug1, 2);
  });

  test('a /symbol that names nothing rests for the target: a new build id does not make it asked again', async () => {
    rotate = true;
    names = false;
    asked.debug1 = 0;
    asked.symbol = 0;
    const knowledge = new BinaryKnowledgeCache();
    const first = await capture({ knowledge, scope: 'team-a/pod-3', binaryScope: 'team-a', minIntervalMs: 0 });
    assert.ok(first.warnings.some((w) => /symbol endpoint: named none of the PCs asked/.test(w)), first.warnings.join('; '));
    assert.deepEqual(asked, { debug1: 1, symbol: 1 });
    for (let i = 0; i < 3; i++) await capture({ knowledge, scope: 'team-a/pod-3', binaryScope: 'team-a', minIntervalMs: 0 });
    assert.deepEqual(asked, { debug1: 1, symbol: 1 }, 'neither debug=1 (it teaches nothing without names) nor /symbol again');
  });

  test('a stable build id shared by two pods of one namespace is learned once, as before', async () => {
    rotate = false;
    names = true;
    asked.debug1 = 0;
    const knowledge = new BinaryKnowledgeCache();
    await capture({ knowledge, scope: 'team-b/pod-1', binaryScope: 'team-b', minIntervalMs: 10 * 60_000 });
    await capture({ knowledge, scope: 'team-b/pod-2', binaryScope: 'team-b', minIntervalMs: 10 * 60_000 });
    assert.equal(asked.debug1, 1, 'the second pod of the binary uses what the first one taught');
  });
});

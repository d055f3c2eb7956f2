/**
 * The worker's round with its heavy work off the event loop (the decode
 * gate's thread decodes each answer once, attributes the capture from the
 * profile it kept, and parses and analyses the stored series) gives
 * exactly what the same work on the loop gives. Real captures of a Go 1.19
 * and a Go 1.26 program (test/pprof/testdata), served by a local HTTP
 * server as net/http/pprof serves them, /symbol included.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { attributeProfile } from '../../src/analysis/attribute.js';
import { DEFAULT_THRESHOLDS } from '../../src/analysis/series.js';
import { BinaryKnowledgeCache, captureHeap, directPprofClient, type HeapCapture } from '../../src/capture/index.js';
import { jsonLogger } from '../../src/observability/log.js';
import { decodeHeapProfile, parseDebug1Heap } from '../../src/pprof/index.js';
import { storedSnapshotJson } from '../../src/store/series-store.js';
import { analyzeStoredSeries, storedSnapshot } from '../../src/worker/capture-round.js';
import { DecodeGate } from '../../src/worker/decode-gate.js';
import { FIXTURE_VERSIONS, readFixture, type FixtureVersion } from '../support/fixtures.js';
import { fixtureTarget } from '../support/fixture-target.js';
import type { TestServer } from '../support/http-server.js';

const LIMITS = { maxBytes: 8 * 1024 * 1024 };
const silent = jsonLogger({}, 'error', () => undefined);

describe('the round off the event loop gives the results of the round on it', () => {
  let gate: DecodeGate;
  const targets = new Map<FixtureVersion, TestServer>();
  before(async () => {
    gate = new DecodeGate({ maxDecodeMs: 10_000, maxHeapMiB: 512 });
    await Promise.all(FIXTURE_VERSIONS.map(async (v) => targets.set(v, await fixtureTarget(v, 'heap-008'))));
  });
  after(async () => {
    await gate.close();
    await Promise.all([...targets.values()].map((t) => t.close()));
  });

  const capture = (version: FixtureVersion, decoders?: ReturnType<DecodeGate['decoders']>): Promise<HeapCapture> =>
    captureHeap(directPprofClient(`${targets.get(version)?.url}/debug/pprof`, 10_000), {
      limits: LIMITS,
      knowledge: new BinaryKnowledgeCache(),
      scope: `test|${version}`,
      ...(decoders ? { decoders } : {}),
    });

  for (const version of FIXTURE_VERSIONS) {
    test(`${version}: decoded in the thread, the capture is the one decoded on the loop, hidden frames restored alike`, async () => {
      const onLoop = await capture(version);
      const decoders = gate.decoders(LIMITS);
      const threaded = await capture(version, decoders);
      assert.ok(onLoop.cost.debug1 && threaded.cost.debug1, 'both read debug=1 and learned from it');
      const resolved = threaded.profile.records.filter((r) => r.hiddenFrames === 'resolved').length;
      assert.ok(resolved > 0, 'the symbols put hidden runtime frames back');
      assert.deepEqual(threaded.profile, onLoop.profile);
      assert.deepEqual(threaded.symbols, onLoop.symbols);

      // Attributed in the thread from the profile it kept, with the restoration sent over.
      const stored = await storedSnapshot(gate, decoders, threaded, silent);
      assert.equal(stored.toString(), storedSnapshotJson({ ...attributeProfile(onLoop.profile), time: onLoop.time }));
      assert.match(stored.toString(), /"evidence":"symbolized"/);
      assert.equal(decoders.kept, undefined, 'the kept profile is used once');
    });

    test(`${version}: debug=1 parsed in the thread is the one parsed on the loop`, async () => {
      const text = readFixture(version, 'heap-008.txt');
      // Parsed on the loop first: parseDebug1 takes the answer over (it moves to the thread).
      const onLoop = parseDebug1Heap(text.toString('utf8'));
      assert.deepEqual(await gate.parseDebug1(text, LIMITS), onLoop);
      const proto = readFixture(version, 'heap-001.pb.gz');
      assert.deepEqual(await gate.decodeProto(proto, LIMITS), decodeHeapProfile(proto, LIMITS));
    });
  }

  test('without a kept profile (the thread dropped it) the capture is attributed on the loop, with the same result', async () => {
    const threaded = await capture('go1.26', gate.decoders(LIMITS));
    const stale = gate.decoders(LIMITS); // decoded nothing: nothing kept
    await assert.rejects(gate.attributeForStore(stale, threaded.profile, threaded.time), /no kept profile/);
    const stored = await storedSnapshot(gate, stale, threaded, silent);
    assert.equal(stored.toString(), storedSnapshotJson({ ...attributeProfile(threaded.profile), time: threaded.time }));
  });

  test("a refusal under the thread's limits is final: the work the target sized never moves to the event loop", async () => {
    // A budget no real analysis meets stands in for a target whose series is too big for the thread.
    const strict = new DecodeGate({ maxDecodeMs: 10_000, maxAnalysisMs: 1, maxHeapMiB: 512 });
    try {
      const profile = decodeHeapProfile(readFixture('go1.26', 'heap-008.pb.gz'), LIMITS);
      const series = Array.from({ length: 12 }, (_, i) => Buffer.from(storedSnapshotJson({ ...attributeProfile(profile), time: new Date(i * 60_000) })));
      const warnings: string[] = [];
      const log = jsonLogger({}, 'warn', (line) => warnings.push(line));
      await assert.rejects(analyzeStoredSeries({ decodeGate: strict }, series, DEFAULT_THRESHOLDS, log), (err: Error) => err.name === 'ProfileError' && /takes longer than 1 ms \(limit\)/.test(err.message));
      assert.deepEqual(warnings.filter((l) => /on the event loop/.test(l)), [], 'nothing fell back to the loop');
    } finally {
      await strict.close();
    }
  });

  test('a stored series analysed in the thread gives the findings of the loop', async () => {
    for (const version of FIXTURE_VERSIONS) {
      const series = ['heap-001', 'heap-008'].map((stem, i) => {
        const profile = decodeHeapProfile(readFixture(version, `${stem}.pb.gz`), LIMITS);
        return Buffer.from(storedSnapshotJson({ ...attributeProfile(profile), time: profile.time ?? new Date(i * 60_000) }));
      });
      const thresholds = { ...DEFAULT_THRESHOLDS, minMapBytes: 64 * 1024 };
      const threaded = await analyzeStoredSeries({ decodeGate: gate }, series, thresholds, silent);
      const onLoop = await analyzeStoredSeries({}, series, thresholds, silent);
      assert.ok(onLoop.findings.length > 0, `${version}: the series has findings`);
      assert.deepEqual(threaded, onLoop);
      assert.ok(series.every((json) => json.length > 0), 'the caller keeps its buffers');
    }
  });
});

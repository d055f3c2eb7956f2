/**
 * What a capture still does on the event loop when the decode gate decodes
 * (rebuilding the stacks and records the thread sent, looking the records
 * up in what the binary taught, putting hidden frames back) runs in slices
 * with the loop turning between them, and gives exactly the capture and
 * the stored snapshot that the same work done at once gives. Real
 * captures (test/pprof/testdata, with debug=1 and /symbol, so hidden
 * frames are restored) served as net/http/pprof serves them; slices made
 * small so these profiles are cut into many.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { attributeProfile } from '../../src/analysis/attribute.js';
import { BinaryKnowledgeCache, captureHeap, directPprofClient, type HeapCapture } from '../../src/capture/index.js';
import { jsonLogger } from '../../src/observability/log.js';
import { storedSnapshotJson } from '../../src/store/series-store.js';
import { storedSnapshot } from '../../src/worker/capture-round.js';
import { DecodeGate } from '../../src/worker/decode-gate.js';
import { FIXTURE_VERSIONS, type FixtureVersion } from '../support/fixtures.js';
import { fixtureTarget } from '../support/fixture-target.js';
import type { TestServer } from '../support/http-server.js';

const LIMITS = { maxBytes: 8 * 1024 * 1024 };
const SLICE = 4;
const silent = jsonLogger({}, 'error', () => undefined);

/** Counts the event loop's turns while `work` runs (one setImmediate per turn). */
async function loopTurnsDuring<T>(work: () => Promise<T>): Promise<{ result: T; turns: number }> {
  let turns = 0;
  let running = true;
  const tick = (): void => {
    turns++;
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  try {
    return { result: await work(), turns };
  } finally {
    running = false;
  }
}

describe('the loop\'s share of a capture runs in slices, with the same result', () => {
  let gate: DecodeGate;
  const targets = new Map<FixtureVersion, TestServer>();
  before(async () => {
    gate = new DecodeGate({ maxDecodeMs: 10_000, maxHeapMiB: 512, recordsPerSlice: SLICE });
    await Promise.all(FIXTURE_VERSIONS.map(async (v) => targets.set(v, await fixtureTarget(v))));
  });
  after(async () => {
    await gate.close();
    await Promise.all([...targets.values()].map((t) => t.close()));
  });

  const capture = (version: FixtureVersion, knowledge: BinaryKnowledgeCache, decoders?: ReturnType<DecodeGate['decoders']>): Promise<HeapCapture> =>
    captureHeap(directPprofClient(`${targets.get(version)?.url}/debug/pprof`, 10_000), {
      limits: LIMITS,
      knowledge,
      scope: `test|${version}`,
      ...(decoders ? { decoders } : {}),
    });

  for (const version of FIXTURE_VERSIONS) {
    test(`${version}: a first capture (debug=1 read) and a second (records known), sliced, are the captures made at once`, async () => {
      const [atOnce, sliced] = [new BinaryKnowledgeCache(), new BinaryKnowledgeCache()];
      for (const round of ['first', 'second']) {
        const expected = await capture(version, atOnce);
        const decoders = gate.decoders(LIMITS);
        const { result: actual, turns } = await loopTurnsDuring(() => capture(version, sliced, decoders));
        const records = actual.profile.records.length;
        assert.ok(records > 10 * SLICE, `${version}: ${records} records make many slices`);
        assert.equal(actual.cost.debug1, round === 'first', `${round} capture: debug=1 read only while records are unknown`);
        // Rebuilding the records and restoring them, at least: a turn of the loop per slice.
        assert.ok(turns >= (2 * records) / SLICE, `${round} capture: the loop turned ${turns} times for ${records} records`);
        assert.ok(actual.profile.records.some((r) => r.hiddenFrames === 'resolved'), 'hidden frames put back');
        assert.deepEqual(actual.profile, expected.profile);
        const stored = await storedSnapshot(gate, decoders, actual, silent);
        assert.equal(stored.toString(), storedSnapshotJson({ ...attributeProfile(expected.profile), time: expected.time }));
      }
    });
  }
});

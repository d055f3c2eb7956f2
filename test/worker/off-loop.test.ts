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
import { DEFAULT_KNOWLEDGE_LIMITS } from '../../src/capture/binary-knowledge.js';
import { DEFAULT_MAX_SYMBOL_REQUESTS } from '../../src/capture/capture.js';
import { learnHiddenFrames, type HiddenFrameTable } from '../../src/pprof/hidden-frames.js';
import { decodeHeapProfile, parseDebug1Heap, parseSymbolResponse, symbolQuestions } from '../../src/pprof/index.js';
import { storedSnapshotJson } from '../../src/store/series-store.js';
import { analyzeStoredSeries, storedSnapshot } from '../../src/worker/capture-round.js';
import { DecodeGate } from '../../src/worker/decode-gate.js';
import { MAX_KEPT_RECORDS } from '../../src/worker/decode-thread.js';
import type { HeapProfile } from '../../src/pprof/types.js';
import { FIXTURE_VERSIONS, readFixture, type FixtureVersion } from '../support/fixtures.js';
import { fixtureTarget } from '../support/fixture-target.js';
import type { TestServer } from '../support/http-server.js';

const LIMITS = { maxBytes: 8 * 1024 * 1024 };
const silent = jsonLogger({}, 'error', () => undefined);

/**
 * A valid heap profile of `samples` samples, written directly (a general
 * encoder takes seconds for 400k): four sample types, one location and one
 * function, ~14 bytes a sample, so a few MB hold them all.
 */
function manySampleProfile(samples: number): Buffer {
  const varint = (n: number, out: number[]): void => {
    while (n > 0x7f) {
      out.push((n & 0x7f) | 0x80);
      n = Math.floor(n / 128);
    }
    out.push(n);
  };
  const field = (tag: number, body: number[], out: number[]): void => {
    varint(tag, out);
    varint(body.length, out);
    for (const b of body) out.push(b);
  };
  const parts: Buffer[] = [];
  const strings = ['', 'alloc_objects', 'count', 'alloc_space', 'bytes', 'inuse_objects', 'inuse_space', 'main.f', 'main.go'];
  const top: number[] = [];
  for (const [type, unit] of [[1, 2], [3, 4], [5, 2], [6, 4]] as const) {
    const vt: number[] = [];
    varint((1 << 3) | 0, vt); varint(type, vt); varint((2 << 3) | 0, vt); varint(unit, vt);
    field((1 << 3) | 2, vt, top);
  }
  parts.push(Buffer.from(top));
  const chunk: number[] = [];
  for (let i = 0; i < samples; i++) {
    const sample: number[] = [];
    field((1 << 3) | 2, [1], sample);
    const values: number[] = [];
    for (const v of [1, 1024, 1, 1024]) varint(v, values);
    field((2 << 3) | 2, values, sample);
    field((2 << 3) | 2, sample, chunk);
    if (chunk.length > 1 << 20) parts.push(Buffer.from(chunk.splice(0)));
  }
  parts.push(Buffer.from(chunk));
  const tables: number[] = [];
  const location: number[] = [];
  varint((1 << 3) | 0, location); varint(1, location); varint((3 << 3) | 0, location); varint(0x401000, location);
  const line: number[] = [];
  varint((1 << 3) | 0, line); varint(1, line);
  field((4 << 3) | 2, line, location);
  const fn: number[] = [];
  varint((1 << 3) | 0, fn); varint(1, fn); varint((2 << 3) | 0, fn); varint(7, fn); varint((4 << 3) | 0, fn); varint(8, fn);
  field((4 << 3) | 2, location, tables);
  field((5 << 3) | 2, fn, tables);
  for (const text of strings) field((6 << 3) | 2, [...Buffer.from(text)], tables);
  parts.push(Buffer.from(tables));
  return Buffer.concat(parts);
}

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

    test(`${version}: debug=1 parsed in the thread asks what the loop's parse asks, and teaches what it teaches`, async () => {
      const text = readFixture(version, 'heap-008.txt');
      const symbols = parseSymbolResponse(readFixture(version, 'heap-008.sym').toString('utf8'));
      // Parsed on the loop first: parseDebug1 takes the answer over (it moves to the thread).
      const onLoop = parseDebug1Heap(text.toString('utf8'));
      const lesson = await gate.parseDebug1(text, LIMITS);
      assert.deepEqual(lesson.questions, symbolQuestions(onLoop, () => false, DEFAULT_MAX_SYMBOL_REQUESTS));
      assert.ok(lesson.questions.queries.length > 0, 'hidden runtime PCs to name');
      const learned: HiddenFrameTable = new Map();
      assert.equal(await lesson.learn(symbols, learned, DEFAULT_KNOWLEDGE_LIMITS.maxBytesPerTenant), true);
      const expected = learnHiddenFrames(onLoop, symbols);
      assert.ok(expected.size > 0, 'the symbols teach hidden frames');
      assert.deepEqual([...learned], [...expected], 'the same entries, in the same order');
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

  test('a proto with more samples than the thread may keep is refused as it is decoded: a small answer cannot become a million records', async () => {
    const many = manySampleProfile(MAX_KEPT_RECORDS + 1);
    assert.ok(many.length < 16 * 1024 * 1024, `${many.length} bytes: within every byte limit`);
    await assert.rejects(gate.decodeProto(many, { maxBytes: 64 * 1024 * 1024 }), (err: Error) => err.name === 'ProfileError' && /holds 400001 samples, more than the 400000 allowed \(limit\)/.test(err.message));
  });

  test('the thread drops its largest kept profile to stay within its records, never a small one for it; attributing a dropped one is refused, not moved to the loop', async () => {
    const small = await capture('go1.26', gate.decoders(LIMITS));
    const smallDecoders = gate.decoders(LIMITS);
    const kept = await capture('go1.26', smallDecoders);
    const big = (n: number): Promise<{ decoders: ReturnType<DecodeGate['decoders']>; profile: HeapProfile }> => {
      const decoders = gate.decoders({ maxBytes: 64 * 1024 * 1024 });
      return decoders.proto(manySampleProfile(n)).then((profile) => ({ decoders, profile }));
    };
    const first = await big(250_000);
    const second = await big(240_000); // together past 400,000: the larger, first, goes
    const warnings: string[] = [];
    const log = jsonLogger({}, 'warn', (line) => warnings.push(line));
    await assert.rejects(storedSnapshot(gate, first.decoders, { ...kept, profile: first.profile }, log), (err: Error) => err.name === 'ProfileError' && /dropped to keep the decode thread within 400000 records/.test(err.message));
    assert.match((await storedSnapshot(gate, second.decoders, { ...kept, profile: second.profile }, log)).toString(), /"usages":/);
    assert.equal((await storedSnapshot(gate, smallDecoders, kept, log)).toString(), storedSnapshotJson({ ...attributeProfile(small.profile), time: kept.time }), 'the small capture kept its place');
    assert.deepEqual(warnings.filter((l) => /on the event loop/.test(l)), [], 'nothing fell back to the loop');
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

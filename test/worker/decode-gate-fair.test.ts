/**
 * The decode gate (src/worker/decode-gate.ts) shared fairly between
 * namespaces, on its real thread with real heap profiles of
 * test/targets/leaky (go1.26 fixtures): one namespace's backlog of queued
 * decodes does not hold another's behind it, and a queued answer costs no
 * copy while it waits.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_MAX_SYMBOL_REQUESTS } from '../../src/capture/capture.js';
import { parseDebug1Heap, symbolQuestions } from '../../src/pprof/index.js';
import { asTenant, DecodeGate } from '../../src/worker/decode-gate.js';
import { readFixture } from '../support/fixtures.js';

const LIMITS = { maxBytes: 64 << 20, maxInflatedBytes: 256 << 20, maxRatio: 50 };
const MiB = 1024 * 1024;

describe('decode gate: namespaces take turns', () => {
  let gate: DecodeGate;
  const proto = readFixture('go1.26', 'heap-008.pb.gz');
  const debug1Text = readFixture('go1.26', 'heap-008.txt');

  before(() => {
    gate = new DecodeGate({ maxDecodeMs: 10_000, maxHeapMiB: 512 });
  });
  after(async () => {
    await gate.close();
  });

  /** Queues one decode of `tenant`, recording when it is done under `label`. */
  const decodeAs = (tenant: string, label: string, done: string[]): Promise<void> =>
    asTenant(tenant, async () => {
      // Asked from deep inside the round's async work, as captureHeap's decoders are.
      await Promise.resolve();
      const profile = await gate.decodeProto(Buffer.from(proto), LIMITS);
      assert.ok(profile.records.length > 0);
      done.push(label);
    });

  test("a namespace's backlog waits behind another namespace's next decode, and keeps its own order", async () => {
    const done: string[] = [];
    const backlog = Array.from({ length: 6 }, (_, i) => decodeAs('team-a', `a${i + 1}`, done));
    // team-b asks once team-a's six are queued (the first already in the thread).
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(Object.fromEntries(gate.waiting()), { 'team-a': 5 });
    const b = decodeAs('team-b', 'b1', done);
    const c = [decodeAs('team-c', 'c1', done), decodeAs('team-c', 'c2', done)];
    await Promise.all([...backlog, b, ...c]);
    // First come first served would have put b1 7th and c1 8th. In turns: a1 (in the thread), then one of each namespace per turn.
    assert.deepEqual(done, ['a1', 'a2', 'b1', 'c1', 'a3', 'c2', 'a4', 'a5', 'a6']);
  });

  test('queued answers are not copied while they wait; a proto stays the caller’s, a debug=1 is handed to the thread', async () => {
    // Eight answers of 16 MiB queued behind one another: the copies for the thread used to be made as they were asked for.
    const SIZE = 16 * MiB;
    const answers = Array.from({ length: 8 }, () => {
      const bytes = Buffer.allocUnsafeSlow(SIZE).fill(0);
      proto.copy(bytes);
      return bytes;
    });
    const before = process.memoryUsage().arrayBuffers;
    const decodes = answers.map((bytes) => asTenant('team-d', () => gate.check('proto', bytes, LIMITS)).catch(() => undefined));
    const queued = process.memoryUsage().arrayBuffers - before;
    console.log(`8 queued answers of 16 MiB: +${(queued / MiB).toFixed(1)} MiB of ArrayBuffers (the copies made when asked would be ${(8 * SIZE) / MiB} MiB)`);
    assert.ok(queued <= SIZE + MiB, `${(queued / MiB).toFixed(1)} MiB more while 8 answers of 16 MiB are queued (at most the one copy sent to the thread)`);
    await Promise.all(decodes);
    for (const bytes of answers) assert.equal(bytes.length, SIZE, 'the caller keeps its proto');
    assert.ok(proto.equals(answers[0]?.subarray(0, proto.length) ?? Buffer.alloc(0)), 'unchanged');

    // debug=1 moves: the caller's buffer is empty once sent, and the thread parsed exactly it.
    const handed = Buffer.allocUnsafeSlow(debug1Text.length);
    debug1Text.copy(handed);
    const lesson = await asTenant('team-d', () => gate.parseDebug1(handed, LIMITS));
    assert.equal(handed.length, 0, 'handed over, not copied');
    assert.deepEqual(lesson.questions, symbolQuestions(parseDebug1Heap(debug1Text.toString('utf8')), () => false, DEFAULT_MAX_SYMBOL_REQUESTS));
    lesson.release();
  });
});

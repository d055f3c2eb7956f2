/**
 * A debug=1 answer is bounded by what it parses into, not only by its text
 * (review 4, finding G): a text of records shaped to be short parses into
 * ~12 times its bytes, so the parse is refused once it holds more than its
 * text; Go's own answers parse into less than theirs.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MIN_PARSED_BYTES, PARSED_COST, parseDebug1Heap } from '../../src/pprof/debug1.js';
import { ProfileError } from '../../src/pprof/errors.js';
import { FIXTURE_VERSIONS, readFixture } from '../support/fixtures.js';

const HEADER = 'heap profile: 1: 1 [1: 1] @ heap/1048576\n';

/** `bytes` of text made of `line(i)` after the header. */
function debug1Text(bytes: number, line: (i: number) => string): string {
  const parts = [HEADER];
  let length = HEADER.length;
  for (let i = 0; length < bytes; i++) {
    const next = line(i);
    parts.push(next);
    length += next.length;
  }
  return parts.join('');
}

const isTooLarge = (err: unknown): boolean => err instanceof ProfileError && err.code === 'TooLarge' && /parse into more than \d+ bytes/.test(err.message);

describe('debug=1: the parse is bounded', () => {
  test('one-PC records (23 bytes each) past the bound are refused TooLarge, at the limit and not after the whole text', () => {
    // 4 MiB of "1: 1 [1: 1] @ 0x500000": ~182,000 records, 50 MB parsed.
    const text = debug1Text(4 * MIN_PARSED_BYTES, (i) => `1: 1 [1: 1] @ 0x${(0x500000 + i).toString(16)}\n`);
    assert.throws(() => parseDebug1Heap(text), isTooLarge);
    // An explicit limit: records are counted as they are parsed.
    const limit = 100 * PARSED_COST.record;
    assert.throws(() => parseDebug1Heap(text, { maxParsedBytes: limit }), isTooLarge);
    const first100 = text.split('\n').slice(0, 101).join('\n');
    assert.equal(parseDebug1Heap(first100, { maxParsedBytes: limit }).records.length, 100);
  });

  test('`#` lines naming ever new PCs, and MemStats lines, count too', () => {
    const named = debug1Text(4 * MIN_PARSED_BYTES, (i) => (i % 64 === 0 ? '1: 1 [1: 1] @ 0x400001\n' : `#\t0x${(0x400000 + i).toString(16)}\tf+0x1\tf:1\n`));
    assert.throws(() => parseDebug1Heap(named), isTooLarge);
    const memStats = debug1Text(4 * MIN_PARSED_BYTES, (i) => `# S${i} = 1\n`);
    assert.throws(() => parseDebug1Heap(memStats), isTooLarge);
  });

  test('a PC printed again by every record that has it is counted once', () => {
    // As Go prints them: a record line, then one `#` line per visible PC (here 8 shared ones and a hidden runtime PC).
    const shared = Array.from({ length: 8 }, (_, f) => 0x400000 + 0x100 * f);
    const frames = shared.map((pc, f) => `#\t0x${pc.toString(16)}\tmain.f${f}+0x10\t/src/main.go:${10 + f}\n`).join('');
    const stack = shared.map((pc) => `0x${(pc + 1).toString(16)}`).join(' ');
    const text = debug1Text(4 * MIN_PARSED_BYTES, (i) => `1: 4096 [1: 4096] @ 0x${(0x500000 + 16 * i).toString(16)} ${stack}\n${frames}`);
    const heap = parseDebug1Heap(text);
    assert.equal(heap.framesByPc.size, shared.length);
    assert.equal(heap.parsedBytes, heap.records.length * PARSED_COST.record + shared.length * PARSED_COST.named);
    assert.ok(heap.parsedBytes <= text.length);
  });

  test("Go's recorded answers parse, into at most twice their text", () => {
    for (const version of FIXTURE_VERSIONS) {
      for (const file of ['heap-001.txt', 'heap-008.txt']) {
        const text = readFixture(version, file).toString('utf8');
        const heap = parseDebug1Heap(text);
        assert.ok(heap.records.length > 30, `${version}/${file}: ${heap.records.length} records`);
        assert.ok(heap.memStats.size > 0, `${version}/${file}: MemStats`);
        // Small answers run up to ~1.6 of their text (the MemStats block, few records per named PC); the 1 MiB floor holds them.
        assert.ok(heap.parsedBytes <= 2 * text.length, `${version}/${file}: ${heap.parsedBytes} parsed of ${text.length}`);
        // Bounded by its own length, as a large answer is, the same text still parses (the floor is not what admits it).
        assert.equal(parseDebug1Heap(text, { maxParsedBytes: 2 * text.length }).records.length, heap.records.length);
      }
    }
  });
});

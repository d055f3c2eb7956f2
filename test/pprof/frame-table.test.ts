import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Function as PprofFunction, Line, Location, Profile, Sample, StringTable, ValueType } from 'pprof-format';
import { decodeHeapProfile } from '../../src/pprof/index.js';
import { FrameMemo, internedFrames, internedNameChars, MAX_NAME_CHARS } from '../../src/pprof/frame-table.js';

/** A heap profile of functions named `names` in `file`, one sample per location; `locationsOf` gives each location's lines. */
function heapProfile(names: string[], file: string, locationsOf: (fns: PprofFunction[]) => Line[][]): Uint8Array {
  const strings = new StringTable();
  const types = ['alloc_objects', 'alloc_space', 'inuse_objects', 'inuse_space'];
  const fns = names.map((name, i) => new PprofFunction({ id: i + 1, name: strings.dedup(name), filename: strings.dedup(file) }));
  const locations = locationsOf(fns).map((lines, i) => new Location({ id: i + 1, address: 0x1000 + 8 * i, line: lines }));
  return new Profile({
    stringTable: strings,
    sampleType: types.map((t) => new ValueType({ type: strings.dedup(t), unit: strings.dedup(t.endsWith('space') ? 'bytes' : 'count') })),
    location: locations,
    function: fns,
    sample: locations.map((loc) => new Sample({ locationId: [loc.id], value: [1, 64, 1, 64] })),
  }).encode();
}

const named = (count: number, prefix: string): string[] => Array.from({ length: count }, (_, i) => `${prefix}${i}`);
const lineNumbers = (lines: number): number[] => Array.from({ length: lines }, (_, l) => 10 + l);

/** One sample per (function, line): `functions` functions of `lines` lines each, function after function. */
function profileOf(functions: number, lines: number, prefix = 'main.f'): Uint8Array {
  return heapProfile(named(functions, prefix), '/src/main.go', (fns) => fns.flatMap((fn) => lineNumbers(lines).map((line) => [new Line({ functionId: fn.id, line })])));
}

/** One location per line number, holding that line of every function (inlined frames): every function is met while the table is still small. */
function interleaved(functions: number, lines: number): Uint8Array {
  return heapProfile(named(functions, 'lib.h'), '/src/h.go', (fns) => lineNumbers(lines).map((line) => fns.map((fn) => new Line({ functionId: fn.id, line }))));
}

describe('frames from one capture to the next', () => {
  test('a second capture of the binary names its frames with the first capture\'s objects', () => {
    const bytes = profileOf(50, 3);
    const first = decodeHeapProfile(bytes).records.map((r) => r.stack[0]);
    assert.equal(internedFrames(), 0, 'one profile read: no table is built');
    const second = decodeHeapProfile(bytes).records.map((r) => r.stack[0]);
    assert.deepEqual(second, first);
    assert.ok(second.every((frame, i) => frame === first[i]), 'the same objects');
    assert.equal(internedFrames(), 150);
  });

  test('a profile with more frames than the table holds is read whole, and the table stays within its bound', () => {
    const huge = decodeHeapProfile(profileOf(2_000, 64, 'lib.g'));
    assert.equal(huge.records.length, 128_000);
    assert.deepEqual(huge.records[127_999]!.stack, [{ function: 'lib.g1999', file: '/src/main.go', line: 73 }]);
    assert.ok(internedFrames() <= 100_000, `${internedFrames()} frames held`);
    const again = decodeHeapProfile(profileOf(2_000, 64, 'lib.g'));
    assert.deepEqual(again.records.map((r) => r.stack[0]), huge.records.map((r) => r.stack[0]));
  });

  test('the bound holds whatever order a profile names its frames in', () => {
    const profile = decodeHeapProfile(interleaved(2_000, 64));
    assert.equal(profile.records[63]!.stack.length, 2_000);
    assert.deepEqual(profile.records[63]!.stack[1_999], { function: 'lib.h1999', file: '/src/h.go', line: 73 });
    assert.ok(internedFrames() <= 100_000, `${internedFrames()} frames held`);
  });

  test('a frame of a long name is never shared: a look-up would compare the name whole', () => {
    const long = `example.com/${'x'.repeat(5_000)}.F`;
    const bytes = heapProfile([long], '/src/x.go', (fns) => [[new Line({ functionId: fns[0]!.id, line: 5 })]]);
    const held = internedFrames();
    const [first, second] = [decodeHeapProfile(bytes), decodeHeapProfile(bytes)].map((p) => p.records[0]!.stack[0]!);
    assert.deepEqual(second, { function: long, file: '/src/x.go', line: 5 });
    assert.deepEqual(first, second);
    assert.notEqual(first, second);
    assert.equal(internedFrames(), held);
  });
});

describe('what the table holds of names', () => {
  test('a profile of long names makes the table start afresh sooner, never hold more than its characters bound', () => {
    // 10k functions of 1,000-character names (under the length past which names are never shared): 10M characters.
    const names = Array.from({ length: 10_000 }, (_, i) => `example.com/${String(i).padStart(980, 'n')}.F`);
    const bytes = heapProfile(names, '/src/long.go', (fns) => fns.map((fn) => [new Line({ functionId: fn.id, line: 7 })]));
    const first = decodeHeapProfile(bytes);
    const second = decodeHeapProfile(bytes);
    assert.deepEqual(second.records.map((r) => r.stack[0]), first.records.map((r) => r.stack[0]));
    assert.ok(internedNameChars() > 0, 'the table is in use');
    assert.ok(internedNameChars() <= MAX_NAME_CHARS, `${internedNameChars()} characters held, at most ${MAX_NAME_CHARS}`);
    assert.ok(internedFrames() < 10_000, 'it started afresh before holding every frame');
  });

  test('a memo of frames holds no more characters than the table may, values counted', () => {
    const memo = new FrameMemo<string>((key) => key.length);
    for (let i = 0; i < 10_000; i++) {
      const frame = { function: `example.com/${String(i).padStart(480, 'm')}.F`, file: '/src/memo.go', line: i };
      memo.set(frame, `${frame.function}\t${frame.file}`);
      assert.equal(memo.get(frame), `${frame.function}\t${frame.file}`, 'the last value set is held');
    }
    assert.ok(memo.heldChars > 0 && memo.heldChars <= MAX_NAME_CHARS, `${memo.heldChars} characters held`);
  });
});


import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Function as PprofFunction, Line, Location, Profile, Sample, StringTable, ValueType } from 'pprof-format';
import { decodeHeapProfile } from '../../src/pprof/index.js';
import { internedFrames } from '../../src/pprof/frame-table.js';

/** A heap profile with one sample per (function, line): `functions` functions of `lines` lines each. */
function profileOf(functions: number, lines: number, prefix = 'main.f'): Uint8Array {
  const strings = new StringTable();
  const types = ['alloc_objects', 'alloc_space', 'inuse_objects', 'inuse_space'];
  const fns = Array.from({ length: functions }, (_, i) => new PprofFunction({ id: i + 1, name: strings.dedup(`${prefix}${i}`), filename: strings.dedup('/src/main.go') }));
  const locations: Location[] = [];
  for (let f = 0; f < functions; f++) {
    for (let l = 0; l < lines; l++) locations.push(new Location({ id: locations.length + 1, address: 0x1000 + 8 * locations.length, line: [new Line({ functionId: f + 1, line: 10 + l })] }));
  }
  return new Profile({
    stringTable: strings,
    sampleType: types.map((t) => new ValueType({ type: strings.dedup(t), unit: strings.dedup(t.endsWith('space') ? 'bytes' : 'count') })),
    location: locations,
    function: fns,
    sample: locations.map((loc) => new Sample({ locationId: [loc.id], value: [1, 64, 1, 64] })),
  }).encode();
}

/** One location per line number, holding that line of every function (inlined frames): every function is met while the table is still small. */
function interleaved(functions: number, lines: number): Uint8Array {
  const strings = new StringTable();
  const types = ['alloc_objects', 'alloc_space', 'inuse_objects', 'inuse_space'];
  const fns = Array.from({ length: functions }, (_, i) => new PprofFunction({ id: i + 1, name: strings.dedup(`lib.h${i}`), filename: strings.dedup('/src/h.go') }));
  const locations = Array.from({ length: lines }, (_, l) => new Location({ id: l + 1, address: 0x2000 + 8 * l, line: fns.map((fn) => new Line({ functionId: fn.id, line: 10 + l })) }));
  return new Profile({
    stringTable: strings,
    sampleType: types.map((t) => new ValueType({ type: strings.dedup(t), unit: strings.dedup(t.endsWith('space') ? 'bytes' : 'count') })),
    location: locations,
    function: fns,
    sample: locations.map((loc) => new Sample({ locationId: [loc.id], value: [1, 64, 1, 64] })),
  }).encode();
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
    const strings = new StringTable();
    const types = ['alloc_objects', 'alloc_space', 'inuse_objects', 'inuse_space'];
    const bytes = new Profile({
      stringTable: strings,
      sampleType: types.map((t) => new ValueType({ type: strings.dedup(t), unit: strings.dedup(t.endsWith('space') ? 'bytes' : 'count') })),
      location: [new Location({ id: 1, address: 0x3000, line: [new Line({ functionId: 1, line: 5 })] })],
      function: [new PprofFunction({ id: 1, name: strings.dedup(long), filename: strings.dedup('/src/x.go') })],
      sample: [new Sample({ locationId: [1], value: [1, 64, 1, 64] })],
    }).encode();
    const held = internedFrames();
    const [first, second] = [decodeHeapProfile(bytes), decodeHeapProfile(bytes)].map((p) => p.records[0]!.stack[0]!);
    assert.deepEqual(second, { function: long, file: '/src/x.go', line: 5 });
    assert.deepEqual(first, second);
    assert.notEqual(first, second);
    assert.equal(internedFrames(), held);
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { Function as PprofFunction, Label, Line, Location, Profile, Sample, StringTable, ValueType } from 'pprof-format';
import { decodeHeapProfile, ProfileError } from '../../src/pprof/index.js';
import { FIXTURE_VERSIONS, readFixture } from '../support/fixtures.js';

const num = (v: number | bigint): number => Number(v);

for (const version of FIXTURE_VERSIONS) {
  describe(`the proto decoder on a real ${version} profile`, () => {
    test('reads what pprof-format (a general protobuf reader) reads: values, sizes, stacks and addresses', () => {
      const raw = gunzipSync(readFixture(version, 'heap-008.pb.gz'));
      const reference = Profile.decode(raw);
      const ours = decodeHeapProfile(raw);
      assert.equal(ours.records.length, reference.sample.length);
      const strings = reference.stringTable.strings;
      const functions = new Map(reference.function.map((f) => [num(f.id), strings[num(f.name)]]));
      const locations = new Map(reference.location.map((l) => [num(l.id), l]));
      const bytesKey = strings.indexOf('bytes');
      reference.sample.forEach((sample, i) => {
        const record = ours.records[i]!;
        assert.deepEqual([record.allocObjects, record.allocBytes, record.inuseObjects, record.inuseBytes], sample.value.map(num));
        assert.equal(record.objectSize, num(sample.label.find((l) => num(l.key) === bytesKey)?.num ?? 0));
        const ids = sample.locationId.map(num);
        assert.deepEqual(record.addresses, ids.map((id) => num(locations.get(id)!.address)), 'one address per location, leaf first');
        const names = ids.flatMap((id) => locations.get(id)!.line.map((line) => functions.get(num(line.functionId))));
        assert.deepEqual(record.stack.map((f) => f.function), names);
        assert.ok(record.addresses.every((a) => Number.isSafeInteger(a) && a > 0));
      });
      assert.equal(ours.time?.getTime(), Math.floor(num(reference.timeNanos) / 1e6));
      assert.equal(ours.buildId, strings[num(reference.mapping[0]!.buildId)] || undefined);
    });
  });
}

describe('profiles as services serve them', () => {
  function heapProfile(types: string[], values: number[]): Uint8Array {
    const strings = new StringTable();
    const fn = new PprofFunction({ id: 1, name: strings.dedup('main.fill'), filename: strings.dedup('/src/main.go') });
    const location = new Location({ id: 1, address: 0x4a5b6c, line: [new Line({ functionId: 1, line: 42 })] });
    return new Profile({
      stringTable: strings,
      sampleType: types.map((t) => new ValueType({ type: strings.dedup(t), unit: strings.dedup(t.endsWith('space') ? 'bytes' : 'count') })),
      sample: [new Sample({ locationId: [1], value: values, label: [new Label({ key: strings.dedup('bytes'), num: 4096 })] })],
      location: [location],
      function: [fn],
      period: 524288,
    }).encode();
  }

  test('a profile with only in-use sample types is a heap profile with no allocation figures', () => {
    const profile = decodeHeapProfile(heapProfile(['inuse_objects', 'inuse_space'], [3, 12288]));
    const record = profile.records[0]!;
    assert.deepEqual([record.inuseObjects, record.inuseBytes, record.allocObjects, record.allocBytes], [3, 12288, 0, 0]);
    assert.equal(record.objectSize, 4096);
    assert.deepEqual(record.stack, [{ function: 'main.fill', file: '/src/main.go', line: 42 }]);
    assert.deepEqual(record.addresses, [0x4a5b6c]);
  });

  test('sample types in another order are read by name', () => {
    const record = decodeHeapProfile(heapProfile(['inuse_space', 'inuse_objects', 'alloc_space', 'alloc_objects'], [12288, 3, 40960, 10])).records[0]!;
    assert.deepEqual([record.inuseObjects, record.inuseBytes, record.allocObjects, record.allocBytes], [3, 12288, 10, 40960]);
  });

  test('a truncated protobuf is a clear error', () => {
    const bytes = heapProfile(['inuse_objects', 'inuse_space'], [3, 12288]);
    assert.throws(() => decodeHeapProfile(bytes.subarray(0, bytes.length - 7)), (err: unknown) => err instanceof ProfileError && !err.message.includes('\n'));
  });
});

describe('frames as the decoder shares them', () => {
  test('locations at one function and line share one frame; their addresses stay apart', () => {
    const strings = new StringTable();
    const fn = new PprofFunction({ id: 1, name: strings.dedup('main.fill'), filename: strings.dedup('/src/main.go') });
    const at = (id: number, address: number, line: number): Location => new Location({ id, address, line: [new Line({ functionId: 1, line })] });
    const types = ['alloc_objects', 'alloc_space', 'inuse_objects', 'inuse_space'];
    const bytes = new Profile({
      stringTable: strings,
      sampleType: types.map((t) => new ValueType({ type: strings.dedup(t), unit: strings.dedup(t.endsWith('space') ? 'bytes' : 'count') })),
      // Two PCs of line 42 (as two call instructions on one line give), and line 43.
      location: [at(1, 0x1000, 42), at(2, 0x1008, 42), at(3, 0x1010, 43)],
      function: [fn],
      sample: [1, 2, 3].map((id) => new Sample({ locationId: [id], value: [1, 64, 1, 64] })),
    }).encode();
    const [first, second, third] = decodeHeapProfile(bytes).records;
    assert.equal(first!.stack[0], second!.stack[0], 'one frame object for main.fill line 42');
    assert.notEqual(first!.stack[0], third!.stack[0]);
    assert.deepEqual([first!.addresses, second!.addresses, third!.addresses], [[0x1000], [0x1008], [0x1010]]);
    assert.deepEqual(third!.stack, [{ function: 'main.fill', file: '/src/main.go', line: 43 }]);
  });
});

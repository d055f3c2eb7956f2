import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeHeapProfile } from '../../src/pprof/decode.js';
import { parseDebug1Heap, protoView } from '../../src/pprof/debug1.js';
import { learnHiddenFrames, recordKey, restoreHiddenFrames, unknownRecords } from '../../src/pprof/hidden-frames.js';
import { parseSymbolResponse } from '../../src/pprof/symbols.js';
import type { HeapProfile, HeapRecord } from '../../src/pprof/types.js';
import { FIXTURE_VERSIONS, readFixture } from '../support/fixtures.js';

/**
 * A debug=1 profile as Go prints it: `#` lines name the visible frames, and
 * every frame of a stack that is all runtime.
 */
const DEBUG1 = `heap profile: 5: 5120 [5: 5120] @ heap/1048576
1: 1024 [1: 1024] @ 0x1001 0x1101 0x2005 0x2011 0x3001
#\t0x2004\tmain.fill+0x4\t/src/main.go:10
#\t0x2010\tmain.run+0x10\t/src/main.go:20
#\t0x3000\tmain.main+0x0\t/src/main.go:30

3: 3072 [3: 3072] @ 0x1001 0x1201 0x2005 0x2011 0x3001
#\t0x2004\tmain.fill+0x4\t/src/main.go:10
#\t0x2010\tmain.run+0x10\t/src/main.go:20
#\t0x3000\tmain.main+0x0\t/src/main.go:30

1: 1024 [1: 1024] @ 0x1001 0x4001
#\t0x1000\truntime.mallocgc+0x0\t/go/src/runtime/malloc.go:1000
#\t0x4000\truntime.bgsweep+0x0\t/go/src/runtime/mgcsweep.go:300
`;
const SYMBOLS = parseSymbolResponse(`num_symbols: 1
0x1000 runtime.mallocgc
0x1100 internal/runtime/maps.(*table).grow
0x1200 internal/runtime/maps.(*table).split
0x4000 runtime.bgsweep
`);

function protoRecord(addresses: number[], objectSize: number, functions: string[]): HeapRecord {
  return {
    stack: functions.map((name) => ({ function: name, file: '/src/main.go', line: 1 })),
    hiddenFrames: 'absent',
    addresses,
    objectSize,
    inuseObjects: 1,
    inuseBytes: objectSize,
    allocObjects: 1,
    allocBytes: objectSize,
  };
}

describe('hidden frames: debug=1 teaches, the proto is restored', () => {
  const heap = parseDebug1Heap(DEBUG1);

  test('a run of inlined frames (one physical function) is one proto location, as runtime/pprof writes it', () => {
    // main.fill is inlined into main.run: both PCs are in the function entered at 0x2000.
    const view = protoView(heap, heap.records[0]!);
    assert.deepEqual(view.hiddenPcs, [0x1001, 0x1101]);
    assert.deepEqual(view.addresses, [0x2004, 0x3000]);
  });

  test('one line allocating objects of one size through two runtime paths: the path that allocated most of them', () => {
    const table = learnHiddenFrames(heap, SYMBOLS);
    assert.deepEqual(table.get(recordKey([0x2004, 0x3000], 1024)), ['runtime.mallocgc', 'internal/runtime/maps.(*table).split']);
  });

  test('a stack of runtime frames only is kept whole, with nothing hidden', () => {
    const table = learnHiddenFrames(heap, SYMBOLS);
    const view = protoView(heap, heap.records[2]!);
    assert.deepEqual(view.hiddenPcs, []);
    assert.deepEqual(table.get(recordKey(view.addresses, 1024)), []);
  });

  test('restoring puts the frames back on every record with a known key and leaves the rest for size signatures', () => {
    const table = learnHiddenFrames(heap, SYMBOLS);
    const profile: HeapProfile = {
      format: 'proto',
      time: undefined,
      memProfileRate: 524288,
      buildId: 'b',
      records: [protoRecord([0x2004, 0x3000], 1024, ['main.fill', 'main.run', 'main.main']), protoRecord([0x2004, 0x3000], 2048, ['main.fill', 'main.run', 'main.main'])],
    };
    const restored = restoreHiddenFrames(profile, (key) => table.get(key));
    assert.deepEqual(restored.records[0]?.stack.map((f) => f.function), ['runtime.mallocgc', 'internal/runtime/maps.(*table).split', 'main.fill', 'main.run', 'main.main']);
    assert.equal(restored.records[0]?.hiddenFrames, 'resolved');
    assert.equal(restored.records[1]?.hiddenFrames, 'absent', 'another object size is another record');
    assert.deepEqual(unknownRecords(profile, (key) => table.get(key)), { keys: 1, inuseBytes: 2048 });
  });

  for (const version of FIXTURE_VERSIONS) {
    test(`a real Go ${version} capture: the proto restored from its own debug=1 and symbols`, () => {
      const proto = decodeHeapProfile(readFixture(version, 'heap-001.pb.gz'));
      const table = learnHiddenFrames(parseDebug1Heap(readFixture(version, 'heap-001.txt').toString('utf8')), parseSymbolResponse(readFixture(version, 'heap-001.sym').toString('utf8')));
      const restored = restoreHiddenFrames(proto, (key) => table.get(key));
      const withBytes = restored.records.filter((r) => r.inuseBytes > 0);
      const resolvedBytes = withBytes.filter((r) => r.hiddenFrames === 'resolved').reduce((sum, r) => sum + r.inuseBytes, 0);
      const allBytes = withBytes.reduce((sum, r) => sum + r.inuseBytes, 0);
      assert.ok(resolvedBytes >= 0.95 * allBytes, `${resolvedBytes} of ${allBytes} in-use bytes restored`);
      const mapFrame = version === 'go1.19' ? /^runtime\.(makeBucketArray|hashGrow|\(\*hmap\))/ : /^internal\/runtime\/maps\./;
      assert.ok(restored.records.some((r) => r.stack.some((f) => mapFrame.test(f.function))), 'map internals are back');
    });
  }
});

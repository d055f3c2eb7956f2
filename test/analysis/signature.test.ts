import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { allocatedSize } from '../../src/analysis/sizeclass.js';
import { inferSizeSignatures, type SizeStats } from '../../src/analysis/signature.js';

const sizes = (entries: [number, number][]): Map<number, SizeStats> =>
  new Map(entries.map(([size, objects]) => [size, { objects, bytes: size * objects }]));

describe('size classes', () => {
  test('match the sizes real profiles record', () => {
    assert.equal(allocatedSize(128 * 200), 27264); // a full swiss table of map[string]*T
    assert.equal(allocatedSize(128 * 136), 18432); // map[int64]*[160]byte
    assert.equal(allocatedSize(176 * 4352), 770048); // classic B=12 array, page rounded
    assert.equal(allocatedSize(208 * 278528), 57933824); // classic B=16, observed in a Go 1.19 profile
  });
});

describe('size signatures', () => {
  test('a classic bucket-array doubling chain with overflow buckets', () => {
    const bucket = 208; // map[string]*T
    const chain = [13, 14, 15, 16].map((b): [number, number] => [allocatedSize(bucket * (2 ** b + 2 ** (b - 4))), 1]);
    const found = inferSizeSignatures(sizes([...chain, [208, 40]]));
    const classic = found.find((s) => s.impl === 'classic');
    assert.ok(classic);
    assert.equal(classic.components.get(208), 'overflow');
    assert.equal(classic.components.get(chain[3]![0]), 'buckets');
    assert.ok(classic.provesClassic, 'arrays larger than any swiss table');
    assert.ok(classic.strength >= 0.75);
  });

  test('many full swiss tables', () => {
    const found = inferSizeSignatures(sizes([[27264, 400], [32, 400]]));
    const swiss = found.find((s) => s.impl === 'swiss');
    assert.ok(swiss);
    assert.equal(swiss.components.get(27264), 'groups');
    assert.ok(!found.some((s) => s.provesClassic));
  });

  test('ordinary buffers are not maps', () => {
    assert.deepEqual(inferSizeSignatures(sizes([[49152, 500]])), []);
    assert.deepEqual(inferSizeSignatures(sizes([[64, 100000], [16, 5000]])), []);
    assert.deepEqual(inferSizeSignatures(sizes([[27264, 2]])), [], 'two objects are not a big swiss map');
    // A general allocator hits some map sizes by chance (seen in the benchmark's generated profile).
    const buffers = [16, 48, 96, 176, 320, 640, 1152, 2304, 4096, 8192, 13568, 27264, 40960, 81920];
    assert.deepEqual(inferSizeSignatures(sizes(buffers.map((size) => [size, 1365]))), []);
  });
});

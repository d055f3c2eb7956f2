import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { implFromGoVersion } from '../../src/analysis/attribute.js';
import { allocatedSize, pointerSliceGrowth } from '../../src/analysis/sizeclass.js';
import { inferSizeSignatures, structureSizes, type SizeStats } from '../../src/analysis/signature.js';

const sizes = (entries: [number, number][]): Map<number, SizeStats> =>
  new Map(entries.map(([size, objects]) => [size, { objects, bytes: size * objects }]));

describe('the runtime rules behind the shapes', () => {
  test('Go 1.22+ adds a malloc header to objects with pointers above 512 bytes', () => {
    assert.equal(allocatedSize(1024, 'plain'), 1024);
    assert.equal(allocatedSize(1024, 'header'), 1152);
    assert.equal(allocatedSize(512, 'header'), 512, 'at 512 bytes and below the type is in the span');
    assert.equal(allocatedSize(32768, 'header'), 32768, 'large objects are whole pages, with no header');
    assert.equal(allocatedSize(74752, 'plain'), 81920);
  });

  test('a []*T grown by append doubles to 256 elements, then grows by (n+768)/4, widened to its size class', () => {
    assert.deepEqual(pointerSliceGrowth('plain', 8192), [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 6784]);
  });

  test('swiss groups of map[int64][64]byte: 584-byte groups, full tables of 74,752 bytes in 81,920-byte spans', () => {
    const levels = structureSizes('swiss', 72, 'plain');
    assert.equal(levels[0], allocatedSize(584));
    assert.equal(levels[7], 81920);
  });

  test('classic map[int64]int64 arrays: 144-byte buckets, 2^B + 2^(B-4) of them', () => {
    const levels = structureSizes('classic', 16, 'plain');
    assert.equal(levels[0], 144);
    assert.equal(levels[4], allocatedSize(144 * 17));
    assert.equal(levels[17], allocatedSize(144 * (2 ** 17 + 2 ** 13)));
  });
});

describe('size signatures from the model', () => {
  test('a big map[int64][64]byte on swiss maps: many 81,920-byte tables above its growth chain', () => {
    const chain = structureSizes('swiss', 72, 'plain');
    const found = inferSizeSignatures(sizes([...chain.slice(1, 7).map((s): [number, number] => [s, 1]), [81920, 150], [32, 75]]));
    const swiss = found.find((s) => s.impl === 'swiss');
    assert.ok(swiss, 'found');
    assert.equal(swiss.components.get(81920), 'groups');
    assert.equal(swiss.components.get(32), 'table');
    assert.ok(swiss.provesSwiss, 'full tables outnumber the rest: tables split');
  });

  test('a 38 MiB classic map[int64]int64: its []*bmap overflow slices are part of it', () => {
    const arrays = structureSizes('classic', 16, 'plain').slice(4, 19);
    const slices = pointerSliceGrowth('plain', 2 ** 20);
    const found = inferSizeSignatures(sizes([...arrays.map((s): [number, number] => [s, 1]), [144, 20000], ...slices.map((s): [number, number] => [s, 8])]));
    const classic = found.find((s) => s.impl === 'classic');
    assert.ok(classic, 'found despite the slices');
    assert.equal(classic.components.get(slices[slices.length - 1]!), 'overflow');
    assert.equal(classic.components.get(arrays[arrays.length - 1]!), 'buckets');
    assert.ok(classic.provesClassic, 'a 38 MiB bucket array is larger than any swiss table');
  });

  test('a growing byte buffer is not a classic map, however its sizes fall', () => {
    const buffer: [number, number][] = [];
    for (let cap = 1024; cap < 8 << 20; cap = cap < 256 ? cap * 2 : cap + Math.floor((cap + 768) / 4)) buffer.push([allocatedSize(cap), 1]);
    assert.deepEqual(inferSizeSignatures(sizes(buffer)), []);
  });

  test('out-of-line values (over 128 bytes) of a map count as its entries, as many as it took inserts', () => {
    const arrays = structureSizes('classic', 16, 'header').slice(4, 14); // map[int64][200]byte: the elem is a pointer
    const found = inferSizeSignatures(sizes([...arrays.map((s): [number, number] => [s, 1]), [208, 40000]]));
    assert.equal(found.find((s) => s.impl === 'classic')?.components.get(208), 'entry');
    const tooFew = inferSizeSignatures(sizes([...arrays.map((s): [number, number] => [s, 1]), [208, 30]]));
    assert.notEqual(tooFew.find((s) => s.impl === 'classic')?.components.get(208), 'entry', '30 values cannot have grown a map to 2^13 buckets');
  });
});

describe('the map implementation from the Go version', () => {
  test('classic to 1.23, swiss from 1.24 unless the experiment was turned off, swiss only from 1.26', () => {
    assert.equal(implFromGoVersion('go1.19.8'), 'classic');
    assert.equal(implFromGoVersion('go1.23.4'), 'classic');
    assert.equal(implFromGoVersion('go1.24.1'), 'swiss');
    assert.equal(implFromGoVersion('go1.25.0 X:noswissmap'), 'classic');
    assert.equal(implFromGoVersion('go1.26.8'), 'swiss');
    assert.equal(implFromGoVersion(undefined), 'unknown');
    assert.equal(implFromGoVersion('devel +abc'), 'unknown');
  });
});

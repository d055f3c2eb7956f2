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

describe('the caches that outlive a profile', () => {
  // A module instance of its own, with empty caches: what an uncached look-up answers.
  const uncached = async (): Promise<typeof import('../../src/analysis/signature.js')> =>
    (await import(new URL(`../../src/analysis/signature.js?uncached=${Math.random()}`, import.meta.url).href)) as typeof import('../../src/analysis/signature.js');

  /** Two distinct values whose keys collide, found by a seeded birthday search (keys are 32-bit). */
  function collision<T>(make: (random: () => number) => T, keyOf: (value: T) => number, same: (a: T, b: T) => boolean): [T, T] {
    let seed = 0x2545f491;
    const random = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const seen = new Map<number, T>();
    for (let tries = 0; tries < 4_000_000; tries++) {
      const value = make(random);
      const key = keyOf(value);
      const before = seen.get(key);
      if (before !== undefined && !same(before, value)) return [before, value];
      seen.set(key, value);
    }
    throw new Error('no collision found');
  }

  test('two size sets that hash alike each get their own shapes', async () => {
    const { plausibleShapesOf, sizeSetHash, structureSizes, isStructureSize } = await uncached();
    const all = [...new Set((['classic', 'swiss'] as const).flatMap((impl) => Array.from({ length: 256 }, (_, slot) => structureSizes(impl, slot + 1, 'plain')).flat()))].filter(isStructureSize);
    const [a, b] = collision(
      // The last three tables of a swiss map of some slot size (a chain: plausible shapes), and one other size.
      (random) => {
        const chain = structureSizes('swiss', 1 + Math.floor(random() * 256), 'plain').slice(-3);
        return [...new Set([...chain, all[Math.floor(random() * all.length)] as number])].sort((x, y) => x - y);
      },
      sizeSetHash,
      (x, y) => x.join() === y.join(),
    );
    const cached = await uncached();
    const first = cached.plausibleShapesOf([...a]);
    const second = cached.plausibleShapesOf([...b]);
    const expected = [...(await uncached()).plausibleShapesOf([...b])];
    assert.notDeepEqual(expected, [...first], 'the two sets have different shapes');
    assert.deepEqual([...second], expected, `${b} after ${a}`);
    assert.deepEqual([...first], [...plausibleShapesOf([...a])]);
    assert.deepEqual([...cached.plausibleShapesOf([...a])], [...first], 'the first set, asked again');
  });

  test('two sites whose figures hash alike each get their own signatures', async () => {
    const { SizeFigures, figuresHash } = await uncached();
    const site = (tables: number, headers: number): Map<number, SizeStats> => sizes([[27264, tables], [32, headers]]);
    const [a, b] = collision(
      (random) => site(8 + Math.floor(random() * 1e6), 1 + Math.floor(random() * 1e6)),
      (figures) => figuresHash(SizeFigures.of(figures)),
      (x, y) => JSON.stringify([...x]) === JSON.stringify([...y]),
    );
    const cached = await uncached();
    const first = cached.inferSizeSignatures(a);
    const second = cached.inferSizeSignatures(b);
    assert.ok(first.length > 0 && second.length > 0, 'both are swiss tables');
    assert.deepEqual(second, (await uncached()).inferSizeSignatures(b));
    assert.notEqual(second[0]?.explainedBytes, first[0]?.explainedBytes, 'each explains its own bytes');
    assert.deepEqual(cached.inferSizeSignatures(a), first, 'the first site, asked again');
  });

  test('hold a bounded number of figures, whatever the profiles hold', async () => {
    const { inferSizeSignatures, cachedNumbers } = await uncached();
    let explained = 0;
    // 100k distinct sites of many full swiss tables: each is explained, and each would be held.
    for (let i = 0; i < 100_000; i++) explained += inferSizeSignatures(sizes([[27264, 8 + i], [32, 1 + (i % 97)]])).length;
    assert.equal(explained, 100_000);
    const held = cachedNumbers();
    assert.ok(held.sites > 0 && held.sites <= held.max, `${held.sites} numbers held, at most ${held.max}`);
    assert.ok(held.sizeSets > 0 && held.sizeSets <= held.max);
  });
});

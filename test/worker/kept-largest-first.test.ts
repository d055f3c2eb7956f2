import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { KeptLargestFirst } from '../../src/worker/kept-largest-first.js';

describe('what the decode thread keeps for a later request', () => {
  const sized = (): KeptLargestFirst<{ size: number }> => new KeptLargestFirst<{ size: number }>(100, (v) => v.size);

  test('within the bound everything is kept, and taken once', () => {
    const kept = sized();
    assert.equal(kept.keep(1, { size: 40 }), true);
    assert.equal(kept.keep(2, { size: 60 }), true);
    assert.deepEqual(kept.take(1), { size: 40 });
    assert.equal(kept.take(1), undefined);
    assert.deepEqual(kept.take(2), { size: 60 });
  });

  test('past the bound the largest goes, never a small one for it', () => {
    const kept = sized();
    kept.keep(1, { size: 70 });
    kept.keep(2, { size: 20 });
    assert.equal(kept.keep(3, { size: 20 }), true);
    assert.equal(kept.take(1), undefined, 'the largest was dropped');
    assert.deepEqual([kept.take(2), kept.take(3)], [{ size: 20 }, { size: 20 }]);
  });

  test('a newcomer larger than the others is the one dropped', () => {
    const kept = sized();
    kept.keep(1, { size: 30 });
    assert.equal(kept.keep(2, { size: 90 }), false);
    assert.equal(kept.take(2), undefined);
    assert.deepEqual(kept.take(1), { size: 30 });
  });

  test('one value over the whole bound is not kept, and what it freed counts again', () => {
    const kept = sized();
    assert.equal(kept.keep(1, { size: 101 }), false);
    assert.equal(kept.keep(2, { size: 100 }), true, 'the dropped value left nothing counted behind');
  });
});

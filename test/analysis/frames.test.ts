import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hiddenMapRole, isStdlibFrame, ownerFrame } from '../../src/analysis/frames.js';
import type { Frame } from '../../src/pprof/types.js';

const f = (fn: string, line = 0): Frame => ({ function: fn, file: fn.startsWith('main') ? '/src/app/main.go' : '', line });

describe('frames', () => {
  test('classic hidden frames name the bucket array, overflow buckets and entries', () => {
    assert.deepEqual(hiddenMapRole([f('runtime.mallocgc'), f('runtime.newarray'), f('runtime.makeBucketArray'), f('runtime.hashGrow'), f('runtime.mapassign_faststr')]), {
      component: 'buckets',
      impl: 'classic',
    });
    assert.deepEqual(hiddenMapRole([f('runtime.mallocgc'), f('runtime.newobject'), f('runtime.(*hmap).newoverflow'), f('runtime.mapassign')]), {
      component: 'overflow',
      impl: 'classic',
    });
    assert.deepEqual(hiddenMapRole([f('runtime.mallocgc'), f('runtime.newobject'), f('runtime.mapassign_fast64')]), { component: 'entry', impl: 'unknown' });
  });

  test('swiss hidden frames name groups, tables and the directory', () => {
    const maps = 'internal/runtime/maps.';
    assert.deepEqual(hiddenMapRole([f('runtime.mallocgc'), f('runtime.newarray'), f(`${maps}newarray`), f(`${maps}newGroups`), f(`${maps}(*table).reset`), f(`${maps}newTable`)]), {
      component: 'groups',
      impl: 'swiss',
    });
    assert.deepEqual(hiddenMapRole([f('runtime.newobject'), f(`${maps}newTable`), f(`${maps}(*table).split`)]), { component: 'table', impl: 'swiss' });
    assert.deepEqual(hiddenMapRole([f('runtime.makeslice'), f(`${maps}(*Map).installTableSplit`)]), { component: 'directory', impl: 'swiss' });
    assert.deepEqual(hiddenMapRole([f('runtime.newobject'), f(`${maps}newobject`), f('runtime.mapassign')]), { component: 'entry', impl: 'swiss' });
  });

  test('allocations outside the map runtime have no map role', () => {
    assert.equal(hiddenMapRole([f('runtime.mallocgc'), f('runtime.makeslice')]), undefined);
    assert.equal(hiddenMapRole([f('runtime.mallocgc'), f('runtime.convT64')]), undefined);
  });

  test('the owner is the first frame outside the runtime and the standard library', () => {
    const stack = [f('reflect.mapassign_faststr0'), f('reflect.Value.SetMapIndex'), f('encoding/json.(*decodeState).object'), f('encoding/json.Unmarshal'), f('main.(*catalog).ingest', 50), f('main.main', 9)];
    assert.equal(ownerFrame(stack)?.function, 'main.(*catalog).ingest');
    assert.equal(ownerFrame([f('github.com/acme/cache.(*LRU).Put', 3), f('main.main')])?.function, 'github.com/acme/cache.(*LRU).Put');
    assert.equal(ownerFrame([f('runtime.makechan'), f('runtime.gcenable'), f('runtime.main')])?.function, 'runtime.makechan');
    assert.equal(ownerFrame([f('encoding/json.Unmarshal'), f('runtime.main')])?.function, 'encoding/json.Unmarshal');
  });

  test('standard library detection by package path', () => {
    assert.ok(isStdlibFrame('encoding/json.(*decodeState).object'));
    assert.ok(isStdlibFrame('internal/runtime/maps.newarray'));
    assert.ok(!isStdlibFrame('main.main'));
    assert.ok(!isStdlibFrame('github.com/x/y.F'));
    assert.ok(!isStdlibFrame('example.com/app/internal/store.(*S).Put'));
  });
});

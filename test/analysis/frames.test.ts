import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { callerFrame, hiddenMapRole, isMainModuleFrame, isStdlibFrame, ownerFrame } from '../../src/analysis/frames.js';
import { isProfilerStack } from '../../src/pprof/runtime-frames.js';
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
    // As Go 1.26 names a generic instantiation whose type argument is from another package (go tool nm).
    assert.ok(isStdlibFrame('slices.Insert[go.shape.[]main.Wrap,go.shape.struct { V example.com/m/other.V }]'));
    assert.ok(!isStdlibFrame('github.com/x/y.Map[go.shape.string,go.shape.struct { T time.Time }]'));
    // A hostile name of megabytes is read by its head: its package is still told right.
    assert.ok(isStdlibFrame(`encoding/json.F${'x'.repeat(2 * 1024 * 1024)}`));
    assert.ok(!isStdlibFrame(`github.com/x/y.F${'/a.b'.repeat(512 * 1024)}`));
    assert.ok(isMainModuleFrame({ function: 'main.keep[go.shape.struct { V example.com/m/other.V }]', file: '/src/m/main.go', line: 1 }));
  });
});

describe('owner, caller and the profiler', () => {
  const at = (fn: string, file: string, line = 1): Frame => ({ function: fn, file, line });
  const lib = at('github.com/prometheus/client_golang/prometheus.(*metricMap).getOrCreateMetricWithLabelValues', '/root/go/pkg/mod/github.com/prometheus/client_golang@v1.14.0/prometheus/vec.go', 340);
  const user = at('main.(*app).countRequest', '/src/services/main.go', 131);

  test('the main module: package main, or source that is neither in the module cache nor vendored', () => {
    assert.ok(isMainModuleFrame(user));
    assert.ok(isMainModuleFrame(at('example.com/shop/internal/cart.(*Cart).Add', '/src/shop/internal/cart/cart.go')));
    assert.ok(isMainModuleFrame(at('example.com/shop/internal/cart.(*Cart).Add', 'example.com/shop/internal/cart/cart.go')), '-trimpath');
    assert.ok(!isMainModuleFrame(lib));
    assert.ok(!isMainModuleFrame(at('github.com/x/y.F', 'github.com/x/y@v1.2.3/y.go')), 'a dependency under -trimpath');
    assert.ok(!isMainModuleFrame(at('github.com/x/y.F', '/src/shop/vendor/github.com/x/y/y.go')));
    assert.ok(!isMainModuleFrame(at('encoding/json.Unmarshal', '/usr/local/go/src/encoding/json/decode.go')));
  });

  test("a library's map names the user's first frame as its caller; the user's own map has none", () => {
    const stack = [at('runtime.mapassign_fast64', ''), lib, at('github.com/prometheus/client_golang/prometheus.(*CounterVec).WithLabelValues', '/root/go/pkg/mod/github.com/prometheus/client_golang@v1.14.0/prometheus/counter.go'), user, at('main.main', '/src/services/main.go', 250)];
    const owner = ownerFrame(stack);
    assert.equal(owner?.function, lib.function);
    assert.deepEqual(callerFrame(stack), user);
    const own = [at('runtime.mapassign_faststr', ''), user, at('main.main', '/src/services/main.go', 250)];
    assert.equal(callerFrame(own), undefined);
  });

  test("the profiler's own allocations while it writes a profile are recognised; pprof.Do around user code is not the profiler", () => {
    assert.ok(isProfilerStack([at('runtime/pprof.(*profileBuilder).emitLocation', ''), at('runtime/pprof.writeHeapProto', ''), at('net/http/pprof.handler.ServeHTTP', '')]));
    assert.ok(isProfilerStack([at('compress/flate.NewWriter', ''), at('net/http/pprof.Index', '')]));
    assert.ok(!isProfilerStack([user, at('runtime/pprof.Do', ''), at('main.main', '/src/services/main.go')]));
    assert.ok(!isProfilerStack([at('runtime/pprof.WithLabels', ''), user]));
  });
});

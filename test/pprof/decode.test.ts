import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Profile, StringTable, ValueType } from 'pprof-format';
import {
  decodeHeapProfile,
  debug1ToHeapProfile,
  parseDebug1Heap,
  parseSymbolResponse,
  symbolQueries,
  scaleHeapSample,
  unnamedPcs,
  ProfileError,
  type ProfileErrorCode,
} from '../../src/pprof/index.js';
import { FIXTURE_VERSIONS, readFixture } from '../support/fixtures.js';

function expectProfileError(fn: () => unknown, code: ProfileErrorCode, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ProfileError, `expected ProfileError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (message) assert.match(err.message, message);
    assert.ok(!err.message.includes('\n'), 'error message is one line');
    return true;
  });
}

for (const version of FIXTURE_VERSIONS) {
  describe(`real ${version} heap profiles`, () => {
    test('gzipped proto decodes with timestamp, rate and object sizes', () => {
      const profile = decodeHeapProfile(readFixture(version, 'heap-001.pb.gz'));
      assert.equal(profile.format, 'proto');
      assert.ok(profile.time instanceof Date && profile.time.getFullYear() >= 2026);
      assert.equal(profile.memProfileRate, 512 * 1024);
      assert.ok(profile.records.length > 20);
      assert.ok(profile.records.every((r) => r.hiddenFrames === 'absent'));
      assert.ok(
        profile.records.filter((r) => r.allocObjects > 0).every((r) => r.objectSize > 0),
        'every sample has its bytes label',
      );
      // The proto hides runtime frames at the leaf: no stack starts in the map runtime.
      assert.ok(!profile.records.some((r) => /^runtime\.(makeBucketArray|mapassign)/.test(r.stack[0]?.function ?? '')));
      const inuse = profile.records.reduce((sum, r) => sum + r.inuseBytes, 0);
      assert.ok(inuse > 10 * 1024 * 1024, `in-use ${inuse}`);
    });

    test('plain (inflated) proto decodes to the same records', () => {
      const gz = readFixture(version, 'heap-001.pb.gz');
      const a = decodeHeapProfile(gz);
      const b = decodeHeapProfile(gunzipSync(gz));
      assert.deepEqual(b.records, a.records);
    });

    test('debug=1 text with symbols recovers the hidden map frames', () => {
      const text = readFixture(version, 'heap-001.txt').toString('utf8');
      const parsed = parseDebug1Heap(text);
      assert.equal(parsed.memProfileRate, 512 * 1024);
      assert.equal(parsed.records.length, text.split('\n').filter((l) => / @ 0x/.test(l)).length);
      assert.ok(parsed.memStats.get('HeapInuse')! > 0);
      const symbols = parseSymbolResponse(readFixture(version, 'heap-001.sym').toString('utf8'));
      assert.ok(unnamedPcs(parsed).every((pc) => symbols.has(pc)), 'the saved symbols cover every hidden PC');

      const resolved = debug1ToHeapProfile(parsed, symbols);
      assert.ok(resolved.records.every((r) => r.hiddenFrames === 'resolved'));
      const names = new Set(resolved.records.flatMap((r) => r.stack.map((f) => f.function)));
      const mapFrame = version === 'go1.19' ? 'runtime.makeBucketArray' : 'internal/runtime/maps.newarray';
      assert.ok(names.has(mapFrame), `${mapFrame} among recovered frames`);

      const unresolved = debug1ToHeapProfile(parsed);
      const withHiddenPcs = parsed.records.filter((r) => r.pcs.some((pc) => !parsed.framesByPc.has(pc - 1))).length;
      assert.ok(withHiddenPcs > 0);
      assert.equal(unresolved.records.filter((r) => r.hiddenFrames === 'absent').length, withHiddenPcs);
      assert.ok(!unresolved.records.some((r) => r.stack.some((f) => f.function === mapFrame)));
    });

    test('debug=1 counts are scaled like runtime/pprof scales proto samples', () => {
      const text = readFixture(version, 'heap-001.txt').toString('utf8');
      const raw = parseDebug1Heap(text).records[0]!;
      const scaled = debug1ToHeapProfile(parseDebug1Heap(text)).records[0]!;
      const expected = scaleHeapSample(raw.allocObjects, raw.allocBytes, 512 * 1024);
      assert.equal(scaled.allocBytes, expected.bytes);
      assert.ok(scaled.allocBytes >= raw.allocBytes);
    });

    test('debug=1 text is recognised by decodeHeapProfile too', () => {
      const profile = decodeHeapProfile(readFixture(version, 'heap-001.txt'));
      assert.equal(profile.format, 'debug1');
    });
  });
}

describe('scaleHeapSample', () => {
  test('small objects are scaled up by the inverse sampling probability, truncated to whole numbers as Go does', () => {
    const { count, bytes } = scaleHeapSample(1, 64, 512 * 1024);
    const expected = 1 / (1 - Math.exp(-64 / (512 * 1024)));
    // protomem.go: int64(float64(count) * scale), int64(float64(size) * scale)
    assert.equal(count, Math.trunc(expected));
    assert.equal(bytes, Math.trunc(64 * expected));
    assert.ok(count > 8000 && count < 8400);
  });
  test('objects far larger than the rate are barely scaled; zero stays zero; rate 1 is exact', () => {
    assert.ok(scaleHeapSample(1, 64 * 1024 * 1024, 512 * 1024).bytes - 64 * 1024 * 1024 < 1);
    assert.deepEqual(scaleHeapSample(0, 0, 512 * 1024), { count: 0, bytes: 0 });
    assert.deepEqual(scaleHeapSample(3, 300, 1), { count: 3, bytes: 300 });
  });
});

describe('symbols', () => {
  test('GET queries batched, and the response parsed', () => {
    assert.deepEqual(symbolQueries([0x401000, 0x4a5b6c]), ['0x401000+0x4a5b6c']);
    const many = Array.from({ length: 2000 }, (_, i) => 0x7f0000000000 + i * 16);
    const queries = symbolQueries(many);
    assert.ok(queries.length > 1 && queries.every((q) => q.length <= 3000), 'batched so a request line stays short');
    assert.deepEqual(queries.join('+').split('+'), many.map((pc) => `0x${pc.toString(16)}`), 'every PC once, in order');
    const table = parseSymbolResponse('num_symbols: 1\n0x401000 main.main\n0x4a5b6c runtime.makeBucketArray\n\n');
    assert.equal(table.get(0x401000), 'main.main');
    assert.equal(table.get(0x4a5b6c), 'runtime.makeBucketArray');
    expectProfileError(() => parseSymbolResponse('<html>404</html>'), 'NotAProfile');
  });
});

describe('bad input gets a clear error', () => {
  test('empty', () => expectProfileError(() => decodeHeapProfile(new Uint8Array()), 'Empty'));
  test('an HTML 404 page', () =>
    expectProfileError(
      () => decodeHeapProfile(Buffer.from('<!DOCTYPE html><html><head><title>404 Not Found</title></head></html>')),
      'HtmlPage',
      /404 Not Found/,
    ));
  test('plain text', () => expectProfileError(() => decodeHeapProfile(Buffer.from('hello world\n')), 'NotAProfile'));
  test('truncated gzip', () => {
    const gz = readFixture('go1.26', 'heap-001.pb.gz');
    expectProfileError(() => decodeHeapProfile(gz.subarray(0, gz.length / 2)), 'TruncatedGzip');
  });
  test('a gzip bomb stops at the limit', () => {
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
    assert.ok(bomb.length < 200 * 1024);
    expectProfileError(() => decodeHeapProfile(bomb, { maxBytes: 8 * 1024 * 1024 }), 'TooLarge', /limit/);
  });
  test('input larger than the limit is refused before decoding', () =>
    expectProfileError(() => decodeHeapProfile(Buffer.alloc(2048, 1), { maxBytes: 1024 }), 'TooLarge'));
  test('random binary', () => {
    const junk = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 2654435761) % 251));
    assert.throws(() => decodeHeapProfile(junk), ProfileError);
  });
  test('a CPU profile is not a heap profile', () => {
    const strings = new StringTable();
    const cpu = new Profile({
      stringTable: strings,
      sampleType: [
        new ValueType({ type: strings.dedup('samples'), unit: strings.dedup('count') }),
        new ValueType({ type: strings.dedup('cpu'), unit: strings.dedup('nanoseconds') }),
      ],
    });
    expectProfileError(() => decodeHeapProfile(cpu.encode()), 'NotAHeapProfile', /inuse_objects/);
  });
  test('a debug=1 profile with a corrupt record line', () => {
    const text = 'heap profile: 1: 64 [1: 64] @ heap/1048576\n1: 64 [1: 64] @ 0x1 0x2\nthis is not pprof\n';
    expectProfileError(() => parseDebug1Heap(text), 'Malformed', /line 3/);
  });
});

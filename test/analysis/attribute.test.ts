import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { attributeProfile, siteKey, type AttributedSnapshot, type SiteUsage } from '../../src/analysis/index.js';
import type { Frame, HeapProfile, HeapRecord } from '../../src/pprof/types.js';
import { decodeHeapProfile, parseSymbolResponse } from '../../src/pprof/index.js';
import { FIXTURE_VERSIONS, fixtureSites, readFixture, type FixtureVersion } from '../support/fixtures.js';

const sites = fixtureSites();
const lineOf = (name: string): number => {
  const line = sites.get(name);
  assert.ok(line, `SITE ${name} in fixtures`);
  return line;
};

function usageAt(snapshot: AttributedSnapshot, name: string, kind: 'map' | 'other'): SiteUsage | undefined {
  return snapshot.usages.find((u) => u.kind === kind && u.site.line === lineOf(name) && u.site.file.endsWith('main.go'));
}

function symbolized(version: FixtureVersion): AttributedSnapshot {
  const symbols = parseSymbolResponse(readFixture(version, 'heap-008.sym').toString('utf8'));
  return attributeProfile(decodeHeapProfile(readFixture(version, 'heap-008.txt'), undefined, symbols));
}

const MAP_SITES = ['map-growing-sessions', 'map-growing-json', 'map-retained-blobs', 'map-retained-items', 'map-churn-histogram', 'map-stable-cache'];

for (const version of FIXTURE_VERSIONS) {
  const impl = version === 'go1.19' ? 'classic' : 'swiss';
  describe(`attribution of a real ${version} profile`, () => {
    test(`symbolized: every map site is ${impl} map memory, owned by the user's code`, () => {
      const snapshot = symbolized(version);
      assert.equal(snapshot.mapImpl, impl);
      assert.equal(snapshot.evidence, 'symbolized');
      for (const name of MAP_SITES) {
        const usage = usageAt(snapshot, name, 'map');
        assert.ok(usage, `${name} has map memory`);
        assert.equal(usage.evidence, 'symbolized', name);
        assert.equal(usage.mapImpl, impl, name);
        assert.match(usage.site.function, /^main\./, `${name} is owned by main, not reflect or encoding/json`);
      }
      const sessions = usageAt(snapshot, 'map-growing-sessions', 'map')!;
      const structure = impl === 'classic' ? 'buckets' : 'groups';
      assert.ok((sessions.components[structure] ?? 0) > 0.5 * sessions.inuseBytes, `sessions memory is mostly ${structure}`);
      assert.ok(snapshot.totals.mapInuseBytes > 20 * 1024 * 1024);
    });

    test("symbolized: the profiler's own allocations while serving the profile are no site's", () => {
      const snapshot = symbolized(version);
      const profiler = snapshot.usages.filter((u) => /^(runtime\/pprof|net\/http\/pprof)\./.test(u.site.function));
      assert.deepEqual(profiler.map((u) => u.site.function), []);
      const inSites = snapshot.usages.reduce((sum, u) => sum + u.allocBytes, 0);
      assert.ok(inSites < snapshot.totals.allocBytes, 'the profile still counts them in its totals');
    });

    test('symbolized: values stored in maps and the non-map leak are other memory', () => {
      const snapshot = symbolized(version);
      for (const name of ['other-growing-session-values', 'other-growing-buffers']) {
        assert.ok(usageAt(snapshot, name, 'other'), `${name} is other memory`);
        assert.equal(usageAt(snapshot, name, 'map'), undefined, `${name} is never blamed on maps`);
      }
    });

    test('proto only: size signatures and visible frames still find the maps', () => {
      const snapshot = attributeProfile(decodeHeapProfile(readFixture(version, 'heap-008.pb.gz')));
      assert.equal(snapshot.mapImpl, impl, 'the profile as a whole tells the implementation');
      assert.equal(usageAt(snapshot, 'map-growing-json', 'map')?.evidence, 'visible-frame');
      for (const name of ['map-growing-sessions', 'map-retained-blobs', 'map-retained-items', 'map-churn-histogram']) {
        const usage = usageAt(snapshot, name, 'map');
        assert.ok(usage, `${name} has map memory by size signature`);
        assert.equal(usage.evidence, 'size-signature', name);
      }
      assert.equal(usageAt(snapshot, 'other-growing-buffers', 'map'), undefined, '48 KiB buffers are not a map');
      assert.ok(usageAt(snapshot, 'other-growing-buffers', 'other'));
    });
  });
}

describe('a library line fed by several callers', () => {
  // Two go-cache caches behind one line of the library, as test/targets/twocallers has them.
  const GO_CACHE = '/root/go/pkg/mod/github.com/patrickmn/go-cache@v2.1.0+incompatible/cache.go';
  const set: Frame = { function: 'github.com/patrickmn/go-cache.(*cache).Set', file: GO_CACHE, line: 61 };
  const remember: Frame = { function: 'main.remember', file: '/app/main.go', line: 38 };
  const session: Frame = { function: 'main.session', file: '/app/main.go', line: 42 };
  const assign: Frame[] = [
    { function: 'internal/runtime/maps.newarray', file: '/usr/local/go/src/internal/runtime/maps/table.go', line: 1 },
    { function: 'runtime.mapassign_faststr', file: '/usr/local/go/src/runtime/map_faststr.go', line: 2 },
  ];
  const record = (stack: Frame[], bytes: number, hidden: HeapRecord['hiddenFrames'] = 'resolved'): HeapRecord => ({
    stack,
    hiddenFrames: hidden,
    addresses: [],
    objectSize: 8192,
    inuseObjects: bytes / 8192,
    inuseBytes: bytes,
    allocObjects: bytes / 8192,
    allocBytes: bytes,
  });
  const profile = (records: HeapRecord[]): HeapProfile => ({ format: 'debug1', time: new Date(0), memProfileRate: 512 * 1024, buildId: undefined, records });
  const main: Frame = { function: 'main.main', file: '/app/main.go', line: 70 };

  test('each caller is its own usage, keyed by the owner line and the caller line, with its own bytes', () => {
    const snapshot = attributeProfile(
      profile([
        record([...assign, set, remember, main], 6 * 8192),
        record([...assign, set, session, main], 2 * 8192),
        record([...assign, set, remember, main], 8192), // a second record of the same stack adds up
      ]),
    );
    const maps = snapshot.usages.filter((u) => u.kind === 'map');
    assert.deepEqual(
      maps.map((u) => [u.caller?.function, u.inuseBytes, u.key]),
      [
        ['main.remember', 7 * 8192, siteKey(set, 'map', remember)],
        ['main.session', 2 * 8192, siteKey(set, 'map', session)],
      ],
    );
    assert.ok(maps.every((u) => u.site.function === set.function && u.site.line === 61), 'one owner line');
  });

  test('a usage without a caller keeps the owner-only key', () => {
    const own: Frame = { function: 'main.fill', file: '/app/main.go', line: 90 };
    const snapshot = attributeProfile(profile([record([...assign, own, main], 4 * 8192), record([own, main], 8192, 'absent')]));
    const usage = snapshot.usages.find((u) => u.kind === 'map');
    assert.equal(usage?.key, `map\tmain.fill\t/app/main.go\t90`);
    assert.equal(usage.caller, undefined);
    assert.equal(snapshot.usages.find((u) => u.kind === 'other')?.key, `other\tmain.fill\t/app/main.go\t90`);
  });

  test('two callers on two lines of one function of the user are two usages too (the caller line is part of the key)', () => {
    const first: Frame = { function: 'main.handle', file: '/app/main.go', line: 10 };
    const second: Frame = { ...first, line: 12 };
    const snapshot = attributeProfile(profile([record([...assign, set, first, main], 8192), record([...assign, set, second, main], 8192)]));
    assert.deepEqual(
      snapshot.usages.map((u) => u.caller?.line),
      [10, 12],
    );
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { attributeProfile, type AttributedSnapshot, type SiteUsage } from '../../src/analysis/index.js';
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

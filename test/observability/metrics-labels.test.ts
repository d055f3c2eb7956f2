import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_SITE_LABEL_BYTES, OperatorMetrics } from '../../src/observability/metrics.js';

/** The `site` label of every mapleak_map_inuse_bytes series, as Prometheus would scrape them. */
async function scrapedSites(metrics: OperatorMetrics): Promise<string[]> {
  const text = await metrics.registry.metrics();
  return text
    .split('\n')
    .filter((line) => line.startsWith('mapleak_map_inuse_bytes{'))
    .map((line) => JSON.parse(`"${/site="((?:[^"\\]|\\.)*)"/.exec(line)?.[1] ?? ''}"`) as string);
}

describe('the site label of mapleak_map_inuse_bytes is bounded', () => {
  test('a tenant\'s 512-character function names: at most 128 bytes each, one series per name, ordinary Go names unchanged', async () => {
    const metrics = new OperatorMetrics(false);
    const long = 'main.'.padEnd(511, 'x');
    const finding = (fn: string, line = 7) => ({ site: { function: fn, line }, pattern: 'growing', inuseBytes: 1 << 20, kind: 'map' });
    metrics.setProbeFindings('team-a', 'p', 'Leaking', [
      finding('github.com/prometheus/client_golang/prometheus.(*metricMap).getOrCreateMetricWithLabelValues', 301),
      finding(`${long}a`),
      finding(`${long}b`),
      finding('\u{1F600}'.repeat(512)),
    ]);
    const sites = await scrapedSites(metrics);
    assert.equal(sites.length, 4);
    assert.equal(new Set(sites).size, 4, 'names that share their first 100 characters stay apart');
    assert.ok(sites.includes('github.com/prometheus/client_golang/prometheus.(*metricMap).getOrCreateMetricWithLabelValues:301'));
    for (const site of sites) {
      assert.ok(Buffer.byteLength(site) <= MAX_SITE_LABEL_BYTES, `${Buffer.byteLength(site)} bytes: ${site}`);
      assert.match(site, /:\d+$/, 'the line stays');
      assert.ok(!site.includes('\ufffd'), 'no character cut in half');
    }
    // Replaced by the next round's findings, then gone with the probe.
    metrics.setProbeFindings('team-a', 'p', 'Leaking', [finding(`${long}a`)]);
    assert.equal((await scrapedSites(metrics)).length, 1);
    metrics.forgetProbe('team-a', 'p');
    assert.equal((await scrapedSites(metrics)).length, 0);
  });

  test("two callers' maps at one library line with one pattern are one series of their summed bytes", async () => {
    const metrics = new OperatorMetrics(false);
    const set = { function: 'github.com/patrickmn/go-cache.(*cache).Set', line: 61 };
    metrics.setProbeFindings('team-a', 'p', 'Leaking', [
      { site: set, pattern: 'stable', inuseBytes: 3 << 20, kind: 'map' },
      { site: set, pattern: 'stable', inuseBytes: 5 << 20, kind: 'map' },
      { site: set, pattern: 'growing', inuseBytes: 7 << 20, kind: 'map' },
    ]);
    const lines = (await metrics.registry.metrics()).split('\n').filter((line) => line.startsWith('mapleak_map_inuse_bytes{'));
    assert.equal(lines.length, 2);
    assert.ok(lines.some((line) => line.includes('pattern="stable"') && line.endsWith(` ${8 << 20}`)), lines.join('\n'));
    assert.ok(lines.some((line) => line.includes('pattern="growing"') && line.endsWith(` ${7 << 20}`)), lines.join('\n'));
  });
});

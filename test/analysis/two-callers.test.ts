import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Report } from '../../src/analysis/report.js';
import type { Finding } from '../../src/analysis/series.js';
import { runCli } from '../support/cli.js';
import { buildTarget, siteLines, startTarget, type GoVersion, type RunningTarget } from '../support/go-targets.js';

// One library line, two of the user's maps: test/targets/twocallers feeds two
// go-cache caches through the same line of go-cache.(*cache).Set, one from
// main.remember (no expiry: grows without bound), one from main.session (a
// TTL cache held at its bound). Each caller is its own map, so each is its
// own finding, with its own verdict, caller and advice. Both toolchains run
// at once (swiss maps on Go 1.26, classic maps on Go 1.19), each watched by
// the CLI as a user would, at the runtime's default sampling rate.
const VERSIONS: GoVersion[] = ['1.26', '1.19'];
const lines = siteLines('twocallers');

describe('two callers of one library line (real go-cache, live targets)', () => {
  const targets: RunningTarget[] = [];
  const reports = new Map<GoVersion, Report>();
  const html = new Map<GoVersion, string>();

  before(async () => {
    const work = mkdtempSync(join(tmpdir(), 'mapleak-twocallers-'));
    await Promise.all(
      VERSIONS.map(async (version) => {
        const target = await startTarget(await buildTarget('twocallers', version), join(work, version));
        targets.push(target);
        const page = join(work, `${version}.html`);
        const result = await runCli(['analyze', '--url', target.url, '--every', '2s', '--count', '13', '--json', '--html', page]);
        assert.equal(result.code, 0, result.stderr);
        reports.set(version, JSON.parse(result.stdout) as Report);
        html.set(version, readFileSync(page, 'utf8'));
      }),
    );
  });
  after(() => Promise.all(targets.map((t) => t.stop())));

  const mapsOfSet = (version: GoVersion): Finding[] =>
    (reports.get(version) as Report).findings.filter((f) => f.kind === 'map' && f.site.function === 'github.com/patrickmn/go-cache.(*cache).Set');

  for (const version of VERSIONS) {
    test(`Go ${version}: two findings at one go-cache line, each naming its own caller line`, () => {
      const maps = mapsOfSet(version);
      assert.equal(maps.length, 2, JSON.stringify(maps.map((f) => [f.site, f.caller, f.pattern])));
      const [a, b] = maps as [Finding, Finding];
      assert.deepEqual(a.site, b.site, 'one library line');
      assert.deepEqual(
        maps.map((f) => `${f.caller?.function}:${f.caller?.line}`).sort(),
        [`main.remember:${lines.get('caller-remember')}`, `main.session:${lines.get('caller-session')}`],
      );
    });

    test(`Go ${version}: main.remember's cache is growing, main.session's bounded cache is not`, () => {
      const maps = mapsOfSet(version);
      const remember = maps.find((f) => f.caller?.function === 'main.remember');
      const session = maps.find((f) => f.caller?.function === 'main.session');
      assert.equal(remember?.pattern, 'growing', JSON.stringify(remember));
      assert.match(remember.advice, /grows without bound/);
      assert.ok(session, 'the bounded cache is reported on its own');
      assert.notEqual(session.pattern, 'growing', JSON.stringify(session));
      assert.doesNotMatch(session.advice, /grows without bound/);
      // Its bytes are its own: the leak's series no longer carries the bounded cache's.
      assert.ok(remember.inuseBytes + session.inuseBytes <= (reports.get(version) as Report).totals.mapInuseBytes * 1.01);
    });
  }

  test('the HTML report gives each caller its own chart', () => {
    const page = html.get('1.26') as string;
    assert.match(page, /called from main\.remember main\.go:\d+/);
    assert.match(page, /called from main\.session main\.go:\d+/);
    assert.equal((page.match(/go-cache\.\(\*cache\)\.Set cache\.go:\d+<\/h3>/g) ?? []).length, 2);
  });
});

import { parseSymbolResponse } from '../../src/pprof/index.js';
import { readFixture, type FixtureVersion } from './fixtures.js';
import { startServer, type TestServer } from './http-server.js';

/** A target that serves one real capture (test/pprof/testdata) as net/http/pprof does: its proto, its debug=1 and, by GET, the names of its PCs. */
export function fixtureTarget(version: FixtureVersion, stem = 'heap-008'): Promise<TestServer> {
  const proto = readFixture(version, `${stem}.pb.gz`);
  const debug1 = readFixture(version, `${stem}.txt`);
  const symbols = parseSymbolResponse(readFixture(version, `${stem}.sym`).toString('utf8'));
  return startServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://target');
    if (url.pathname === '/debug/pprof/heap') return res.end(url.searchParams.get('debug') === '1' ? debug1 : proto);
    if (url.pathname === '/debug/pprof/symbol') {
      const pcs = url.search.slice(1).split('+').map((pc) => Number.parseInt(pc, 16));
      const known = pcs.filter((pc) => symbols.has(pc));
      return res.end([`num_symbols: ${known.length}`, ...known.map((pc) => `0x${pc.toString(16)} ${symbols.get(pc)}`), ''].join('\n'));
    }
    res.writeHead(404).end('404 page not found\n');
  });
}

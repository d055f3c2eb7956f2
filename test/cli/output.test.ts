import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Report } from '../../src/analysis/report.js';
import { shortenFunction } from '../../src/cli/format.js';
import { runCli } from '../support/cli.js';
import { buildTarget, startTarget, type RunningTarget } from '../support/go-targets.js';
import { startServer, type TestServer } from '../support/http-server.js';
import { CLI } from '../support/paths.js';

/** Runs the CLI on a real pseudo-terminal (util-linux script): stdout and stderr both reach the terminal. */
function runOnTerminal(args: string[]): Promise<{ code: number | null; output: string }> {
  const command = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  return new Promise((resolve) => {
    const child = spawn('script', ['-qefc', command, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, COLUMNS: '200' } });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

/** A pattern over terminal output; CLEAR stands for carriage return + erase line. */
const terminal = (pattern: string): RegExp => new RegExp(pattern.replaceAll('CLEAR', '\\r\\u001b\\[K'));

describe('output hygiene', () => {
  test('long site names give way in the middle of the package path, never the package or the function name', () => {
    const cases: [string, string][] = [
      ['github.com/prometheus/client_golang/prometheus.(*metricMap).getOrCreateMetricWithLabelValues', 'github.com/…/prometheus.(*metricMap).getOrCreateMetricWithLabelValues'],
      ['github.com/prometheus/client_golang/prometheus.checkMetricConsistency', 'github.com/…/prometheus.checkMetricConsistency'],
      ['github.com/hashicorp/golang-lru/v2.(*Cache[...]).Add', 'github.com/…/golang-lru/v2.(*Cache[...]).Add'],
      ['k8s.io/apimachinery/pkg/util/cache.(*LRUExpireCache).AddWithTimeToLive', 'k8s.io/…/cache.(*LRUExpireCache).AddWithTimeToLive'],
      ['github.com/example/platform/internal/storage/index.(*Index).Put', 'github.com/…/internal/storage/index.(*Index).Put'],
      ['main.(*app).countRequest', 'main.(*app).countRequest'],
      ['golang.org/x/time/rate.NewLimiter', 'golang.org/x/time/rate.NewLimiter'],
    ];
    for (const [name, expected] of cases) assert.equal(shortenFunction(name, 48), expected);
    // A major version stays with its module: github.com/…/golang-lru/v2.
    assert.equal(shortenFunction('github.com/hashicorp/golang-lru/v2.(*Cache[...]).AddWithExpiry', 40), 'github.com/…/golang-lru/v2.(*Cache[...]).AddWithExpiry');
  });

  test('--help on every subcommand, exit 0', async () => {
    for (const args of [['--help'], ['analyze', '--help'], ['operator', '--help'], ['operator', '-h']]) {
      const result = await runCli(args);
      assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stdout, /^Usage:\n/);
    }
    assert.match((await runCli(['operator', '--help'])).stdout, /--redis-url URL/);
  });

  describe('live progress against a Go target whose symbol endpoint fails', () => {
    let target: RunningTarget;
    let front: TestServer;

    before(async () => {
      target = await startTarget(await buildTarget('leaky', '1.26'), mkdtempSync(join(tmpdir(), 'mapleak-output-')));
      // In front of the real target: everything is passed on, except /symbol, which answers 405 as a POST-only setup would.
      front = await startServer((req, res) => {
        if (req.url?.includes('/symbol')) {
          res.writeHead(405, { 'content-type': 'text/plain' }).end('Method Not Allowed\n');
          return;
        }
        const upstream = http.get(`${target.url}${req.url ?? '/'}`, (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        });
        upstream.on('error', () => res.writeHead(502).end());
      });
    });
    after(async () => {
      await front?.close();
      await target?.stop();
    });

    test('not a terminal: plain lines on stderr, the warning on a line of its own, --json on stdout untouched', async () => {
      const result = await runCli(['analyze', '--url', front.url, '--every', '1s', '--count', '3', '--json']);
      assert.equal(result.code, 0, result.stderr);
      const report = JSON.parse(result.stdout) as Report;
      assert.equal(report.captures, 3);
      assert.ok(report.warnings.some((w) => w.startsWith('symbol endpoint: ')));
      const lines = result.stderr.split('\n');
      assert.ok(lines.some((l) => /^warning: symbol endpoint: .*HTTP 405/.test(l)), result.stderr);
      for (const line of lines.filter(Boolean)) assert.match(line, /^(capture \d\/3: \d+ records|warning: )/, 'every line is whole');
      assert.ok(!result.stderr.includes('\r'), 'no terminal control characters');
    });

    test('on a terminal: one status line rewritten in place (captures done, next in N s, bytes fetched), cleared before the table', async () => {
      const { code, output } = await runOnTerminal(['analyze', '--url', front.url, '--every', '2500ms', '--count', '3']);
      assert.equal(code, 0, output);
      assert.match(output, terminal('CLEAR1/3 captures done, [\\d.]+ [KM]iB fetched; next in \\ds'));
      assert.match(output, terminal('CLEARcapture 3/3 done \\(\\d+ records'));
      // The warning starts a line (clearing any status line) and ends with its own newline.
      assert.match(output, terminal('(^|\\n|CLEAR)warning: symbol endpoint: [^\\r\\n]*HTTP 405[^\\r\\n]*\\r?\\n'));
      // The status line is cleared before the report: the table's first line starts clean.
      assert.match(output, terminal('CLEAR3 captures over \\d+s'));
    });
  });
});

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { runCli, type CliResult } from '../support/cli.js';
import { CLI } from '../support/paths.js';
import { readFixture } from '../support/fixtures.js';
import { NOT_FOUND_PAGE, startServer, type TestServer } from '../support/http-server.js';

/** A clear one-line error, a non-zero exit, never a stack trace. */
function assertCleanFailure(result: CliResult, code: number, message: RegExp): void {
  assert.equal(result.code, code, `exit code (stderr: ${result.stderr})`);
  assert.equal(result.stdout, '');
  const lines = result.stderr.trim().split('\n');
  assert.match(lines[0] ?? '', /^mapleak: /);
  assert.match(lines[0] ?? '', message);
  assert.ok(!/\n\s+at /.test(result.stderr), `no stack trace in: ${result.stderr}`);
  assert.ok(lines.length <= 2, `at most the error and a usage hint: ${result.stderr}`);
}

describe('mapleak --help', () => {
  test('every command answers --help with its usage and exit 0', async () => {
    for (const args of [['--help'], ['analyze', '--help'], ['analyze', '--url', 'http://127.0.0.1:1', '-h']]) {
      const result = await runCli(args);
      assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stdout, /^Usage:\n {2}mapleak analyze/);
    }
  });

  test('the installed mapleak starts through its #! line, node flags and all', () => {
    // What Linux runs for an executable script: the #! interpreter, the rest of the line as one argument, then the script's path.
    const line = (readFileSync(CLI, 'utf8').split('\n', 1)[0] ?? '').slice(2);
    const space = line.indexOf(' ');
    const [interpreter, argument] = space < 0 ? [line] : [line.slice(0, space), line.slice(space + 1)];
    const result = spawnSync(interpreter as string, [...(argument ? [argument] : []), CLI, 'analyze', '--help'], { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^Usage:\n {2}mapleak analyze/);
  });
});

describe('mapleak analyze: bad files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mapleak-bad-'));
  const file = (name: string, data: string | Buffer): string => {
    const path = join(dir, name);
    writeFileSync(path, data);
    return path;
  };

  test('not a profile', async () => {
    assertCleanFailure(await runCli(['analyze', file('notes.txt', 'just some notes\n')]), 1, /notes\.txt: not a heap profile/);
  });
  test('truncated gzip', async () => {
    const gz = readFixture('go1.19', 'heap-001.pb.gz');
    assertCleanFailure(await runCli(['analyze', file('cut.pb.gz', gz.subarray(0, 700))]), 1, /cut\.pb\.gz: gzip stream is truncated/);
  });
  test('a gzip bomb', async () => {
    const bomb = file('bomb.pb.gz', gzipSync(Buffer.alloc(128 * 1024 * 1024)));
    assertCleanFailure(await runCli(['analyze', '--max-bytes', '16Mi', bomb]), 1, /inflates to more than 16777216 bytes/);
  });
  test('a saved 404 page', async () => {
    assertCleanFailure(await runCli(['analyze', file('heap.pb', NOT_FOUND_PAGE)]), 1, /HTML page, not a profile: "404 Not Found"/);
  });
  test('a file that does not exist', async () => {
    assertCleanFailure(await runCli(['analyze', join(dir, 'nope.pb.gz')]), 1, /cannot read: ENOENT/);
  });
  test('usage errors exit 2', async () => {
    assertCleanFailure(await runCli(['analyze']), 2, /no PROFILE files/);
    assertCleanFailure(await runCli(['analyze', '--bogus', 'x']), 2, /bogus/);
    assertCleanFailure(await runCli(['analyze', '--url', 'http://127.0.0.1:1', '--every', 'soon']), 2, /invalid duration "soon"/);
    assertCleanFailure(await runCli(['frobnicate']), 2, /unknown command/);
  });
});

describe('mapleak analyze --url: bad targets', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer((req, res) => {
      if (req.url?.startsWith('/hang/')) return; // accepts, never answers
      if (req.url?.startsWith('/garbage/')) return res.end(Buffer.from([0x0a, 0xff, 0xff, 0x01, 0x02, 0x03, 0x99, 0x42]));
      res.writeHead(404, { 'content-type': 'text/html' });
      res.end(NOT_FOUND_PAGE);
    });
  });
  after(() => server.close());

  test('a 404 HTML page instead of pprof', async () => {
    // Described (status, content type, size), never quoted: the same fetch serves the operator, whose readers are tenants.
    assertCleanFailure(await runCli(['analyze', '--url', server.url, '--count', '1']), 1, /answered HTTP 404 \(text\/html, \d+ bytes\)/);
  });
  test('a target that hangs', async () => {
    const started = Date.now();
    assertCleanFailure(await runCli(['analyze', '--url', `${server.url}/hang`, '--count', '1', '--timeout', '1s']), 1, /did not answer within 1000 ms/);
    assert.ok(Date.now() - started < 20_000);
  });
  test('garbage bytes', async () => {
    assertCleanFailure(await runCli(['analyze', '--url', `${server.url}/garbage`, '--count', '1']), 1, /not a pprof protobuf|not a heap profile/);
  });
  test('nothing listening', async () => {
    const closed = await startServer(() => undefined);
    const url = closed.url;
    await closed.close();
    assertCleanFailure(await runCli(['analyze', '--url', url, '--count', '1']), 1, /ECONNREFUSED/);
  });
});

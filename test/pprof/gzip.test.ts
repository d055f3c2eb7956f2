import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { decodeHeapProfile, ProfileError } from '../../src/pprof/index.js';
import { gunzipLimited, RATIO_FLOOR_BYTES } from '../../src/pprof/gzip.js';
import { FIXTURE_VERSIONS, readFixture } from '../support/fixtures.js';

const MiB = 1024 * 1024;

function tooLarge(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof ProfileError && err.code === 'TooLarge' && message.test(err.message));
}

describe('streaming inflate with size and ratio caps', () => {
  test('real profiles inflate unchanged', () => {
    for (const version of FIXTURE_VERSIONS) {
      const gz = readFixture(version, 'heap-008.pb.gz');
      const plain = gunzipLimited(gz, { maxBytes: 64 * MiB, maxRatio: 50 });
      const profile = decodeHeapProfile(gz, { maxBytes: 64 * MiB, maxRatio: 50 });
      assert.ok(plain.length > gz.length);
      assert.ok(profile.records.length > 0, version);
    }
  });

  test('a gzip bomb is stopped by its ratio after about a MiB of output, whatever the size cap', () => {
    const bomb = gzipSync(Buffer.alloc(512 * MiB));
    const before = process.memoryUsage().arrayBuffers;
    const started = performance.now();
    tooLarge(() => gunzipLimited(bomb, { maxBytes: 1024 * MiB, maxRatio: 50 }), /more than 50 times its compressed size/);
    const ms = performance.now() - started;
    const grew = process.memoryUsage().arrayBuffers - before;
    console.log(`# ${bomb.length}-byte bomb of 512 MiB zeros: stopped after ${ms.toFixed(1)} ms, external memory +${(grew / MiB).toFixed(1)} MiB`);
    assert.ok(grew < 32 * MiB, `memory stayed small (+${grew} bytes)`);
  });

  test('the size cap stops a stream that compresses too little to trip the ratio', () => {
    const incompressible = gzipSync(randomBytes(3 * MiB));
    tooLarge(() => gunzipLimited(incompressible, { maxBytes: 2 * MiB, maxRatio: 50 }), /inflates to more than 2097152 bytes/);
    assert.equal(gunzipLimited(incompressible, { maxBytes: 4 * MiB, maxRatio: 50 }).length, 3 * MiB);
  });

  test('small outputs are not judged by their ratio', () => {
    const zeros = gzipSync(Buffer.alloc(RATIO_FLOOR_BYTES));
    assert.equal(gunzipLimited(zeros, { maxBytes: 2 * MiB, maxRatio: 2 }).length, RATIO_FLOOR_BYTES);
  });

  test('truncated and corrupt streams keep their codes', () => {
    const gz = readFixture('go1.26', 'heap-008.pb.gz');
    assert.throws(() => gunzipLimited(gz.subarray(0, gz.length >> 1), 64 * MiB), (err: unknown) => err instanceof ProfileError && err.code === 'TruncatedGzip');
    const corrupt = Buffer.from(gz);
    corrupt.fill(0xff, 10, 40);
    assert.throws(() => gunzipLimited(corrupt, 64 * MiB), (err: unknown) => err instanceof ProfileError && (err.code === 'Malformed' || err.code === 'TruncatedGzip'));
  });
});

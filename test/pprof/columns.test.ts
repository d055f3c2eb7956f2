import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { attributeProfile } from '../../src/analysis/attribute.js';
import { profileFromColumns, profileToColumns } from '../../src/pprof/columns.js';
import { parseDebug1Heap } from '../../src/pprof/debug1.js';
import { decodeHeapColumns, decodeHeapProfile } from '../../src/pprof/decode.js';
import { applyRestoration, learnHiddenFrames, restorationBetween, restoreHiddenFrames, type HiddenFrameTable } from '../../src/pprof/hidden-frames.js';
import { parseSymbolResponse } from '../../src/pprof/symbols.js';
import { repoPath } from '../support/paths.js';

/**
 * The proto decoder writes columns, and the formats that edit records
 * (debug=1, restored hidden frames) keep records: both layouts must be one
 * profile, and the engine must read them alike. Captures of real Go
 * programs (leaky and the services target, classic and swiss maps), each
 * with the debug=1 and symbols that teach its hidden frames.
 */
const STREAMS = repoPath('test', 'verdicts', 'testdata', 'streams');
const streams = readdirSync(STREAMS);

/** The first, a middle and the last proto of a stream: growth, steady state and the end of the window. */
function protos(stream: string): Buffer[] {
  const dir = join(STREAMS, stream);
  const files = readdirSync(dir).filter((f) => f.endsWith('.pb.gz')).sort();
  const picked = [...new Set([files[0], files[Math.floor(files.length / 2)], files[files.length - 1]])] as string[];
  return picked.map((file) => readFileSync(join(dir, file)));
}

/** What every debug=1 capture of a stream (with its symbols) teaches about its binary's hidden frames. */
function taught(stream: string): HiddenFrameTable {
  const dir = join(STREAMS, stream);
  const table: HiddenFrameTable = new Map();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.txt')).sort()) {
    const stem = file.slice(0, -'.txt'.length);
    learnHiddenFrames(parseDebug1Heap(readFileSync(join(dir, file), 'utf8')), parseSymbolResponse(readFileSync(join(dir, `${stem}.sym`), 'utf8')), table);
  }
  return table;
}

describe('a profile as columns and as records', () => {
  test('there are streams of both map implementations to compare on', () => {
    assert.ok(streams.some((s) => s.includes('go1.19')) && streams.some((s) => s.includes('go1.26')), streams.join(', '));
  });

  for (const stream of streams) {
    test(`${stream}: the decoder's columns are its records, and attribution reads both alike`, () => {
      let compared = 0;
      for (const proto of protos(stream)) {
        const columns = decodeHeapColumns(proto);
        const records = decodeHeapProfile(proto);
        compared += columns.stackOf.length;
        assert.deepEqual(profileFromColumns(columns), records);
        assert.deepEqual(profileToColumns(records).stackOf, columns.stackOf);
        assert.deepEqual(attributeProfile(columns), attributeProfile(records));
      }
      assert.ok(compared > 100, `records compared: ${compared}`);
    });

    test(`${stream}: hidden frames restored on columns (the decode thread) give what restoring records gives`, () => {
      let restoredRecords = 0;
      const table = taught(stream);
      for (const proto of protos(stream)) {
        const columns = decodeHeapColumns(proto);
        const restored = restoreHiddenFrames(profileFromColumns(columns), (key) => table.get(key));
        const restoration = restorationBetween(columns, restored);
        restoredRecords += restoration.pathOf.filter((path) => path >= 0).length;
        const applied = applyRestoration(columns, restoration);
        assert.deepEqual(profileFromColumns(applied), restored);
        assert.deepEqual(attributeProfile(applied), attributeProfile(restored));
        // The kept columns are left as decoded: the thread may be asked again.
        assert.deepEqual(profileFromColumns(columns), decodeHeapProfile(proto));
      }
      assert.ok(restoredRecords > 0, 'debug=1 taught some hidden frames');
    });
  }

  test('a restoration made for another profile is refused', () => {
    const columns = decodeHeapColumns(protos(streams[0] as string)[0] as Buffer);
    assert.throws(() => applyRestoration(columns, { paths: [], pathOf: new Int32Array(columns.stackOf.length + 1) }), /another profile/);
  });
});

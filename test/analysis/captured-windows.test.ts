// Verdicts on windows captured from programs the team did not write
// (review 6, /work/notes/review6-accuracy.md): each saved with
// `mapleak analyze --url ... --save` from the program under
// test/analysis/captures/review6/programs/, and read here as the CLI reads
// saved captures.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { attributeProfile } from '../../src/analysis/attribute.js';
import { analyzeSeries, type Finding, type SeriesAnalysis, type TimedSnapshot } from '../../src/analysis/series.js';
import { groupCaptureFiles, loadCaptures } from '../../src/cli/files.js';

// dist/test/analysis -> the repository
const captures = resolve(fileURLToPath(import.meta.url), '../../../../test/analysis/captures/review6');

async function analyzeRun(run: string): Promise<SeriesAnalysis> {
  const dir = join(captures, run);
  const snapshots: TimedSnapshot[] = [];
  for await (const capture of loadCaptures(groupCaptureFiles(readdirSync(dir).map((f) => join(dir, f))), { maxBytes: 64 * 1024 * 1024 })) {
    snapshots.push({ ...attributeProfile(capture.profile), time: capture.time });
  }
  return analyzeSeries(snapshots);
}

const at = (findings: readonly Finding[], fn: string, kind: 'map' | 'other'): Finding | undefined => findings.find((f) => f.site.function === fn && f.kind === kind);

describe('windows captured from programs the team did not write', () => {
  test('a restart whose new process has already allocated more in all than the old one had is still a restart', async () => {
    // programs/shapes (Go 1.26) captured at 3-11 s of uptime, killed, restarted, captured again at 13-25 s of the new
    // process: its total allocation (117.7 MiB) is above the old one's last (100.9 MiB), but main.bigThenDelete's
    // allocation fell 18.8 -> 15.3 MiB, which one process never does. The map it drained at start-up is retained.
    const result = await analyzeRun('restart-overtake');
    assert.equal(result.restartedCaptures, 3, 'the distinct captures of the old process are set aside');
    assert.equal(at(result.findings, 'main.bigThenDelete', 'map')?.pattern, 'retained');
  });

  test('classic maps rebuilt wholesale on a timer are churn, without the advice for insert/delete churn', async () => {
    // programs/shapes (Go 1.19) main.rebuildIndex: a new map of 60,000 entries every 2 s replaces the old one. In the
    // window its bucket arrays allocated ~122 MiB and its overflow buckets 4.7 MiB (none in use): maps built and
    // dropped, not one map whose overflow buckets pile up under insert/delete churn.
    const index = at((await analyzeRun('s119')).findings, 'main.rebuildIndex', 'map');
    assert.equal(index?.pattern, 'churn');
    assert.match(index.advice, /built and dropped/);
    assert.doesNotMatch(index.advice, /insert\/delete churn/);
  });
});


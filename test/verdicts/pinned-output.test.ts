import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { expectedOutput, PINNED_CASES, pinnedOutput } from './pinned-cases.js';

/**
 * The engine's output is pinned: attribution and series analysis may get
 * faster, never different. Each case's expected files were written by the
 * engine before its speed-up (pinned-cases.ts says how); a change of any
 * verdict, finding, number or text of `analyze --json`, of any site's
 * classification in any window, or of any capture's attribution fails here.
 */
describe('pinned engine output (recorded streams, bench-shaped profiles)', () => {
  for (const pinned of PINNED_CASES) {
    test(`${pinned.name}: the same report, every site's finding per window, and every capture's attribution`, async () => {
      const actual = await pinnedOutput(pinned);
      const expected = expectedOutput(pinned);
      assert.deepEqual(actual.report, expected.report, 'analyze --json, default thresholds');
      assert.deepEqual(Object.keys(actual.everySite), Object.keys(expected.everySite));
      for (const [window, report] of Object.entries(expected.everySite)) {
        assert.deepEqual(actual.everySite[window], report, `every site, window "${window}"`);
      }
      assert.equal(actual.attributions.length, expected.attributions.length);
      actual.attributions.forEach((attribution, i) => assert.deepEqual(attribution, expected.attributions[i], `attribution of capture ${i + 1}`));
    });
  }
});

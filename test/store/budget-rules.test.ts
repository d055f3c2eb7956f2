// The pure rules around the namespace budget: which captures a new one
// pushes out of its window (and so is credited), the flags and how they
// must hold together, and the condition a probe gets.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_CEILINGS, inconsistentCeilings } from '../../src/api/ceilings.js';
import { operatorConfig } from '../../src/cli/operator.js';
import { namespaceBudgetCondition, type TargetRound } from '../../src/status/build.js';
import { outOfWindow } from '../../src/store/series-store.js';

const round = (name: string, extra: Partial<TargetRound> = {}): TargetRound => ({ pod: { name, namespace: 'team-a', uid: `uid-${name}` }, captures: 1, ...extra });

describe('outOfWindow: what a capture pushes out of its series', () => {
  test('the oldest ones past the window, by time', () => {
    assert.deepEqual(outOfWindow(['a', '1', 'b', '2', 'c', '3'], 'd', 4, 3), ['a']);
    assert.deepEqual(outOfWindow(['a', '1', 'b', '2', 'c', '3'], 'd', 4, 2), ['a', 'b']);
    assert.deepEqual(outOfWindow(['a', '1'], 'b', 2, 3), [], 'a window not yet full pushes nothing out');
  });
  test('a retried capture (same id) replaces itself, and a capture older than the whole window is pushed out itself', () => {
    assert.deepEqual(outOfWindow(['a', '1', 'b', '2'], 'b', 2, 2), []);
    assert.deepEqual(outOfWindow(['b', '2', 'c', '3'], 'a', 1, 2), ['a']);
  });
  test('equal times go by id, as Redis orders equal scores (a profile that names one fixed time)', () => {
    assert.deepEqual(outOfWindow(['b', '5', 'c', '5'], 'a', 5, 2), ['a']);
    assert.deepEqual(outOfWindow(['a', '5', 'c', '5'], 'b', 5, 2), ['a']);
  });
});

describe('the flags', () => {
  test('--max-redis-bytes-per-namespace and --max-stored-profile-bytes are sizes', () => {
    const config = operatorConfig(['--max-redis-bytes-per-namespace', '96Mi', '--max-stored-profile-bytes', '8Mi']);
    assert.equal(config.ceilings?.maxRedisBytesPerNamespace, 96 * 1024 * 1024);
    assert.equal(config.ceilings?.maxStoredProfileBytes, 8 * 1024 * 1024);
    assert.throws(() => operatorConfig(['--max-stored-profile-bytes', 'lots']), /invalid size "lots"/);
  });
  test('a namespace budget below one summary could never keep anything, and is refused with both flags named', () => {
    assert.equal(inconsistentCeilings(DEFAULT_CEILINGS), undefined);
    assert.match(inconsistentCeilings({ ...DEFAULT_CEILINGS, maxRedisBytesPerNamespace: 1024 }) ?? '', /--max-redis-bytes-per-namespace \(1024\) must be at least --max-summary-bytes/);
    assert.throws(() => operatorConfig(['--max-redis-bytes-per-namespace', '1Mi', '--max-summary-bytes', '2Mi']), /--max-redis-bytes-per-namespace/);
  });
});

describe('the probe condition', () => {
  const budget = 96 * 1024 * 1024;
  test('none when the budget neither refused nor trimmed anything (a dropped profile past --max-stored-profile-bytes is not the budget)', () => {
    assert.equal(namespaceBudgetCondition([round('a'), round('b', { profileDropped: 'StoredProfileLimit' })], budget), undefined);
  });
  test('captures kept without their raw profile: Degraded NamespaceStoreBudget naming the budget and the flag', () => {
    const c = namespaceBudgetCondition([round('a', { profileDropped: 'NamespaceStoreBudget' }), round('b')], budget);
    assert.equal(c?.type, 'Degraded');
    assert.equal(c?.status, 'True');
    assert.equal(c?.reason, 'NamespaceStoreBudget');
    assert.match(c?.message ?? '', /^1 captures of this round were kept without their raw profile: .* 100663296 bytes \(--max-redis-bytes-per-namespace\)/);
  });
  test('refused captures say more than dropped profiles, and name no tenant string', () => {
    const c = namespaceBudgetCondition(
      [round('evil-\u001b[31m', { error: { reason: 'NamespaceStoreBudget', message: 'x' } }), round('b', { profileDropped: 'NamespaceStoreBudget' }), round('c')],
      budget,
    );
    assert.equal(c?.reason, 'NamespaceStoreBudget');
    assert.match(c?.message ?? '', /^1 of 3 targets' captures were not stored: .* 100663296 bytes \(--max-redis-bytes-per-namespace\)/);
    assert.doesNotMatch(c?.message ?? '', /evil/);
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { WorkQueue } from '../../src/controller/work-queue.js';

const tick = (ms = 5): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('work queue', () => {
  test('a key added many times while waiting is handled once', async () => {
    const queue = new WorkQueue();
    const seen: string[] = [];
    for (let i = 0; i < 5; i++) queue.add('a');
    queue.add('b');
    const running = queue.run(async (key) => void seen.push(key), () => undefined, 2);
    await tick(20);
    queue.stop();
    await running;
    assert.deepEqual(seen.sort(), ['a', 'b']);
  });

  test('lanes work in parallel, but one key never in two lanes; a change during processing runs it again after', async () => {
    const queue = new WorkQueue();
    let inFlight = 0;
    let maxInFlight = 0;
    const active = new Set<string>();
    const runs = new Map<string, number>();
    const running = queue.run(
      async (key) => {
        assert.ok(!active.has(key), `${key} in two lanes`);
        active.add(key);
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        runs.set(key, (runs.get(key) ?? 0) + 1);
        await tick(20);
        inFlight--;
        active.delete(key);
      },
      () => undefined,
      3,
    );
    for (const key of ['a', 'b', 'c', 'd']) queue.add(key);
    await tick(5);
    queue.add('a'); // while "a" is being processed
    await tick(80);
    queue.stop();
    await running;
    assert.equal(maxInFlight, 3);
    assert.equal(runs.get('a'), 2);
    assert.equal(runs.get('d'), 1);
  });

  test('a failing key comes back with backoff', async () => {
    const queue = new WorkQueue(10, 1000);
    let attempts = 0;
    const errors: string[] = [];
    const running = queue.run(
      async () => {
        attempts++;
        if (attempts < 3) throw new Error(`boom ${attempts}`);
      },
      (_key, err) => errors.push((err as Error).message),
    );
    queue.add('x');
    await tick(100);
    queue.stop();
    await running;
    assert.equal(attempts, 3);
    assert.deepEqual(errors, ['boom 1', 'boom 2']);
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { MapLeakProbe } from '../../src/api/types.js';
import { CAPTURE_QUEUE, schedulerId } from '../../src/queue/names.js';
import { desiredScheduler, ensureScheduler, removeScheduler, schedulerHasNextJob, stalledSchedulers } from '../../src/queue/schedulers.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';

function probe(name: string, interval: string, jitter = '0s', uid = `uid-${name}`): MapLeakProbe {
  return {
    apiVersion: 'mapleak.io/v1alpha1',
    kind: 'MapLeakProbe',
    metadata: { name, namespace: 'team-a', uid, generation: 1 },
    spec: { schedule: { interval, window: 12, jitter } } as MapLeakProbe['spec'],
  };
}

describe('job schedulers in a real Redis', () => {
  let redis: RedisServer;
  let connection: Redis;
  let queue: Queue;
  before(async () => {
    redis = await startRedis();
    connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    queue = new Queue(CAPTURE_QUEUE, { connection });
  });
  after(async () => {
    await queue.close();
    connection.disconnect();
    await redis.stop();
  });

  test('ids are valid BullMQ ids and name the probe', () => {
    assert.equal(schedulerId(probe('web', '5m')), 'team-a/web');
    assert.ok(!schedulerId(probe('web', '5m')).includes(':'));
  });

  test('jitter becomes a stable per-probe offset below the jitter', () => {
    const a = desiredScheduler(probe('a', '5m', '30s', 'uid-1'));
    const again = desiredScheduler(probe('a', '5m', '30s', 'uid-1'));
    const b = desiredScheduler(probe('b', '5m', '30s', 'uid-2'));
    assert.equal(a.every, 300_000);
    assert.equal(a.offset, again.offset);
    assert.ok(a.offset >= 0 && a.offset < 30_000 && b.offset < 30_000);
    assert.notEqual(a.offset, b.offset);
    assert.deepEqual(a.data, { namespace: 'team-a', name: 'a', uid: 'uid-1' });
  });

  test('created, then unchanged (idempotent), then updated, then removed', async () => {
    assert.equal(await ensureScheduler(queue, desiredScheduler(probe('web', '5s'))), 'created');
    assert.equal(await ensureScheduler(queue, desiredScheduler(probe('web', '5s'))), 'unchanged');
    const edited = probe('web', '5s');
    edited.metadata.generation = 2; // e.g. thresholds changed: the schedule did not
    assert.equal(await ensureScheduler(queue, desiredScheduler(edited)), 'unchanged');
    assert.equal(await ensureScheduler(queue, desiredScheduler(probe('web', '5s', '3s'))), 'updated', 'jitter changed');
    assert.equal(await ensureScheduler(queue, desiredScheduler(probe('web', '5s', '3s'))), 'unchanged');
    assert.equal((await queue.getJobSchedulers()).length, 1);
    assert.equal(await ensureScheduler(queue, desiredScheduler(probe('web', '7s'))), 'updated');
    assert.equal((await queue.getJobScheduler('team-a/web'))?.every, 7000);
    assert.equal((await queue.getJobSchedulers()).length, 1, 'updated in place, not duplicated');
    assert.equal(await removeScheduler(queue, 'team-a/web'), true);
    assert.equal(await queue.getJobScheduler('team-a/web'), undefined);
    assert.equal(await removeScheduler(queue, 'team-a/web'), false);
  });

  test('a scheduler whose next job was lost (a failover drops the last writes) is found and repaired', async () => {
    const desired = desiredScheduler(probe('lost', '1h'));
    assert.equal(await ensureScheduler(queue, desired), 'created');
    const before = await queue.getJobScheduler(desired.id);
    assert.ok(before && (await schedulerHasNextJob(queue, before)));
    // What a primary killed before replicating would leave: the scheduler without its next job
    // (BullMQ refuses to remove a scheduler's job, so its keys go as a lost write would).
    const jobId = `repeat:${desired.id}:${before.next}`;
    const base = `bull:${CAPTURE_QUEUE}`;
    await connection.multi().del(`${base}:${jobId}`).lrem(`${base}:wait`, 0, jobId).zrem(`${base}:delayed`, jobId).zrem(`${base}:prioritized`, jobId).exec();
    assert.equal(await schedulerHasNextJob(queue, before), false);
    assert.deepEqual(await stalledSchedulers(queue, await queue.getJobSchedulers()), new Set([desired.id]));
    assert.equal(await ensureScheduler(queue, desired), 'repaired');
    const after = await queue.getJobScheduler(desired.id);
    assert.ok(after && (await schedulerHasNextJob(queue, after)), 'a next job again');
    assert.equal(await ensureScheduler(queue, desired), 'unchanged');
    assert.deepEqual(await stalledSchedulers(queue, await queue.getJobSchedulers()), new Set());
    await removeScheduler(queue, desired.id);
  });
});

import type { Redis } from 'ioredis';
import type { AttributedSnapshot, SiteUsage } from '../analysis/attribute.js';
import type { GcCycle } from '../analysis/gctrace.js';
import type { MapImpl } from '../analysis/frames.js';
import type { Evidence } from '../analysis/attribute.js';
import type { TimedSnapshot } from '../analysis/series.js';

/** A capture as kept in Redis: the attributed summary, not the profile. */
interface StoredSnapshot {
  time: string;
  mapImpl: MapImpl;
  evidence: Evidence;
  totals: AttributedSnapshot['totals'];
  usages: SiteUsage[];
  allocBytesByFunction: Record<string, number>;
  memProfileRate?: number;
}

export interface TargetRecord {
  name: string;
  namespace: string;
  uid: string;
  lastCaptureTime?: string;
  lastError?: string;
  lastErrorReason?: string;
}

export interface CaptureRef {
  id: string;
  time: string;
  podUid: string;
}

/** Usages smaller than this in both in-use and allocated bytes are not kept: they never reach a finding. */
const KEEP_USAGE_BYTES = 64 * 1024;

/**
 * Each target's bounded series of captures, its gctrace cycles and its
 * last state, per probe. Writes are idempotent by capture id, so a retried
 * job never duplicates a capture.
 */
export class SeriesStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'mlp',
  ) {}

  private key(probe: string, ...parts: string[]): string {
    return [this.prefix, probe, ...parts].join(':');
  }

  async addCapture(
    probe: string,
    podUid: string,
    capture: { id: string; snapshot: TimedSnapshot; proto: Buffer },
    window: number,
    ttlSeconds: number,
  ): Promise<void> {
    await this.addStoredCapture(probe, podUid, { id: capture.id, time: capture.snapshot.time, json: storedSnapshotJson(capture.snapshot), proto: capture.proto }, window, ttlSeconds);
  }

  /** addCapture with the snapshot already in its stored form (storedSnapshotJson, made in the worker's analysis thread). */
  async addStoredCapture(
    probe: string,
    podUid: string,
    capture: { id: string; time: Date; json: string | Buffer; proto: Buffer },
    window: number,
    ttlSeconds: number,
  ): Promise<void> {
    const series = this.key(probe, 't', podUid, 'series');
    await this.redis
      .multi()
      .set(this.key(probe, 'c', capture.id), capture.json, 'EX', ttlSeconds)
      .set(this.key(probe, 'p', capture.id), capture.proto, 'EX', ttlSeconds)
      .zadd(series, capture.time.getTime(), capture.id)
      .expire(series, ttlSeconds)
      .exec();
    // Captures that fell out of the window go at once, profiles included.
    const expired = await this.redis.zrange(series, '0', String(-(window + 1)));
    if (expired.length > 0) {
      const pipeline = this.redis.multi().zrem(series, ...expired);
      for (const id of expired) pipeline.del(this.key(probe, 'c', id), this.key(probe, 'p', id));
      await pipeline.exec();
    }
  }

  async captures(probe: string, podUid: string): Promise<CaptureRef[]> {
    const entries = await this.redis.zrange(this.key(probe, 't', podUid, 'series'), '0', '-1', 'WITHSCORES');
    const refs: CaptureRef[] = [];
    for (let i = 0; i < entries.length; i += 2) {
      refs.push({ id: entries[i] as string, time: new Date(Number(entries[i + 1])).toISOString(), podUid });
    }
    return refs;
  }

  async loadSeries(probe: string, podUid: string): Promise<TimedSnapshot[]> {
    return (await this.loadSeriesJson(probe, podUid)).map(parseStoredSnapshot);
  }

  /** The series as stored (UTF-8 JSON, oldest first), for a caller that parses it elsewhere (the worker's analysis thread). */
  async loadSeriesJson(probe: string, podUid: string): Promise<Buffer[]> {
    const refs = await this.captures(probe, podUid);
    if (refs.length === 0) return [];
    const raw = await this.redis.mgetBuffer(...refs.map((r) => this.key(probe, 'c', r.id)));
    return raw.filter((json): json is Buffer => json !== null);
  }

  async profile(probe: string, captureId: string): Promise<Buffer | null> {
    return this.redis.getBuffer(this.key(probe, 'p', captureId));
  }

  async recordTarget(probe: string, record: TargetRecord, ttlSeconds: number): Promise<void> {
    const key = this.key(probe, 'targets');
    await this.redis.multi().hset(key, record.uid, JSON.stringify(record)).expire(key, ttlSeconds).exec();
  }

  async targets(probe: string): Promise<TargetRecord[]> {
    const all = await this.redis.hgetall(this.key(probe, 'targets'));
    return Object.values(all).map((json) => JSON.parse(json) as TargetRecord);
  }

  /** Drops what is kept for pods that no longer exist. */
  async forgetTargetsExcept(probe: string, liveUids: ReadonlySet<string>): Promise<number> {
    const key = this.key(probe, 'targets');
    const gone = Object.keys(await this.redis.hgetall(key)).filter((uid) => !liveUids.has(uid));
    if (gone.length === 0) return 0;
    const pipeline = this.redis.multi().hdel(key, ...gone);
    for (const uid of gone) pipeline.del(this.key(probe, 't', uid, 'series'), this.key(probe, 't', uid, 'gc'));
    await pipeline.exec();
    return gone.length;
  }

  /** gctrace cycles seen so far (bounded) and the log time read up to. */
  async gc(probe: string, podUid: string): Promise<{ cycles: GcCycle[]; readUntil?: string }> {
    const json = await this.redis.get(this.key(probe, 't', podUid, 'gc'));
    return json ? (JSON.parse(json) as { cycles: GcCycle[]; readUntil?: string }) : { cycles: [] };
  }

  async saveGc(probe: string, podUid: string, state: { cycles: GcCycle[]; readUntil?: string }, maxCycles: number, ttlSeconds: number): Promise<void> {
    const bounded = { ...state, cycles: state.cycles.slice(-maxCycles) };
    await this.redis.set(this.key(probe, 't', podUid, 'gc'), JSON.stringify(bounded), 'EX', ttlSeconds);
  }

  /** When each finding was first seen; new keys are stamped `now`. */
  async firstSeen(probe: string, keys: readonly string[], now: Date, ttlSeconds: number): Promise<Map<string, string>> {
    const hash = this.key(probe, 'firstseen');
    if (keys.length === 0) return new Map();
    const pipeline = this.redis.multi();
    for (const k of keys) pipeline.hsetnx(hash, k, now.toISOString());
    pipeline.expire(hash, ttlSeconds);
    pipeline.hmget(hash, ...keys);
    const results = await pipeline.exec();
    const values = (results?.[results.length - 1]?.[1] ?? []) as (string | null)[];
    return new Map(keys.map((k, i) => [k, values[i] ?? now.toISOString()]));
  }

  /** Everything kept for a probe (on delete). */
  async forgetProbe(probe: string): Promise<number> {
    let cursor = '0';
    let deleted = 0;
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.prefix}:${probe}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) deleted += await this.redis.del(...keys);
    } while (cursor !== '0');
    return deleted;
  }
}

/** A capture as the store keeps it: the attributed summary, usages too small to reach a finding left out. */
export function storedSnapshotJson(snapshot: TimedSnapshot): string {
  const stored: StoredSnapshot = {
    time: snapshot.time.toISOString(),
    mapImpl: snapshot.mapImpl,
    evidence: snapshot.evidence,
    totals: snapshot.totals,
    usages: snapshot.usages.filter((u) => u.inuseBytes >= KEEP_USAGE_BYTES || u.allocBytes >= KEEP_USAGE_BYTES),
    allocBytesByFunction: Object.fromEntries(snapshot.allocBytesByFunction),
    ...(snapshot.memProfileRate ? { memProfileRate: snapshot.memProfileRate } : {}),
  };
  return JSON.stringify(stored);
}

/** One stored capture (loadSeriesJson), as the engine reads it. */
export function parseStoredSnapshot(json: Uint8Array): TimedSnapshot {
  const s = JSON.parse(Buffer.from(json.buffer, json.byteOffset, json.byteLength).toString('utf8')) as StoredSnapshot;
  return {
    time: new Date(s.time),
    mapImpl: s.mapImpl,
    evidence: s.evidence,
    totals: s.totals,
    usages: s.usages,
    allocBytesByFunction: new Map(Object.entries(s.allocBytesByFunction)),
    ...(s.memProfileRate ? { memProfileRate: s.memProfileRate } : {}),
  };
}

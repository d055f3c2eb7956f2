import type { RedisClient } from '../queue/connection.js';

/**
 * Slack on every entry's expiry, past the TTL of the keys it stands for: on
 * a Redis Cluster the ledger and the probe's keys may live on two primaries
 * whose clocks differ a little; an entry that outlives its keys by this
 * much over-counts, one that died first would under-count.
 */
export const LEDGER_EXPIRY_SLACK_MS = 2_000;

/** Stale entries one script call drops at most (the next call drops more), so no call holds Redis long. */
const PRUNE_BATCH = 256;

/**
 * Shared head of the ledger scripts. KEYS[1]: sorted set entry → expiry
 * (ms, server time); KEYS[2]: hash entry → bytes; KEYS[3]: the total;
 * KEYS[4]: set of entries credited to a write in flight (they still count,
 * but no other write may credit them). Drops entries past their expiry
 * (their keys have expired: TTLs run no code of ours), and rebuilds the
 * total from the hash if it is missing while entries are not, so the
 * count corrects itself.
 */
const LEDGER_HEAD = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local total = tonumber(redis.call('GET', KEYS[3]) or '-1')
if total < 0 then
  total = 0
  local all = redis.call('HVALS', KEYS[2])
  for i = 1, #all do total = total + tonumber(all[i]) end
end
local function drop(entry)
  local bytes = redis.call('HGET', KEYS[2], entry)
  if bytes then total = total - tonumber(bytes) end
  redis.call('HDEL', KEYS[2], entry)
  redis.call('ZREM', KEYS[1], entry)
  redis.call('SREM', KEYS[4], entry)
end
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ${PRUNE_BATCH})
for i = 1, #stale do drop(stale[i]) end
local function finish()
  if redis.call('ZCARD', KEYS[1]) == 0 then
    redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
    return 0
  end
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  local ttl = math.max(1, tonumber(last[2]) - now)
  redis.call('SET', KEYS[3], total, 'PX', ttl)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('PEXPIRE', KEYS[4], ttl) end
  return total
end
`;

/**
 * ARGV: budget (bytes, -1: none), entry, summary bytes, profile bytes,
 * TTL (ms), then the entries the write replaces (captures that fall out of
 * the window with it). Their bytes are credited, and they are marked so
 * that no other write credits them too; they still count until the write
 * has deleted them (RELEASE). Takes room for both parts when they fit,
 * else the summary alone, else nothing. Reply: {kept (2: both, 1: the
 * summary, 0: refused), the total after, the credited entries...}.
 */
const RESERVE = `${LEDGER_HEAD}
local budget = tonumber(ARGV[1])
local entry = ARGV[2]
local previous = tonumber(redis.call('HGET', KEYS[2], entry) or '0')
local freed = previous
local credited = {}
for i = 6, #ARGV do
  local bytes = redis.call('HGET', KEYS[2], ARGV[i])
  if bytes and ARGV[i] ~= entry and redis.call('SISMEMBER', KEYS[4], ARGV[i]) == 0 then
    freed = freed + tonumber(bytes)
    credited[#credited + 1] = ARGV[i]
  end
end
local room = budget - (total - freed)
local kept = 2
local bytes = tonumber(ARGV[3]) + tonumber(ARGV[4])
if budget >= 0 and bytes > room then
  kept = 1
  bytes = tonumber(ARGV[3])
  if bytes > room then return {0, finish()} end
end
if #credited > 0 then redis.call('SADD', KEYS[4], unpack(credited)) end
total = total - previous + bytes
redis.call('HSET', KEYS[2], entry, bytes)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), entry)
local reply = {kept, finish()}
for i = 1, #credited do reply[#reply + 1] = credited[i] end
return reply`;

/**
 * Scripts that only free may run while Redis is at maxmemory, as DEL does:
 * a probe deleted to make room must leave the count too (without the flag
 * Redis refuses a script at its first denyoom write, here the total's SET).
 */
const ALLOW_OOM = '#!lua flags=allow-oom';

/** ARGV: entries whose keys are gone (deleted by us, or never written). Reply: the total after. */
const RELEASE = `${ALLOW_OOM}${LEDGER_HEAD}
for i = 1, #ARGV do drop(ARGV[i]) end
return finish()`;

/** ARGV: entries credited to a write that failed: they may be credited again. Reply: the total. */
const UNMARK = `${ALLOW_OOM}${LEDGER_HEAD}
redis.call('SREM', KEYS[4], unpack(ARGV))
return finish()`;

/** ARGV: TTL (ms), then entries whose keys now live that long (pinned by an incident); an expiry only ever moves later. Reply: the total. */
const EXTEND = `${LEDGER_HEAD}
local expiry = now + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', 'GT', expiry, ARGV[i]) end
return finish()`;

/** No change: the total once stale entries are dropped (read at every scrape, so it runs at maxmemory too: it only frees, and rewrites the total). */
const TOTAL = `${ALLOW_OOM}${LEDGER_HEAD}
return finish()`;

/** What a reservation kept room for. */
export type Reserved = 'both' | 'summary' | 'none';

export interface Reservation {
  kept: Reserved;
  /** The namespace's ledger total after the reservation. */
  total: number;
  /** Entries the reservation credited: released once the write deleted them, unmarked if it failed. */
  credited: string[];
}

/**
 * The Redis bytes of one namespace's kept captures (summary and raw
 * profile), across all its probes: one entry per capture, `<probe
 * name>/<capture id>`, with its bytes and the time its keys expire.
 *
 * Its keys carry the namespace as their own hash tag (`{ns:<namespace>}`),
 * so each script below is atomic in standalone, sentinel and cluster mode
 * alike; a probe's keys live in another slot (`{<namespace>/<name>}`),
 * so the ledger is kept an upper bound of them by ordering: room is
 * reserved before the capture is written, and given back only after its
 * keys are deleted (or its write failed). What can still differ, and in
 * which direction, is written where it happens (SeriesStore.keepCapture).
 */
export class NamespaceLedger {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  private keys(namespace: string): [string, string, string, string] {
    const tag = `${this.prefix}:{ns:${namespace}}`;
    return [`${tag}:stored`, `${tag}:stored-bytes`, `${tag}:stored-total`, `${tag}:stored-credited`];
  }

  static entry(probeName: string, captureId: string): string {
    return `${probeName}/${captureId}`;
  }

  /** Room for one capture's parts within `budget` (Infinity: always), crediting the captures it replaces. */
  async reserve(namespace: string, entry: string, parts: { summary: number; profile: number }, ttlMs: number, budget: number, replaces: readonly string[]): Promise<Reservation> {
    const reply = (await this.redis.eval(RESERVE, 4, ...this.keys(namespace), Number.isFinite(budget) ? budget : -1, entry, parts.summary, parts.profile, Math.ceil(ttlMs) + LEDGER_EXPIRY_SLACK_MS, ...replaces)) as (string | number)[];
    const kept = Number(reply[0]);
    const credited = reply.slice(2).map(String);
    return { kept: kept === 2 ? 'both' : kept === 1 ? 'summary' : 'none', total: Number(reply[1]), credited };
  }

  /** Entries whose keys are gone (deleted by us, or a write that never happened). */
  async release(namespace: string, entries: readonly string[]): Promise<number> {
    if (entries.length === 0) return this.total(namespace);
    return Number(await this.redis.eval(RELEASE, 4, ...this.keys(namespace), ...entries));
  }

  /** Entries credited to a write that failed: their keys are still there, and another write may credit them. */
  async unmark(namespace: string, credited: readonly string[]): Promise<number> {
    if (credited.length === 0) return this.total(namespace);
    return Number(await this.redis.eval(UNMARK, 4, ...this.keys(namespace), ...credited));
  }

  /** Entries whose keys now live `ttlMs` from now (pinned); an expiry is only ever moved later. */
  async extend(namespace: string, entries: readonly string[], ttlMs: number): Promise<number> {
    if (entries.length === 0) return this.total(namespace);
    return Number(await this.redis.eval(EXTEND, 4, ...this.keys(namespace), Math.ceil(ttlMs) + LEDGER_EXPIRY_SLACK_MS, ...entries));
  }

  /** The namespace's kept bytes as the ledger counts them (stale entries dropped first). */
  async total(namespace: string): Promise<number> {
    return Number(await this.redis.eval(TOTAL, 4, ...this.keys(namespace)));
  }
}

import { randomBytes } from 'node:crypto';
import type { RedisClient } from '../queue/connection.js';

/**
 * How long a slot lease lives without renewal: BullMQ's job lock
 * (worker.ts LOCK_DURATION_MS). A worker that dies gives its slots back
 * about when BullMQ gives its jobs to another worker, not surely before:
 * lock and lease are renewed on timers of their own (every 7.5–15 s, every
 * 10 s), so the lease of a killed round can outlive its job's lock by
 * seconds. The round's own retry does not wait for it: it takes the lease
 * over (acquire's `resumed`); the namespace's other rounds do.
 */
export const SLOT_LEASE_MS = 30_000;

/**
 * The default share of one namespace: half of a worker's slots, rounded up
 * (1 of 1, 1 of 2, 2 of 4), so one namespace never holds every slot of a
 * worker and, over several replicas, at most half of one worker's.
 */
export function defaultRoundsPerNamespace(concurrency: number): number {
  return Math.max(1, Math.ceil(concurrency / 2));
}

/** A holder is `<self>:<job id>`, self being this many random bytes in hex: the job id starts at a fixed place (a job id may hold colons). */
const HOLDER_SELF_BYTES = 6;
/** Where the job id starts in a holder, 1-based for Lua's string.sub. */
const HOLDER_ROUND_AT = HOLDER_SELF_BYTES * 2 + 2;

export interface NamespaceSlotsOptions {
  /** A client of the queue's Redis (the leases live beside the jobs, so every replica sees them). */
  client: RedisClient;
  /** Rounds one namespace may run at once over every worker sharing this Redis (--max-active-rounds-per-namespace). */
  perNamespace: number;
  /** Lease lifetime; renewed every third of it while the round runs (default SLOT_LEASE_MS). */
  leaseMs?: number;
  /** Key prefix (default `mlp:active-rounds:`). */
  keyPrefix?: string;
  /** A resumed round took over `count` leases a dead worker left for it (the operator logs it). */
  onTakeOver?: (namespace: string, count: number) => void;
}

/** A granted slot: give it back with release() when the round ends. */
export interface SlotLease {
  readonly namespace: string;
  release(): Promise<void>;
}

/**
 * Takes a slot if the namespace holds fewer than `limit` live leases (or
 * this holder already has one). One sorted set per namespace: member = the
 * holder (`<process>:<job id>`), score = when its lease expires, in the
 * Redis server's clock, so the replicas' clocks never have to agree.
 * Expired leases (a worker that died) are dropped first. With `takeOver`
 * (the job was given back by BullMQ's stalled check, so the caller holds
 * the job's lock now and the lease's first holder lost it) a lease another
 * process holds for the same job is dropped too: it is this round's own,
 * left by a dead worker. A lease naming any other job is never touched.
 * Single key, so it runs on a Redis Cluster too.
 */
const ACQUIRE = `
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local holder = ARGV[3]
local takeOver = ARGV[4] == '1'
local roundAt = tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
local round = string.sub(holder, roundAt)
local taken = 0
if takeOver then
  for _, member in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    if member ~= holder and string.sub(member, roundAt) == round then
      redis.call('ZREM', key, member)
      taken = taken + 1
    end
  end
end
local held = redis.call('ZCARD', key)
if redis.call('ZSCORE', key, holder) or held < limit then
  redis.call('ZADD', key, now + ttl, holder)
  redis.call('PEXPIRE', key, ttl)
  return {1, redis.call('ZCARD', key), taken}
end
return {0, held, taken}
`;

/**
 * Extends the leases of holders whose rounds still run. A lease that lapsed
 * meanwhile (the event loop stalled past the lease) is put back: the round
 * does run, and the count is what other workers judge by. Unless another
 * process now holds a lease for the same job: the stalled check gave the
 * job to it, which took this lease over (ACQUIRE's takeOver), and this
 * round, which lost its job lock, must not count twice. Returns those.
 */
const RENEW = `
local key = KEYS[1]
local ttl = tonumber(ARGV[1])
local roundAt = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
local members = redis.call('ZRANGE', key, 0, -1)
local function takenOver(holder)
  local round = string.sub(holder, roundAt)
  for _, member in ipairs(members) do
    if member ~= holder and string.sub(member, roundAt) == round then return true end
  end
  return false
end
local lost = {}
for i = 3, #ARGV do
  if takenOver(ARGV[i]) then
    table.insert(lost, ARGV[i])
  else
    redis.call('ZADD', key, now + ttl, ARGV[i])
  end
end
redis.call('PEXPIRE', key, ttl)
return lost
`;

/** Live leases of one namespace, by the server's clock. */
const ACTIVE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
`;

/**
 * Per-namespace shares of the capture workers' slots, across every worker
 * replica: a round takes a lease in Redis before it runs, renewed while it
 * runs and given back when it ends; a dead worker's leases lapse after
 * `leaseMs`. A round that finds its namespace's share taken is not run (the
 * worker puts its job back, see worker.ts).
 */
export class NamespaceSlots {
  readonly perNamespace: number;
  readonly leaseMs: number;
  private readonly keyPrefix: string;
  /** This process's part of every holder name (`<self>:<job id>`): two workers never share a holder. */
  private readonly self = randomBytes(HOLDER_SELF_BYTES).toString('hex');
  /** namespace → holders of this process with a live lease. */
  private readonly held = new Map<string, Set<string>>();
  private readonly renewTimer: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly options: NamespaceSlotsOptions) {
    if (!(Number.isInteger(options.perNamespace) && options.perNamespace >= 1)) throw new Error('perNamespace must be a whole number >= 1');
    this.perNamespace = options.perNamespace;
    this.leaseMs = options.leaseMs ?? SLOT_LEASE_MS;
    this.keyPrefix = options.keyPrefix ?? 'mlp:active-rounds:';
    this.renewTimer = setInterval(() => void this.renew().catch(() => undefined), Math.max(100, Math.floor(this.leaseMs / 3)));
    this.renewTimer.unref();
  }

  /** Rounds of `namespace` running now over all workers (live leases). */
  async active(namespace: string): Promise<number> {
    return (await this.options.client.eval(ACTIVE, 1, this.key(namespace))) as number;
  }

  /**
   * A lease for one round of `namespace` named by `round` (its job id), or
   * undefined when the namespace's share is taken. With `resumed` (the job
   * came back from BullMQ's stalled check: resumedRound in
   * deferred-rounds.ts) the lease a dead worker left for this same job is
   * taken over at once instead of waited out. Rejects when Redis has not
   * answered within `timeoutMs`; a grant that arrives later is given back
   * at once, so it is never renewed without a round behind it.
   */
  async acquire(namespace: string, round: string, timeoutMs = Number.POSITIVE_INFINITY, options: { resumed?: boolean } = {}): Promise<SlotLease | undefined> {
    if (this.closed) throw new Error('namespace slots closed');
    const holder = `${this.self}:${round}`;
    const asked = this.options.client.eval(ACQUIRE, 1, this.key(namespace), this.perNamespace, this.leaseMs, holder, options.resumed ? '1' : '0', HOLDER_ROUND_AT) as Promise<[number, number, number]>;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      if (Number.isFinite(timeoutMs)) timer = setTimeout(() => resolve('late'), timeoutMs);
    });
    const answer = await Promise.race([asked, late]).finally(() => clearTimeout(timer));
    if (answer === 'late') {
      void asked
        .then(async ([granted]) => {
          if (granted === 1) await this.options.client.zrem(this.key(namespace), holder);
        })
        .catch(() => undefined);
      throw new Error(`no answer from Redis within ${timeoutMs} ms`);
    }
    if (answer[2] > 0) this.options.onTakeOver?.(namespace, answer[2]);
    if (answer[0] !== 1) return undefined;
    let holders = this.held.get(namespace);
    if (!holders) this.held.set(namespace, (holders = new Set()));
    holders.add(holder);
    let released = false;
    return {
      namespace,
      release: async () => {
        if (released) return;
        released = true;
        const set = this.held.get(namespace);
        set?.delete(holder);
        if (set?.size === 0) this.held.delete(namespace);
        await this.options.client.zrem(this.key(namespace), holder);
      },
    };
  }

  /** Stops renewing. Leases still held lapse on their own (a graceful stop releases each round's lease as it ends). */
  close(): void {
    this.closed = true;
    clearInterval(this.renewTimer);
  }

  private async renew(): Promise<void> {
    await Promise.all(
      [...this.held].map(async ([namespace, holders]) => {
        const lost = (await this.options.client.eval(RENEW, 1, this.key(namespace), this.leaseMs, HOLDER_ROUND_AT, ...holders)) as string[];
        // Taken over by the job's new worker: this round's own release is a no-op then, and it is not renewed again.
        for (const holder of lost) holders.delete(holder);
        if (holders.size === 0) this.held.delete(namespace);
      }),
    );
  }

  private key(namespace: string): string {
    return `${this.keyPrefix}${namespace}`;
  }
}

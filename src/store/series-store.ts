import type { Redis } from 'ioredis';
import { primaries, type RedisClient } from '../queue/connection.js';
import { usageKey, type AttributedSnapshot, type Evidence, type SiteUsage } from '../analysis/attribute.js';
import type { GcCycle } from '../analysis/gctrace.js';
import type { MapImpl } from '../analysis/frames.js';
import type { SeriesAnalysis, TimedSnapshot } from '../analysis/series.js';
import type { IncidentStatus } from '../api/types.js';
import { isStoreFull } from '../observability/connection-errors.js';
import { capAllocByFunction, capUsages, DEFAULT_SUMMARY_CAPS, pinsOverBudget, type SummaryCaps } from './summary-caps.js';
import { NamespaceLedger } from './namespace-ledger.js';
import { NamespaceStoreBudgetError } from './store-budget.js';

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
  /** The pod's uid. */
  uid: string;
  /** Key of the series of the container instance (absent: the pod's uid, as for restart 0). */
  series?: string;
  /** The container's restartCount when the series started. */
  restartCount?: number;
  lastCaptureTime?: string;
  lastError?: string;
  lastErrorReason?: string;
  /** The instance of this series ended in a pod still Running and its incident is recorded (endInRunningPod): not again, nor when the pod goes. */
  endRecorded?: true;
}

export interface CaptureRef {
  id: string;
  time: string;
  podUid: string;
}

/** An incident as kept: what the status shows, plus what the API needs to serve its captures. */
export interface StoredIncident extends IncidentStatus {
  podUid: string;
  /** The pinned captures, oldest first (their ids are `captureIds`). */
  captures: CaptureRef[];
}

/** What one stored capture took, in bytes of the values written (keys and Redis' own overhead not counted). */
export interface StoredCaptureBytes {
  summary: number;
  profile: number;
}

export interface SeriesStoreOptions extends StoreLimits {
  /** Told the size of every capture written (for /metrics). */
  onCaptureStored?: (bytes: StoredCaptureBytes) => void;
}

/** What keepCapture may keep (the worker passes the admin's ceilings; these are the defaults for other callers). */
export interface StoreLimits {
  /** Redis bytes one namespace's kept captures (summaries and raw profiles, pinned ones included) and its series' gctrace and analyses may take (--max-redis-bytes-per-namespace; default: no limit). */
  maxBytesPerNamespace?: number;
  /** Largest raw profile stored with a capture; a larger one is not kept, its summary is (--max-stored-profile-bytes; default: no limit). */
  maxStoredProfileBytes?: number;
}

/**
 * What keepCapture did: `kept`, with its raw profile or without it (past
 * the namespace's budget, or past the stored-profile limit: the summary is
 * what verdicts need); `fenced`: the round's probe no longer owns its keys
 * (nothing written); `outside-window`: older than every capture the window
 * keeps (nothing written). Past the budget even without the profile it
 * throws NamespaceStoreBudgetError.
 */
/** What saveGc and saveAnalysis did: `over-budget` leaves the previous value (the namespace's budget is taken). */
export type KeptValue = 'kept' | 'over-budget' | 'fenced';

export type KeptCapture = { kind: 'kept'; profile: 'kept' | 'over-namespace-budget' | 'over-stored-profile-limit' } | { kind: 'fenced' } | { kind: 'outside-window' };

/**
 * A probe as one round of it writes: its store key and the owner token of
 * the probe object it started with. Writes made under a token that no
 * longer owns the key (the probe was deleted, or deleted and re-created
 * under the same name, while the round ran) change nothing. A plain
 * "namespace/name" writes unfenced (tests, benchmarks, tools).
 */
export interface FencedProbe {
  key: string;
  owner: string;
}

export type ProbeRef = string | FencedProbe;

/** The owner token of a probe object: its uid, and its creation time so that a stale round can never take the name from a newer probe. */
export function fencedProbe(probe: { metadata: { namespace: string; name: string; uid: string; creationTimestamp?: string } }): FencedProbe {
  return { key: `${probe.metadata.namespace}/${probe.metadata.name}`, owner: `${probe.metadata.uid}|${probe.metadata.creationTimestamp ?? ''}` };
}

/** What a round's claim on its probe's keys found. */
export type ClaimOutcome = 'owned' | 'claimed' | 'taken-over' | 'newer-owner';

type CommandArg = string | Buffer | number;
type Command = [string, ...CommandArg[]];

/**
 * KEYS[1]: the probe's owner key; KEYS[2], when given: a key whose presence
 * means the writes were made before (2: nothing written). ARGV[1]: the
 * writer's token ('' for an unfenced write); then each command as its length
 * and its words. Runs them only while the token owns the key (0 when not):
 * the check and the writes are one atomic step.
 */
const FENCED_WRITE = `
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if #KEYS > 1 and redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 1`;

/**
 * KEYS[1]: the owner key; ARGV: token, its creation time, TTL. 0: already
 * the owner; 1: no owner (a new probe, or keys from before owner keys:
 * adopted as they are); 2: took the key from an older probe of the same
 * name; -1: a probe created later owns it (this round's probe is gone).
 */
const CLAIM = `
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then redis.call('EXPIRE', KEYS[1], ARGV[3]) return 0 end
if current then
  local created = string.match(current, '|(.*)$') or ''
  if created > ARGV[2] then return -1 end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
if current then return 2 end
return 1`;

/** KEYS[1]: the owner key; ARGV[1]: a token or '' (no owner); then keys to delete, only while that is still so. */
const DELETE_WHILE_OWNER = `
local current = redis.call('GET', KEYS[1])
if (ARGV[1] == '' and current) or (ARGV[1] ~= '' and current ~= ARGV[1]) then return -1 end
if #ARGV < 2 then return 0 end
return redis.call('DEL', unpack(ARGV, 2))`;

/** KEYS[1]: the owner key; KEYS[2]: the said key; ARGV: token, TTL. 1: said now; 0: said before; -1: the token does not own the probe's keys. */
const FENCED_FIRST_TIME = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('SET', KEYS[2], '1', 'EX', ARGV[2], 'NX') then return 1 end
return 0`;

/** KEYS[1]: the owner key; ARGV[1]: a token. Gives the key up if the token owns it. */
const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1`;

/**
 * Each target's bounded series of captures, its gctrace cycles and its
 * last state, per probe. Writes are idempotent by capture id, so a retried
 * job never duplicates a capture.
 *
 * Key layout: `<prefix>:{<namespace>/<name>}:<part>...`. The braces are a
 * Redis Cluster hash tag: every key of one probe is in one hash slot, so
 * the MULTI blocks below stay valid on a cluster, and probes spread over
 * the cluster's primaries.
 */
export class SeriesStore {
  /** Bytes of each namespace's kept captures (namespace-ledger.ts). */
  private readonly ledger: NamespaceLedger;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix = 'mlp',
    private readonly options: SeriesStoreOptions = {},
  ) {
    this.ledger = new NamespaceLedger(redis, prefix);
  }

  /** The bytes a namespace's kept captures take, as its ledger counts them (an upper bound of their STRLENs). */
  async namespaceBytes(namespace: string): Promise<number> {
    return this.ledger.total(namespace);
  }

  private key(probe: ProbeRef, ...parts: string[]): string {
    return [this.prefix, `{${typeof probe === 'string' ? probe : probe.key}}`, ...parts].join(':');
  }

  /** The writes of one step: a MULTI, or for a fenced probe one script that runs them only while its token owns the probe's keys. */
  private async write(probe: ProbeRef, commands: Command[]): Promise<boolean> {
    if (commands.length === 0) return true;
    if (typeof probe === 'string') {
      await this.redis.multi(commands).exec();
      return true;
    }
    return (await this.writeScript(probe, commands)) === 'written';
  }

  /** FENCED_WRITE: fenced for a FencedProbe (unfenced for a plain key), and once only when `unlessExists` is given. */
  private async writeScript(probe: ProbeRef, commands: Command[], unlessExists?: string): Promise<'written' | 'written-before' | 'fenced'> {
    // An empty token is the unfenced write's: a fenced probe never has one (fencedProbe), and never passes unchecked.
    if (typeof probe !== 'string' && probe.owner === '') return 'fenced';
    const args: CommandArg[] = [typeof probe === 'string' ? '' : probe.owner];
    for (const command of commands) args.push(command.length, ...command);
    const keys = [this.key(probe, 'owner'), ...(unlessExists ? [unlessExists] : [])];
    const outcome = Number(await this.redis.eval(FENCED_WRITE, keys.length, ...keys, ...args));
    return outcome === 1 ? 'written' : outcome === 2 ? 'written-before' : 'fenced';
  }

  /**
   * Makes this round's probe object the owner of its name's keys before it
   * reads or writes any (TTL: as long as anything it keeps may live). When
   * an older probe of the same name still owns them (deleted and
   * re-created while a round of it ran), what it left is deleted first, so
   * the new probe starts with nothing of the old one.
   */
  async claim(probe: FencedProbe, ttlSeconds: number): Promise<ClaimOutcome> {
    const created = probe.owner.slice(probe.owner.indexOf('|') + 1);
    const outcome = Number(await this.redis.eval(CLAIM, 1, this.key(probe, 'owner'), probe.owner, created, Math.max(1, Math.ceil(ttlSeconds))));
    if (outcome === -1) return 'newer-owner';
    if (outcome === 0) return 'owned';
    if (outcome === 1) return 'claimed';
    await this.deleteKeysOf(probe, probe.owner);
    return 'taken-over';
  }

  /**
   * What a round whose probe went away (deleted, or replaced under the same
   * name) wrote: deleted only while its token still owns the keys, so a
   * stale round can never wipe what a new probe of the same name keeps.
   * The owner key goes last: a new probe that claims the name meanwhile
   * takes it over (and deletes the rest itself) instead of adopting half.
   */
  async forgetOwn(probe: FencedProbe): Promise<number> {
    if ((await this.redis.get(this.key(probe, 'owner'))) !== probe.owner) return 0;
    const deleted = await this.deleteKeysOf(probe, probe.owner);
    return deleted + Number(await this.redis.eval(RELEASE, 1, this.key(probe, 'owner'), probe.owner));
  }

  /**
   * The controller's clean-up of a probe that is gone (deleted, or a 404 for
   * its name): what the probe object that owns the name's keys kept, only
   * when `isGone` confirms that object is gone (by its uid: the API server,
   * not a cache that may be stale), and only while it still owns them. A
   * clean-up that runs late (a stale watch event, a 404 read just before
   * the name was taken again) never deletes a newer probe's keys. Keys
   * with no owner (from before owner keys) are deleted while none claims them.
   */
  async forgetGoneProbe(probe: string, isGone: (ownerUid: string) => Promise<boolean>): Promise<number> {
    const owner = await this.redis.get(this.key(probe, 'owner'));
    if (owner === null) return this.deleteKeysOf({ key: probe, owner: '' }, '');
    const bar = owner.indexOf('|');
    if (!(await isGone(bar < 0 ? owner : owner.slice(0, bar)))) return 0;
    return this.forgetOwn({ key: probe, owner });
  }

  /** Deletes the probe's keys but its owner key, stopping if `owner` ('' for none) stops being the owner (a newer probe claimed them meanwhile). */
  private async deleteKeysOf(probe: FencedProbe, owner: string): Promise<number> {
    const ownerKey = this.key(probe, 'owner');
    let deleted = 0;
    for await (const { node, keys } of this.scan(`${this.prefix}:{${globEscape(probe.key)}}:*`)) {
      const doomed = keys.filter((k) => k !== ownerKey);
      if (doomed.length === 0) continue;
      const result = Number(await node.eval(DELETE_WHILE_OWNER, 1, ownerKey, owner, ...doomed));
      if (result < 0) return deleted;
      deleted += result;
      await this.releaseDeleted(probe, doomed);
    }
    return deleted;
  }

  async addCapture(
    probe: ProbeRef,
    podUid: string,
    capture: { id: string; snapshot: TimedSnapshot; proto: Buffer },
    window: number,
    ttlSeconds: number,
  ): Promise<void> {
    await this.addStoredCapture(probe, podUid, { id: capture.id, time: capture.snapshot.time, json: storedSnapshotJson(capture.snapshot), proto: capture.proto }, window, ttlSeconds);
  }

  /** addCapture with the snapshot already in its stored form (storedSnapshotJson, made in the worker's analysis thread). False when the probe's round is fenced out (nothing was written). */
  async addStoredCapture(
    probe: ProbeRef,
    podUid: string,
    capture: { id: string; time: Date; json: string | Buffer; proto: Buffer },
    window: number,
    ttlSeconds: number,
  ): Promise<boolean> {
    return (await this.keepCapture(probe, podUid, capture, window, ttlSeconds)).kind !== 'fenced';
  }

  /**
   * Stores one capture in its series, within its namespace's byte budget:
   * room is reserved in the namespace's ledger first (crediting the
   * captures it pushes out of the window), then the capture and the
   * pushed-out deletions are one fenced write, then the ledger lets the
   * deleted ones go. So the ledger never counts less than the namespace's
   * `c:`/`p:` keys hold (nor more, once writes settle), in every Redis
   * mode, though the two live in different hash slots. It counts more
   * while writes are in flight, and after a failed write whose give-back
   * failed too (until the entry's expiry). It counts less only for keys
   * written before the ledger existed, and when a retried capture (same
   * id, already kept) fails to write: its earlier bytes leave with the
   * reservation's.
   */
  async keepCapture(
    probe: ProbeRef,
    podUid: string,
    capture: { id: string; time: Date; json: string | Buffer; proto: Buffer },
    window: number,
    ttlSeconds: number,
    limits: StoreLimits = this.options,
  ): Promise<KeptCapture> {
    const { namespace, name } = probeParts(probe);
    const series = this.key(probe, 't', podUid, 'series');
    const pushedOut = outOfWindow(await this.redis.zrange(series, '0', '-1', 'WITHSCORES'), capture.id, capture.time.getTime(), window);
    if (pushedOut.includes(capture.id)) return { kind: 'outside-window' };
    const summary = Buffer.byteLength(capture.json);
    const profileFits = capture.proto.length <= (limits.maxStoredProfileBytes ?? Number.POSITIVE_INFINITY);
    const entry = NamespaceLedger.entry(name, capture.id);
    const budget = limits.maxBytesPerNamespace ?? Number.POSITIVE_INFINITY;
    const reservation = await this.ledger.reserve(namespace, entry, { summary, profile: profileFits ? capture.proto.length : 0 }, ttlSeconds * 1000, budget, pushedOut.map((id) => NamespaceLedger.entry(name, id)));
    if (reservation.kept === 'none') throw new NamespaceStoreBudgetError(budget);
    const withProfile = profileFits && reservation.kept === 'both';
    const commands: Command[] = [
      ['set', this.key(probe, 'c', capture.id), capture.json, 'EX', ttlSeconds],
      // A retried capture may have kept one before: what the ledger counts is what stays.
      withProfile ? ['set', this.key(probe, 'p', capture.id), capture.proto, 'EX', ttlSeconds] : ['del', this.key(probe, 'p', capture.id)],
      ['zadd', series, capture.time.getTime(), capture.id],
      ['expire', series, ttlSeconds],
      // Captures that fall out of the window go at once, profiles included.
      ...(pushedOut.length > 0 ? [['zrem', series, ...pushedOut] as Command, ...pushedOut.map((id): Command => ['del', this.key(probe, 'c', id), this.key(probe, 'p', id)])] : []),
    ];
    let written: boolean;
    try {
      written = await this.write(probe, commands);
    } catch (err) {
      await this.giveBack(namespace, entry, reservation.credited);
      throw err;
    }
    if (!written) {
      await this.giveBack(namespace, entry, reservation.credited);
      return { kind: 'fenced' };
    }
    this.options.onCaptureStored?.({ summary, profile: withProfile ? capture.proto.length : 0 });
    if (reservation.credited.length > 0) await this.ledger.release(namespace, reservation.credited);
    return { kind: 'kept', profile: withProfile ? 'kept' : profileFits ? 'over-namespace-budget' : 'over-stored-profile-limit' };
  }

  /** A reservation whose write did not happen: its entry goes, the entries it credited may be credited again. Best effort: a failure here only over-counts. */
  private async giveBack(namespace: string, entry: string, credited: readonly string[]): Promise<void> {
    await Promise.allSettled([this.ledger.release(namespace, [entry]), this.ledger.unmark(namespace, credited)]);
  }

  /** The ledger entries of deleted keys of one probe (a deletion by key name: incidents, clean-ups): captures, and series' gctrace and analyses. */
  private async releaseDeleted(probe: ProbeRef, keys: readonly string[]): Promise<void> {
    const { namespace, name } = probeParts(probe);
    const ids = new Set<string>();
    const head = `${this.prefix}:{${typeof probe === 'string' ? probe : probe.key}}:`;
    for (const key of keys) {
      if (!key.startsWith(head)) continue;
      const [part, id, value] = key.slice(head.length).split(':');
      if ((part === 'c' || part === 'p') && id) ids.add(NamespaceLedger.entry(name, id));
      if (part === 't' && id && (value === 'gc' || value === 'analysis')) ids.add(NamespaceLedger.entry(name, `${value}:${id}`));
    }
    if (ids.size > 0) await this.ledger.release(namespace, [...ids]);
  }

  async captures(probe: ProbeRef, podUid: string): Promise<CaptureRef[]> {
    const entries = await this.redis.zrange(this.key(probe, 't', podUid, 'series'), '0', '-1', 'WITHSCORES');
    const refs: CaptureRef[] = [];
    for (let i = 0; i < entries.length; i += 2) {
      refs.push({ id: entries[i] as string, time: new Date(Number(entries[i + 1])).toISOString(), podUid });
    }
    return refs;
  }

  async loadSeries(probe: ProbeRef, podUid: string): Promise<TimedSnapshot[]> {
    return (await this.loadSeriesJson(probe, podUid)).map(parseStoredSnapshot);
  }

  /** The series as stored (UTF-8 JSON, oldest first), for a caller that parses it elsewhere (the worker's analysis thread). */
  async loadSeriesJson(probe: ProbeRef, podUid: string): Promise<Buffer[]> {
    return (await this.loadTimedSeriesJson(probe, podUid)).map((s) => s.json);
  }

  /** As loadSeriesJson, each with its capture time (the series' score), so a caller can choose captures without parsing them. */
  async loadTimedSeriesJson(probe: ProbeRef, podUid: string): Promise<{ time: Date; json: Buffer }[]> {
    const refs = await this.captures(probe, podUid);
    if (refs.length === 0) return [];
    const raw = await this.redis.mgetBuffer(...refs.map((r) => this.key(probe, 'c', r.id)));
    const timed: { time: Date; json: Buffer }[] = [];
    raw.forEach((json, i) => {
      if (json !== null) timed.push({ time: new Date((refs[i] as CaptureRef).time), json });
    });
    return timed;
  }

  async profile(probe: ProbeRef, captureId: string): Promise<Buffer | null> {
    return this.redis.getBuffer(this.key(probe, 'p', captureId));
  }

  async recordTarget(probe: ProbeRef, record: TargetRecord, ttlSeconds: number): Promise<void> {
    const key = this.key(probe, 'targets');
    await this.write(probe, [['hset', key, record.series ?? record.uid, JSON.stringify(record)], ['expire', key, ttlSeconds]]);
  }

  async targets(probe: ProbeRef): Promise<TargetRecord[]> {
    const all = await this.redis.hgetall(this.key(probe, 'targets'));
    return Object.values(all).map((json) => JSON.parse(json) as TargetRecord);
  }

  /** Drops what is kept for series that are no longer followed (pods gone, containers restarted); pinned captures stay. */
  async forgetTargetsExcept(probe: ProbeRef, liveSeries: ReadonlySet<string>): Promise<number> {
    const key = this.key(probe, 'targets');
    const gone = Object.keys(await this.redis.hgetall(key)).filter((series) => !liveSeries.has(series));
    if (gone.length === 0) return 0;
    const doomed = gone.flatMap((uid) => [this.key(probe, 't', uid, 'series'), this.key(probe, 't', uid, 'gc'), this.key(probe, 't', uid, 'analysis')]);
    const written = await this.write(probe, [['hdel', key, ...gone], ['del', ...doomed]]);
    if (written) await this.releaseDeleted(probe, doomed);
    return written ? gone.length : 0;
  }

  /**
   * The engine's last result on a series, kept for readers (the API and the
   * probe page) so that no request runs the engine. Bounded by the analysis
   * itself: at most maxFindings findings of at most window points each.
   */
  async saveAnalysis(probe: ProbeRef, series: string, analysis: SeriesAnalysis, ttlSeconds: number, limits: StoreLimits = this.options): Promise<KeptValue> {
    return this.keepValue(probe, `analysis:${series}`, this.key(probe, 't', series, 'analysis'), JSON.stringify(analysis), ttlSeconds, limits);
  }

  /**
   * One value of a series (its gctrace or its analysis, rewritten every
   * round) within the namespace's budget, as keepCapture keeps a capture:
   * room first (the value it replaces credited), then the fenced write.
   * Past the budget the previous value stays.
   */
  private async keepValue(probe: ProbeRef, what: string, key: string, value: string, ttlSeconds: number, limits: StoreLimits): Promise<KeptValue> {
    const { namespace, name } = probeParts(probe);
    const entry = NamespaceLedger.entry(name, what);
    const budget = limits.maxBytesPerNamespace ?? Number.POSITIVE_INFINITY;
    const reservation = await this.ledger.reserve(namespace, entry, { summary: Buffer.byteLength(value), profile: 0 }, ttlSeconds * 1000, budget, []);
    if (reservation.kept === 'none') return 'over-budget';
    let written: boolean;
    try {
      written = await this.write(probe, [['set', key, value, 'EX', ttlSeconds]]);
    } catch (err) {
      // The value it replaced is still there: the next write counts it again.
      await this.giveBack(namespace, entry, []);
      throw err;
    }
    if (!written) await this.giveBack(namespace, entry, []);
    return written ? 'kept' : 'fenced';
  }

  async analysis(probe: ProbeRef, series: string): Promise<SeriesAnalysis | undefined> {
    const json = await this.redis.get(this.key(probe, 't', series, 'analysis'));
    return json ? (JSON.parse(json) as SeriesAnalysis) : undefined;
  }

  /**
   * Redis' refusal of a tiny write (maxmemory reached with noeviction), or
   * undefined when it takes writes. On a cluster this asks one primary.
   */
  async writeRefusal(): Promise<Error | undefined> {
    try {
      await this.redis.set(`${this.prefix}:writable`, '1', 'PX', 1000);
      return undefined;
    } catch (err) {
      if (isStoreFull(err)) return err as Error;
      throw err;
    }
  }

  /** gctrace cycles seen so far (bounded) and the log time read up to. */
  async gc(probe: ProbeRef, podUid: string): Promise<{ cycles: GcCycle[]; readUntil?: string }> {
    const json = await this.redis.get(this.key(probe, 't', podUid, 'gc'));
    return json ? (JSON.parse(json) as { cycles: GcCycle[]; readUntil?: string }) : { cycles: [] };
  }

  async saveGc(probe: ProbeRef, podUid: string, state: { cycles: GcCycle[]; readUntil?: string }, maxCycles: number, ttlSeconds: number, limits: StoreLimits = this.options): Promise<KeptValue> {
    const bounded = { ...state, cycles: state.cycles.slice(-maxCycles) };
    return this.keepValue(probe, `gc:${podUid}`, this.key(probe, 't', podUid, 'gc'), JSON.stringify(bounded), ttlSeconds, limits);
  }

  /**
   * Notes how a followed pod's container ended (the controller's pod watch
   * saw it), so the next round can make an incident of it even when the
   * pod is gone by then. Fenced: only for a probe that owns its keys.
   */
  async noteEnded(probe: FencedProbe, podUid: string, end: unknown, ttlSeconds: number): Promise<boolean> {
    const key = this.key(probe, 'ended');
    return this.write(probe, [['hset', key, podUid, JSON.stringify(end)], ['expire', key, Math.max(1, Math.ceil(ttlSeconds))]]);
  }

  /** The ends noted for these pods (read as the round's own model checks them); the notes read are removed. */
  async takeEnded(probe: ProbeRef, podUids: readonly string[]): Promise<Map<string, unknown>> {
    if (podUids.length === 0) return new Map();
    const key = this.key(probe, 'ended');
    const values = await this.redis.hmget(key, ...podUids);
    const found = new Map<string, unknown>();
    podUids.forEach((uid, i) => {
      const json = values[i];
      if (!json) return;
      try {
        found.set(uid, JSON.parse(json));
      } catch {
        // Not ours to guess at.
      }
    });
    if (found.size > 0) await this.write(probe, [['hdel', key, ...found.keys()]]);
    return found;
  }

  /**
   * True the first time `what` is asked for this probe within `ttlSeconds`,
   * across every worker: for things said once. Fenced like every write: a
   * probe object that no longer owns its name's keys (deleted, replaced)
   * says nothing and writes nothing under the new probe's name.
   */
  async firstTime(probe: ProbeRef, what: string, ttlSeconds: number): Promise<boolean> {
    const said = this.key(probe, 'said', what);
    if (typeof probe === 'string') return (await this.redis.set(said, '1', 'EX', ttlSeconds, 'NX')) === 'OK';
    return Number(await this.redis.eval(FENCED_FIRST_TIME, 2, this.key(probe, 'owner'), said, probe.owner, Math.max(1, Math.ceil(ttlSeconds)))) === 1;
  }

  /**
   * When each finding was first seen; new keys are stamped `now`, or with
   * the stamp of their former key (`formerKeys`: a finding keyed by its
   * owner line only before its caller was part of its key) when that has one.
   */
  async firstSeen(probe: ProbeRef, keys: readonly string[], now: Date, ttlSeconds: number, formerKeys: ReadonlyMap<string, string> = new Map()): Promise<Map<string, string>> {
    const hash = this.key(probe, 'firstseen');
    if (keys.length === 0) return new Map();
    const formers = [...new Set(keys.map((k) => formerKeys.get(k)).filter((k): k is string => k !== undefined))];
    const formerStamps = formers.length > 0 ? await this.redis.hmget(hash, ...formers) : [];
    const stampOf = new Map(formers.map((k, i) => [k, formerStamps[i] ?? undefined]));
    const stamp = (k: string): string => stampOf.get(formerKeys.get(k) ?? '') ?? now.toISOString();
    await this.write(probe, [...keys.map((k): Command => ['hsetnx', hash, k, stamp(k)]), ['expire', hash, ttlSeconds]]);
    const values = await this.redis.hmget(hash, ...keys);
    return new Map(keys.map((k, i) => [k, values[i] ?? now.toISOString()]));
  }

  /**
   * Keeps an incident and pins its captures (summaries and raw profiles)
   * until `expiresAt`, past the window and the series TTL. Once per incident
   * id: `recorded-before` when it is kept already (the same end seen again,
   * or another way: nothing is written, so it is counted and said once);
   * `fenced` when the probe's round no longer owns its keys (nothing kept).
   */
  async recordIncident(probe: ProbeRef, incident: StoredIncident, expiresAt: Date): Promise<'recorded' | 'recorded-before' | 'fenced'> {
    const ttlSeconds = Math.max(1, Math.ceil((expiresAt.getTime() - Date.now()) / 1000));
    const index = this.key(probe, 'incidents');
    const incidentKey = this.key(probe, 'incident', incident.id);
    const commands: Command[] = [
      ['set', incidentKey, JSON.stringify(incident), 'EX', ttlSeconds],
      ['zadd', index, Date.parse(incident.time), incident.id],
      ...incident.captures.flatMap((ref): Command[] => [['expire', this.key(probe, 'c', ref.id), ttlSeconds], ['expire', this.key(probe, 'p', ref.id), ttlSeconds]]),
      // The index outlives every incident in it; each new one extends it.
      ['expire', index, ttlSeconds, 'GT'],
      ['expire', index, ttlSeconds, 'NX'],
    ];
    // The ledger first: an entry that outlives its keys over-counts until it expires; one that expired first would under-count.
    const { namespace, name } = probeParts(probe);
    await this.ledger.extend(namespace, incident.captures.map((ref) => NamespaceLedger.entry(name, ref.id)), ttlSeconds * 1000);
    const outcome = await this.writeScript(probe, commands, incidentKey);
    return outcome === 'written' ? 'recorded' : outcome === 'written-before' ? 'recorded-before' : 'fenced';
  }

  /**
   * The probe's incidents, newest first. Incidents that ended before
   * `notBefore`, and all past the newest `max`, are dropped here together
   * with their pinned captures, so the count and the age both hold in Redis
   * as well as in the status.
   */
  async incidents(probe: ProbeRef, notBefore: Date, max: number, maxPinnedBytes = Number.POSITIVE_INFINITY): Promise<StoredIncident[]> {
    const index = this.key(probe, 'incidents');
    const ids = await this.redis.zrevrange(index, 0, -1);
    if (ids.length === 0) return [];
    const raw = await this.redis.mget(...ids.map((id) => this.key(probe, 'incident', id)));
    const kept: StoredIncident[] = [];
    const dropped: { id: string; incident?: StoredIncident }[] = [];
    ids.forEach((id, i) => {
      const json = raw[i];
      const incident = json ? (JSON.parse(json) as StoredIncident) : undefined;
      if (!incident) dropped.push({ id });
      else if (kept.length >= max || Date.parse(incident.time) < notBefore.getTime()) dropped.push({ id, incident });
      else kept.push(incident);
    });
    if (dropped.length > 0) {
      const unpinned = dropped.flatMap(({ incident }) => (incident?.captures ?? []).flatMap((ref) => [this.key(probe, 'c', ref.id), this.key(probe, 'p', ref.id)]));
      const written = await this.write(probe, [
        ['zrem', index, ...dropped.map((d) => d.id)],
        ...dropped.map(({ id }): Command => ['del', this.key(probe, 'incident', id)]),
        ...(unpinned.length > 0 ? [['del', ...unpinned] as Command] : []),
      ]);
      if (written) await this.releaseDeleted(probe, unpinned);
    }
    await this.unpinOverBudget(probe, kept, maxPinnedBytes);
    return kept;
  }

  /** Pinned captures past the probe's byte budget (newest kept first) lose their summary and profile; the incidents stay (summary-caps.ts pinsOverBudget). */
  private async unpinOverBudget(probe: ProbeRef, kept: readonly StoredIncident[], maxPinnedBytes: number): Promise<void> {
    if (!Number.isFinite(maxPinnedBytes)) return;
    const refs = kept.flatMap((incident) => [...incident.captures].reverse());
    if (refs.length === 0) return;
    const pipeline = this.redis.pipeline();
    for (const ref of refs) pipeline.strlen(this.key(probe, 'c', ref.id)).strlen(this.key(probe, 'p', ref.id));
    const lengths = ((await pipeline.exec()) ?? []).map(([, n]) => Number(n ?? 0));
    const over = pinsOverBudget(refs.map((ref, i) => ({ id: ref.id, bytes: (lengths[2 * i] ?? 0) + (lengths[2 * i + 1] ?? 0) })), maxPinnedBytes);
    if (over.length === 0) return;
    const unpinned = over.flatMap((id) => [this.key(probe, 'c', id), this.key(probe, 'p', id)]);
    if (await this.write(probe, [['del', ...unpinned]])) await this.releaseDeleted(probe, unpinned);
  }

  /** The kept incidents, newest first, as they are (pruning is the worker's, in incidents()). */
  async storedIncidents(probe: ProbeRef): Promise<StoredIncident[]> {
    const ids = await this.redis.zrevrange(this.key(probe, 'incidents'), 0, -1);
    if (ids.length === 0) return [];
    const raw = await this.redis.mget(...ids.map((id) => this.key(probe, 'incident', id)));
    return raw.filter((json): json is string => json !== null).map((json) => JSON.parse(json) as StoredIncident);
  }

  /** Seconds until a capture's raw profile expires (-2: gone), for tests and the API. */
  async profileTtl(probe: ProbeRef, captureId: string): Promise<number> {
    return this.redis.ttl(this.key(probe, 'p', captureId));
  }

  /**
   * Everything kept for a probe (on delete): a SCAN of every primary (on a
   * cluster the probe's slot lives on one of them), so keys written by any
   * part of the operator go too, whatever their name after the probe's tag.
   */
  async forgetProbe(probe: string): Promise<number> {
    let deleted = 0;
    for await (const { node, keys } of this.scan(`${this.prefix}:{${globEscape(probe)}}:*`)) {
      // All in one slot: one DEL is valid on a cluster too.
      if (keys.length === 0) continue;
      deleted += await node.del(...keys);
      await this.releaseDeleted(probe, keys);
    }
    return deleted;
  }

  /**
   * Renames keys of the layout before hash tags (`<prefix>:<ns>/<name>:...`)
   * to the current one, TTLs kept, so an upgraded operator keeps each
   * probe's series. Idempotent (RENAMENX); a key that is already gone or
   * already renamed is skipped.
   */
  async adoptLegacyKeys(): Promise<number> {
    let renamed = 0;
    for await (const { node, keys } of this.scan(`${this.prefix}:*/*:*`)) {
      for (const key of keys) {
        const rest = key.slice(this.prefix.length + 1);
        const end = rest.indexOf(':');
        const probe = rest.slice(0, end);
        if (probe.startsWith('{') || end <= 0) continue;
        const done = await node.renamenx(key, `${this.prefix}:{${probe}}${rest.slice(end)}`).catch(() => 0);
        renamed += done;
      }
    }
    return renamed;
  }

  /** Keys matching `pattern` on every primary (on a cluster a probe's slot lives on one of them), a SCAN batch at a time with the node that holds it. */
  private async *scan(pattern: string): AsyncGenerator<{ node: Redis; keys: string[] }> {
    for (const node of primaries(this.redis)) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
        cursor = next;
        yield { node, keys };
      } while (cursor !== '0');
    }
  }
}

/** A probe reference's namespace and name (`namespace/name`). */
function probeParts(probe: ProbeRef): { namespace: string; name: string } {
  const key = typeof probe === 'string' ? probe : probe.key;
  const slash = key.indexOf('/');
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/**
 * The captures of a series (ZRANGE WITHSCORES, oldest first) that adding
 * `id` at `time` pushes out of a window of `window`: the oldest ones, and
 * `id` itself when it is older than all the window keeps. Ties go by id,
 * as Redis orders equal scores.
 */
export function outOfWindow(entries: readonly string[], id: string, time: number, window: number): string[] {
  const members = new Map<string, number>();
  for (let i = 0; i + 1 < entries.length; i += 2) members.set(entries[i] as string, Number(entries[i + 1]));
  members.set(id, time);
  const ordered = [...members].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return ordered.slice(0, Math.max(0, ordered.length - window)).map(([member]) => member);
}

/** How long a probe's series keys live: the window's span and two intervals more, plus an hour. */
export function seriesTtlSeconds(window: number, intervalMs: number): number {
  return Math.ceil(((window + 2) * intervalMs) / 1000) + 3600;
}

/** Kubernetes names hold no glob characters; escape anyway so a pattern can only ever match one probe. */
function globEscape(text: string): string {
  return text.replace(/[*?[\\\]]/g, (c) => `\\${c}`);
}

/** A capture as the store keeps it: the attributed summary, bounded by the admin's caps (summary-caps.ts). */
export function storedSnapshotJson(snapshot: TimedSnapshot, caps: SummaryCaps = DEFAULT_SUMMARY_CAPS): string {
  const usages = capUsages(snapshot.usages, caps);
  const stored: StoredSnapshot = {
    time: snapshot.time.toISOString(),
    mapImpl: snapshot.mapImpl,
    evidence: snapshot.evidence,
    totals: snapshot.totals,
    usages,
    allocBytesByFunction: capAllocByFunction(snapshot.allocBytesByFunction, usages, caps),
    ...(snapshot.memProfileRate ? { memProfileRate: snapshot.memProfileRate } : {}),
  };
  return JSON.stringify(stored);
}

/**
 * A stored capture's MemProfileRate without parsing it: storedSnapshotJson
 * writes it last, so it is the tail `"memProfileRate":N}` (a name inside
 * the summary cannot end the JSON that way: its object closes after it).
 */
export function storedMemProfileRate(json: Uint8Array): number | undefined {
  const tail = Buffer.from(json.buffer, json.byteOffset, json.byteLength).toString('latin1', Math.max(0, json.byteLength - 40));
  const rate = /"memProfileRate":(\d{1,15})\}$/.exec(tail)?.[1];
  return rate === undefined ? undefined : Number(rate);
}

/**
 * One stored capture (loadSeriesJson), as the engine reads it. Each usage's
 * key is derived again from its site, kind and caller (usageKey): a capture
 * stored before the caller was part of a usage's identity keyed a library
 * line by its owner only, and must meet the new captures' series of its caller.
 */
export function parseStoredSnapshot(json: Uint8Array): TimedSnapshot {
  const s = JSON.parse(Buffer.from(json.buffer, json.byteOffset, json.byteLength).toString('utf8')) as StoredSnapshot;
  for (const usage of s.usages) usage.key = usageKey(usage);
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

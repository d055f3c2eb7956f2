import { DelayedError, type Job, type JobSchedulerJobOptions } from 'bullmq';
import type { Condition } from '../api/types.js';
import type { ProbeClient } from '../api/client.js';
import type { Logger } from '../observability/log.js';
import type { OperatorMetrics } from '../observability/metrics.js';
import type { CaptureJobData } from '../queue/names.js';
import { findCondition, setCondition } from '../status/conditions.js';

/** The probe condition that says its rounds wait for their namespace's share of the workers. */
export const ROUNDS_DEFERRED = 'RoundsDeferred';

/** First wait of a deferred job; doubled with every deferral of it, up to DEFER_MAX_MS. */
const DEFER_BASE_MS = 1000;
/**
 * Longest wait between two looks at the namespace's share: the CRD's
 * shortest interval (5 s), so a slot that frees up is taken within one
 * shortest round period, while a namespace's backlog of deferred jobs costs
 * Redis a few commands per job every few seconds, not a busy loop.
 */
const DEFER_MAX_MS = 5000;
/** A round that has waited this long past its time puts RoundsDeferred on its probe (one with a shorter interval: when it is superseded). */
export const DEFERRED_CONDITION_AFTER_MS = 60_000;
/** RoundsDeferred is written at most this often per probe and worker (each write is a read and a patch of the probe). */
const CONDITION_REWRITE_MS = 60_000;

/** How long the job waits before its next look at the share: doubling from 1 s to 5 s, ±50 % jitter so deferred jobs do not come back in step. */
export function deferDelayMs(deferrals: number, random: () => number = Math.random): number {
  const base = Math.min(DEFER_MAX_MS, DEFER_BASE_MS * 2 ** Math.max(0, Math.min(deferrals, 10)));
  return Math.round(base * (0.5 + random()));
}

/**
 * When the round was due: a scheduler's job carries its slot in its id
 * (`repeat:<scheduler>:<millis>`); any other job (a trigger, a pod change)
 * was due when it was added.
 */
export function dueTimeOf(job: Pick<Job, 'id' | 'repeatJobKey' | 'timestamp'>): number {
  const slot = job.repeatJobKey ? /:(\d+)$/.exec(job.id ?? '')?.[1] : undefined;
  return slot ? Number(slot) : job.timestamp;
}

/** Times this job was put back so far: BullMQ counts every start (attemptsStarted); neither a deferral nor a stall is an attempt (attemptsMade), and stalls are counted apart (stalledCounter). */
function deferralsOf(job: Pick<Job, 'attemptsStarted' | 'attemptsMade' | 'stalledCounter'>): number {
  return Math.max(0, (job.attemptsStarted ?? 1) - 1 - (job.attemptsMade ?? 0) - (job.stalledCounter ?? 0));
}

/**
 * A round whose worker died in it (SIGKILL, an OOM kill, a lock lost to a
 * stalled event loop): BullMQ's stalled check gave it back. Its first run
 * may have kept some targets' captures and not others, recorded incidents
 * whose Events and status only this round writes, and reserved budget in
 * the namespace's ledger; so it is run to its end, never superseded. It
 * comes back late by nature (the lock lapses up to lockDuration after the
 * death); the slot lease the dead worker left for it is taken over, not
 * waited out (NamespaceSlots.acquire's `resumed`).
 */
export function resumedRound(job: Pick<Job, 'stalledCounter'>): boolean {
  return (job.stalledCounter ?? 0) > 0;
}

export interface DeferredRoundsDeps {
  probes: Pick<ProbeClient, 'updateStatus'>;
  metrics: Pick<OperatorMetrics, 'roundsDeferred' | 'roundsSuperseded'>;
  log: Logger;
}

/**
 * What the worker does with a job whose namespace holds its whole share of
 * worker slots: puts it back in the queue for a short, jittered while (not
 * failed, not an attempt), or drops it when the probe's next scheduled
 * round is due before that while ends (that round replaces it; a backlog
 * of one probe's rounds would only run stale rounds back to back; a
 * resumed round is never dropped, see resumedRound). Both are counted per
 * namespace, and a wait that lasts marks the probe
 * `RoundsDeferred`.
 */
export class DeferredRounds {
  /** probe key → when this worker last wrote RoundsDeferred for it. */
  private readonly written = new Map<string, number>();
  private lastLeaseWarning = 0;

  constructor(
    private readonly deps: DeferredRoundsDeps,
    private readonly perNamespace: number,
  ) {}

  /** Puts the job back (throws BullMQ's DelayedError, which ends the job without failing it) or says it is superseded. */
  async defer(job: Job<CaptureJobData>, token: string | undefined): Promise<'superseded'> {
    const { namespace } = job.data;
    const now = Date.now();
    const waitedMs = Math.max(0, now - dueTimeOf(job));
    // A scheduler's job carries its scheduler's period (BullMQ's internal JobSchedulerJobOptions).
    const every = job.repeatJobKey ? (job.opts as JobSchedulerJobOptions).repeat?.every : undefined;
    const delayMs = deferDelayMs(deferralsOf(job));
    // Its next look would come once the probe's next round is due: that round replaces it, so a probe never has more than two waiting
    // (and a resumed round, of which there is one per dead worker's round).
    if (every && !resumedRound(job) && waitedMs + delayMs >= every) {
      this.deps.metrics.roundsSuperseded.inc({ namespace });
      this.mark(job.data, waitedMs, true);
      return 'superseded';
    }
    if (!token) throw new Error('a deferred job needs its lock token');
    await job.moveToDelayed(now + delayMs, token);
    this.deps.metrics.roundsDeferred.inc({ namespace });
    if (waitedMs >= Math.min(every ?? Number.POSITIVE_INFINITY, DEFERRED_CONDITION_AFTER_MS)) this.mark(job.data, waitedMs, false);
    throw new DelayedError();
  }

  /** Redis refused a lease: logged at most once a minute (the round runs without one). */
  leaseFailed(err: unknown): void {
    if (Date.now() - this.lastLeaseWarning < 60_000) return;
    this.lastLeaseWarning = Date.now();
    this.deps.log.warn('round slot lease not taken; rounds run without the namespace share meanwhile', { error: err instanceof Error ? err.name : 'unknown' });
  }

  /** RoundsDeferred=True on the probe, in the background (the job's slot is freed at once), at most once a minute per probe. */
  private mark(data: CaptureJobData, waitedMs: number, skipped: boolean): void {
    const key = `${data.namespace}/${data.name}`;
    const last = this.written.get(key);
    if (last !== undefined && Date.now() - last < CONDITION_REWRITE_MS) return;
    if (this.written.size >= 10_000) this.written.clear();
    this.written.set(key, Date.now());
    const message = `This probe's rounds wait for a worker slot: namespace ${data.namespace} already runs ${this.perNamespace} ${this.perNamespace === 1 ? 'round' : 'rounds'} at once, its share of the workers (operator ceiling --max-active-rounds-per-namespace). ${
      skipped ? `A round waited ${Math.round(waitedMs / 1000)} s and was skipped for the probe's next round, due before the share could be asked again.` : `A round has waited ${Math.round(waitedMs / 1000)} s past its time.`
    }`;
    this.deps.log.info('rounds deferred for the namespace share', { probe: key, waitedMs, skipped });
    void this.deps.probes
      .updateStatus(data.namespace, data.name, (current) => {
        if (current.metadata.uid !== data.uid) return undefined;
        // Already said: no write (the message's figures are those of when the wait began).
        if (findCondition(current.status?.conditions, ROUNDS_DEFERRED)?.status === 'True') return undefined;
        return { conditions: setCondition(current.status?.conditions, { type: ROUNDS_DEFERRED, status: 'True', reason: 'NamespaceRoundLimit', message }, current.metadata.generation, new Date()) };
      })
      .catch((err: unknown) => this.deps.log.warn('RoundsDeferred not written', { probe: key, error: err instanceof Error ? err.name : 'unknown' }));
  }
}

/**
 * The conditions of a round that ran: RoundsDeferred, where it is True,
 * turns False (the round got its slot). Called from the round's own status
 * write, so clearing it costs no request.
 */
export function roundRan(conditions: readonly Condition[] | undefined, generation: number | undefined, at: Date): Condition[] | undefined {
  if (findCondition(conditions, ROUNDS_DEFERRED)?.status !== 'True') return conditions as Condition[] | undefined;
  return setCondition(conditions, { type: ROUNDS_DEFERRED, status: 'False', reason: 'RoundRan', message: "This probe's last round got a worker slot within its namespace's share." }, generation, at);
}

import type { MapLeakProbe, TriggerStatus } from '../api/types.js';

export const CAPTURE_QUEUE = 'mapleak-captures';
export const CAPTURE_JOB = 'capture-round';
/** A one-off round queued by a memory trigger (src/worker/trigger-watch.ts). */
export const TRIGGERED_JOB = 'triggered-round';

/** What a capture job carries: names only, never credentials. */
export interface CaptureJobData {
  namespace: string;
  name: string;
  /** A probe deleted and created again under the same name is another probe. */
  uid: string;
  /** Set on a round a memory trigger queued: why, in figures (TriggerStatus without captureTime). */
  trigger?: TriggerJobData;
}

export type TriggerJobData = Omit<TriggerStatus, 'captureTime'> & {
  /** When the trigger queued the round. */
  firedTime: string;
};

/** BullMQ ids must not contain ':'; '/' cannot occur in Kubernetes names. */
export function schedulerId(probe: Pick<MapLeakProbe, 'metadata'>): string {
  return `${probe.metadata.namespace}/${probe.metadata.name}`;
}

/**
 * BullMQ's key prefix. Its Lua scripts touch several keys of a queue at
 * once, so on a Redis Cluster they must share one hash slot: the `{...}`
 * hash tag does that. Standalone and sentinel keep BullMQ's default, so an
 * existing Redis keeps its schedulers on upgrade.
 */
export function queuePrefix(mode: 'standalone' | 'sentinel' | 'cluster'): string {
  return mode === 'cluster' ? '{mapleak}' : 'bull';
}

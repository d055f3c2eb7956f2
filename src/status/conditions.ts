import type { Condition, ConditionStatus } from '../api/types.js';

export interface ConditionUpdate {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
}

/**
 * Sets one condition the way apimachinery's meta.SetStatusCondition does:
 * lastTransitionTime moves only when the status changes.
 */
export function setCondition(conditions: readonly Condition[] | undefined, update: ConditionUpdate, generation: number | undefined, now: Date): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((c) => c.type === update.type);
  const previous = index >= 0 ? list[index] : undefined;
  const next: Condition = {
    type: update.type,
    status: update.status,
    reason: update.reason,
    message: update.message.slice(0, 32_768),
    lastTransitionTime: previous && previous.status === update.status ? previous.lastTransitionTime : now.toISOString(),
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
  if (index >= 0) list[index] = next;
  else list.push(next);
  return list;
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

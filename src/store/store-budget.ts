/** The condition reason, and the target's error reason, of captures the namespace's Redis budget refused or kept without their raw profile. */
export const NAMESPACE_STORE_BUDGET = 'NamespaceStoreBudget';

/** The target's note when its raw profile was larger than --max-stored-profile-bytes (the summary was kept). */
export const STORED_PROFILE_LIMIT = 'StoredProfileLimit';

/**
 * A capture refused because its namespace's kept captures already take
 * --max-redis-bytes-per-namespace, even without its raw profile. Nothing
 * of it is stored; the namespace's other captures stay.
 */
export class NamespaceStoreBudgetError extends Error {
  override readonly name = 'NamespaceStoreBudgetError';
  readonly reason = NAMESPACE_STORE_BUDGET;
  constructor(readonly budget: number) {
    super(
      `not stored: this namespace's kept captures already take the operator's Redis budget per namespace of ${budget} bytes (--max-redis-bytes-per-namespace). Space comes back as captures leave their windows or expire; fewer pods, a shorter spec.schedule.window or fewer probes in the namespace need less`,
    );
  }
}

/** The probe's Degraded message when this round kept captures without their raw profiles to stay within the namespace's budget. */
export function profilesDroppedMessage(count: number, budget: number): string {
  return `${count} captures of this round were kept without their raw profile: this namespace's kept captures reached the operator's Redis budget per namespace of ${budget} bytes (--max-redis-bytes-per-namespace). Summaries and verdicts are kept; raw profiles of these captures cannot be downloaded`;
}

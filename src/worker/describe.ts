import type { EffectiveSettings } from '../api/ceilings.js';
import { CaptureError } from '../capture/errors.js';
import { HttpAnswerError } from '../capture/http.js';
import { REMOTE_SERVER_UNREACHABLE, RemoteServerUnreachable } from '../clusters/kube-http.js';
import { ProfileError } from '../pprof/errors.js';
import { isStoreFull } from '../observability/connection-errors.js';
import { STORE_FULL_MESSAGE, SummaryTooLargeError } from '../store/summary-caps.js';
import { PROFILE_MESSAGES } from '../pprof/messages.js';
import { NamespaceStoreBudgetError } from '../store/store-budget.js';

/** A failed capture as the tenant sees it: a fixed reason and a message the operator wrote. */
export interface FailureDescription {
  reason: string;
  message: string;
}

/** The metric label and status reason of an error (stable codes only). */
export function reasonOf(err: unknown): string {
  if (err instanceof HttpAnswerError) return `Http${err.answer.status}`;
  if (err instanceof CaptureError) return err.code === 'HttpStatus' ? `Http${err.status ?? ''}` : err.code;
  if (err instanceof ProfileError) return err.code;
  if (err instanceof SummaryTooLargeError || err instanceof NamespaceStoreBudgetError) return err.reason;
  if (isStoreFull(err)) return 'StoreFull';
  return 'CaptureFailed';
}

export function describeFailure(err: unknown, settings: Pick<EffectiveSettings, 'timeoutMs' | 'maxProfileBytes'>): FailureDescription {
  const reason = reasonOf(err);
  if (err instanceof HttpAnswerError) {
    const { status, contentType, bytes } = err.answer;
    const hint = status === 404 ? 'pprof not found (is net/http/pprof imported and the port/pathPrefix right?): ' : status === 403 ? 'forbidden: ' : status === 503 ? 'unavailable: ' : '';
    return { reason, message: `${hint}the target answered HTTP ${status} (${contentType}, ${bytes} bytes)` };
  }
  if (err instanceof CaptureError) {
    switch (err.code) {
      case 'Timeout':
        return { reason, message: `target too slow: no complete answer within ${settings.timeoutMs} ms` };
      case 'TooLarge':
        return { reason, message: `the target sent more than ${settings.maxProfileBytes} bytes (limit)` };
      case 'ConnectionFailed':
        if (err instanceof RemoteServerUnreachable) return { reason, message: REMOTE_SERVER_UNREACHABLE };
        return { reason, message: `nothing answered on the pprof port${err.systemCode ? ` (${err.systemCode})` : ''}` };
      case 'Busy':
      case 'DeadlineExceeded':
        // Composed by captureHeap from the operator's limits only.
        return { reason, message: err.message.slice(0, 300) };
      case 'BadUrl':
        // Composed by the worker from checked names (container and port names from the pod spec).
        return { reason, message: err.message.slice(0, 300) };
      case 'HttpStatus':
        return { reason, message: `the target answered HTTP ${err.status ?? 'with an error'}` };
    }
  }
  if (err instanceof ProfileError) return { reason, message: PROFILE_MESSAGES[err.code] };
  // Both composed from the operator's ceilings only.
  if (err instanceof SummaryTooLargeError || err instanceof NamespaceStoreBudgetError) return { reason, message: err.message };
  if (isStoreFull(err)) return { reason, message: STORE_FULL_MESSAGE };
  return { reason, message: 'the capture failed (an operator error; see its log)' };
}

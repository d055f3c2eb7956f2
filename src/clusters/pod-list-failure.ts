import { CaptureError } from '../capture/errors.js';
import { HttpAnswerError } from '../capture/http.js';
import { REMOTE_SERVER_UNREACHABLE, RemoteServerUnreachable } from './kube-http.js';
import { PodListError } from './pods.js';

/** A failed pod list: what the probe's status says, and what the operator's log adds. */
export interface PodListFailure {
  message: string;
  /** For the admin's log only: an HTTP status, an error code, the system's code (ERR_ADDRESS_NOT_ALLOWED: the allowlist refused every address of the name). */
  detail: { status?: number; code?: string; systemCode?: string };
}

/**
 * Why a round's pod list failed, in the operator's words. For the
 * operator's own API server the cause helps (RBAC, a status, a timeout).
 * A remote one (spec.cluster) is any https://host:port the tenant's
 * kubeconfig names: saying which failure it was (refused, timed out, a
 * 404) would let a tenant map the hosts the worker reaches, so it gets one
 * of two fixed messages whatever the failure: one for every way of not
 * getting an answer (no DNS answer, an address the allowlist refuses,
 * nothing listening, a timeout, a TLS failure), one for an answer that is
 * not a pod list.
 */
export function describePodListFailure(err: unknown, remote: boolean, timeoutMs: number): PodListFailure {
  const status = err instanceof HttpAnswerError ? err.answer.status : err instanceof CaptureError ? err.status : undefined;
  const code = err instanceof CaptureError ? err.code : err instanceof PodListError ? 'MalformedPodList' : undefined;
  const systemCode = err instanceof RemoteServerUnreachable ? err.dialCode : err instanceof CaptureError ? err.systemCode : undefined;
  const detail = { ...(status !== undefined ? { status } : {}), ...(code !== undefined ? { code } : {}), ...(systemCode !== undefined ? { systemCode } : {}) };
  const answered = err instanceof HttpAnswerError || err instanceof PodListError || (err instanceof CaptureError && (err.code === 'HttpStatus' || err.code === 'TooLarge'));
  if (remote) return { message: answered ? 'the remote API server answered with an error' : REMOTE_SERVER_UNREACHABLE, detail };
  if (status === 403) return { message: 'forbidden to list pods (RBAC), HTTP 403', detail };
  if (status !== undefined) return { message: `the API server answered HTTP ${status}`, detail };
  if (err instanceof PodListError) return { message: err.message, detail };
  if (err instanceof CaptureError) {
    switch (err.code) {
      case 'Timeout':
        return { message: `the API server did not answer within ${timeoutMs} ms`, detail };
      case 'TooLarge':
        return { message: 'the API server\'s pod list is larger than the limit', detail };
      case 'ConnectionFailed':
        return { message: `the API server could not be reached${err.systemCode ? ` (${err.systemCode})` : ''}`, detail };
      default:
        return { message: 'the pod list could not be read', detail };
    }
  }
  return { message: 'the pod list could not be read', detail };
}

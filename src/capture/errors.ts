/**
 * Stable codes for metrics and status reasons. `Busy`: the worker's shared
 * budget of in-flight answer bytes stayed taken until the capture's
 * deadline. `DeadlineExceeded`: the capture's overall deadline passed.
 */
export type CaptureErrorCode = 'Timeout' | 'ConnectionFailed' | 'HttpStatus' | 'TooLarge' | 'BadUrl' | 'Busy' | 'DeadlineExceeded';

/** A target could not be fetched; `code` is stable for metrics and status reasons. */
export class CaptureError extends Error {
  override readonly name = 'CaptureError';
  constructor(
    readonly code: CaptureErrorCode,
    message: string,
    readonly status?: number,
    /** ConnectionFailed: the system error code (ECONNREFUSED, ...), checked by errorCode; never the peer's text. */
    readonly systemCode?: string,
  ) {
    super(message);
  }
}

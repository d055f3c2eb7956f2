export type CaptureErrorCode = 'Timeout' | 'ConnectionFailed' | 'HttpStatus' | 'TooLarge' | 'BadUrl';

/** A target could not be fetched; `code` is stable for metrics and status reasons. */
export class CaptureError extends Error {
  override readonly name = 'CaptureError';
  constructor(
    readonly code: CaptureErrorCode,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Why a profile could not be read; stable codes for metrics and status reasons. */
export type ProfileErrorCode =
  | 'Empty'
  | 'NotAProfile'
  | 'HtmlPage'
  | 'TruncatedGzip'
  | 'TooLarge'
  | 'Malformed'
  | 'NotAHeapProfile';

export class ProfileError extends Error {
  override readonly name = 'ProfileError';
  constructor(
    readonly code: ProfileErrorCode,
    message: string,
  ) {
    super(message);
  }
}

import type { ProfileErrorCode } from './errors.js';

/**
 * Profile errors in fixed words, for whatever a person reads of a target
 * (status, Events, CLI warnings): a ProfileError's own message may quote
 * what the target sent (an HTML title, a line of a debug=1 text).
 */
export const PROFILE_MESSAGES: Readonly<Record<ProfileErrorCode, string>> = {
  Empty: 'the target answered with an empty body',
  NotAProfile: 'the answer is text, not a heap profile (is the port/pathPrefix right?)',
  HtmlPage: 'the answer is an HTML page, not a heap profile (is the port/pathPrefix right?)',
  TruncatedGzip: 'the profile is a truncated gzip stream',
  TooLarge: "the profile is over the operator's limits: its size, compressed or inflated, or the time or memory decoding and analysing it takes",
  Malformed: 'the profile is malformed',
  NotAHeapProfile: 'the profile is not a heap profile',
};

import { createHash } from 'node:crypto';
import { AuthenticationV1Api, AuthorizationV1Api, Observable, type ConfigurationOptions, type KubeConfig, type RequestContext, type ResponseContext } from '@kubernetes/client-node';
import { ExpiringCache } from './cache.js';
import { ConcurrencyLimit, ReviewsBusyError } from './limiter.js';
import type { AuthMetrics } from './metrics.js';

/** Who the API server says a token belongs to (TokenReview status.user). */
export interface UserInfo {
  username: string;
  uid: string;
  groups: string[];
  extra: Record<string, string[]>;
}

/** What a request does, in SubjectAccessReview terms. */
export type AccessAttributes =
  | { kind: 'resource'; verb: string; group: string; resource: string; subresource?: string; namespace?: string; name?: string }
  | { kind: 'nonResource'; verb: string; path: string };

/** Authentication and authorisation of one request's bearer token. Both throw when they cannot tell. */
export interface AccessReviewer {
  /** The user a token belongs to, or undefined when the API server does not accept it. */
  authenticate(token: string): Promise<UserInfo | undefined>;
  /** Whether the API server's authorisers allow it. */
  authorize(user: UserInfo, attributes: AccessAttributes): Promise<boolean>;
}

/** The API server could not be asked, or did not answer in time: the caller answers 503. */
export class ReviewUnavailableError extends Error {
  constructor(
    readonly review: 'token' | 'access',
    /** HTTP status of the API server's answer, when there was one. */
    readonly statusCode?: number,
  ) {
    super(`${review} review failed${statusCode ? ` (API server answered ${statusCode})` : ''}`);
    this.name = 'ReviewUnavailableError';
  }
}

export interface ReviewerOptions {
  /** How long an accepted or rejected token and an allowed decision are reused. */
  cacheTtlMs: number;
  /** How long a denied decision is reused: shorter, so a new binding takes effect soon. */
  denyCacheTtlMs: number;
  /** Entries per cache (tokens, decisions). */
  maxCacheEntries: number;
  /** Reviews sent to the API server at once... */
  maxInFlight: number;
  /** ...and queued behind them; beyond that a request is answered 503 at once. */
  maxWaiting: number;
  /** Per review. */
  timeoutMs: number;
}

/** controller-runtime's filter reuses tokens for 1 min and decisions for 5 min (allow) / 30 s (deny); ours are shorter. */
export const DEFAULT_REVIEWER_OPTIONS: ReviewerOptions = {
  cacheTtlMs: 30_000,
  denyCacheTtlMs: 5_000,
  maxCacheEntries: 4096,
  maxInFlight: 8,
  maxWaiting: 64,
  timeoutMs: 10_000,
};

/** New tokens get 1/NEW_TOKEN_SHARE of the review slots and queue (at least one of each). */
const NEW_TOKEN_SHARE = 4;
/** How long an accepted token is served as it was when its re-review finds every slot taken (controller-runtime reuses tokens for 1 min outright). */
const STALE_TOKEN_MS = 5 * 60_000;

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** A per-call deadline through client-node's middleware (the generated client has no timeout of its own). */
function withTimeout(ms: number): ConfigurationOptions {
  // The object API hands these to the observable API as they are (like setHeaderOptions does).
  const middleware = {
    pre: (context: RequestContext): Observable<RequestContext> => {
      context.setSignal(AbortSignal.timeout(ms));
      return new Observable(Promise.resolve(context));
    },
    post: (context: ResponseContext): Observable<ResponseContext> => new Observable(Promise.resolve(context)),
  };
  return { middleware: [middleware], middlewareMergeStrategy: 'append' };
}

function statusCodeOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

/**
 * TokenReview then SubjectAccessReview against the operator's own API server,
 * the way controller-runtime's WithAuthenticationAndAuthorization and
 * kube-rbac-proxy delegate. Tokens are cached by their SHA-256 only, never
 * kept themselves; identical reviews in flight are sent once; at most
 * `maxInFlight` reviews run at once.
 */
export class KubernetesAccessReviewer implements AccessReviewer {
  private readonly authn: AuthenticationV1Api;
  private readonly authz: AuthorizationV1Api;
  /** Accepted and rejected tokens apart: a flood of rejected ones cannot evict the accepted. */
  private readonly accepted: ExpiringCache<UserInfo>;
  private readonly rejected: ExpiringCache<true>;
  /** Tokens accepted within STALE_TOKEN_MS: re-reviewed in the known tokens' share, and served as they were while that share is full. */
  private readonly recentlyAccepted: ExpiringCache<UserInfo>;
  private readonly decisions: ExpiringCache<boolean>;
  private readonly pending = new Map<string, Promise<unknown>>();
  /** Reviews of tokens accepted before, and every access review (its user was authenticated). */
  private readonly limit: ConcurrencyLimit;
  /**
   * Reviews of tokens never accepted: anyone who reaches the port can send
   * those by the thousand, so they get a quarter of the slots and of the
   * queue, and cannot keep the operator's users out.
   */
  private readonly newTokens: ConcurrencyLimit;

  constructor(
    kc: KubeConfig,
    private readonly options: ReviewerOptions = DEFAULT_REVIEWER_OPTIONS,
    private readonly metrics?: AuthMetrics,
  ) {
    this.authn = kc.makeApiClient(AuthenticationV1Api);
    this.authz = kc.makeApiClient(AuthorizationV1Api);
    this.accepted = new ExpiringCache(options.maxCacheEntries);
    this.rejected = new ExpiringCache(options.maxCacheEntries);
    this.recentlyAccepted = new ExpiringCache(options.maxCacheEntries);
    this.decisions = new ExpiringCache(options.maxCacheEntries);
    this.limit = new ConcurrencyLimit(options.maxInFlight, options.maxWaiting);
    this.newTokens = new ConcurrencyLimit(Math.ceil(options.maxInFlight / NEW_TOKEN_SHARE), Math.ceil(options.maxWaiting / NEW_TOKEN_SHARE));
  }

  async authenticate(token: string): Promise<UserInfo | undefined> {
    const key = `t:${sha256(token)}`;
    const cached = this.accepted.get(key) ?? (this.rejected.get(key) ? null : undefined);
    if (cached !== undefined) {
      this.metrics?.cacheHits.inc({ review: 'token' });
      return cached ?? undefined;
    }
    const recent = this.recentlyAccepted.get(key);
    let user: UserInfo | null;
    try {
      user = await this.once(key, () => (recent ? this.limit : this.newTokens).run(() => this.reviewToken(token)));
    } catch (err) {
      // Busy with other reviews: a token accepted a moment ago is still that user (it is re-reviewed once there is room).
      if (err instanceof ReviewsBusyError && recent) return recent;
      throw err;
    }
    if (user) {
      this.accepted.set(key, user, this.options.cacheTtlMs);
      this.recentlyAccepted.set(key, user, Math.max(this.options.cacheTtlMs, STALE_TOKEN_MS));
    } else {
      this.rejected.set(key, true, this.options.cacheTtlMs);
      this.recentlyAccepted.delete(key);
    }
    return user ?? undefined;
  }

  async authorize(user: UserInfo, attributes: AccessAttributes): Promise<boolean> {
    const key = `a:${sha256(JSON.stringify([user.username, user.uid, [...user.groups].sort(), user.extra, attributes]))}`;
    const cached = this.decisions.get(key);
    if (cached !== undefined) {
      this.metrics?.cacheHits.inc({ review: 'access' });
      return cached;
    }
    const allowed = await this.once(key, () => this.limit.run(() => this.reviewAccess(user, attributes)));
    this.decisions.set(key, allowed, allowed ? this.options.cacheTtlMs : this.options.denyCacheTtlMs);
    return allowed;
  }

  /** Concurrent callers with the same key share one review. */
  private once<T>(key: string, review: () => Promise<T>): Promise<T> {
    const running = this.pending.get(key) as Promise<T> | undefined;
    if (running) return running;
    const started = review().finally(() => this.pending.delete(key));
    this.pending.set(key, started);
    return started;
  }

  private async reviewToken(token: string): Promise<UserInfo | null> {
    let review;
    try {
      review = await this.authn.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } } }, withTimeout(this.options.timeoutMs));
    } catch (err) {
      this.metrics?.reviews.inc({ review: 'token', outcome: 'error' });
      throw new ReviewUnavailableError('token', statusCodeOf(err));
    }
    const status = review.status;
    const username = status?.user?.username;
    if (!status?.authenticated || !username) {
      this.metrics?.reviews.inc({ review: 'token', outcome: 'denied' });
      return null;
    }
    this.metrics?.reviews.inc({ review: 'token', outcome: 'allowed' });
    return { username, uid: status.user?.uid ?? '', groups: status.user?.groups ?? [], extra: status.user?.extra ?? {} };
  }

  private async reviewAccess(user: UserInfo, attributes: AccessAttributes): Promise<boolean> {
    const { kind, ...fields } = attributes;
    let review;
    try {
      review = await this.authz.createSubjectAccessReview(
        {
          body: {
            apiVersion: 'authorization.k8s.io/v1',
            kind: 'SubjectAccessReview',
            spec: {
              user: user.username,
              ...(user.uid ? { uid: user.uid } : {}),
              groups: user.groups,
              extra: user.extra,
              ...(kind === 'resource' ? { resourceAttributes: fields } : { nonResourceAttributes: fields }),
            },
          },
        },
        withTimeout(this.options.timeoutMs),
      );
    } catch (err) {
      this.metrics?.reviews.inc({ review: 'access', outcome: 'error' });
      throw new ReviewUnavailableError('access', statusCodeOf(err));
    }
    const allowed = review.status?.allowed === true && review.status.denied !== true;
    this.metrics?.reviews.inc({ review: 'access', outcome: allowed ? 'allowed' : 'denied' });
    return allowed;
  }
}

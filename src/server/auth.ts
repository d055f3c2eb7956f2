import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { AccessAttributes, AccessReviewer, UserInfo } from '../auth/reviewer.js';
import { ReviewUnavailableError } from '../auth/reviewer.js';
import { ReviewsBusyError } from '../auth/limiter.js';
import type { AuthMetrics } from '../auth/metrics.js';
import type { Logger } from '../observability/log.js';

/** Longer than any ServiceAccount or OIDC token; longer ones are refused without a review. */
export const MAX_TOKEN_LENGTH = 8192;
/** RFC 6750 b64token. */
const TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/** The token of an `Authorization: Bearer <token>` header, or undefined when there is none or it is malformed. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^bearer +(\S+) *$/i.exec(header);
  const token = match?.[1];
  if (!token || token.length > MAX_TOKEN_LENGTH || !TOKEN.test(token)) return undefined;
  return token;
}

export interface AuthContext {
  reviewer: AccessReviewer;
  metrics: AuthMetrics;
  log: Logger;
}

type Rejection = 'unauthenticated' | 'forbidden' | 'unavailable' | 'busy';

// Fixed answers: nothing from the request (token, path, names) is echoed back.
const ANSWERS: Record<Rejection, { status: number; error: string }> = {
  unauthenticated: { status: 401, error: 'Unauthorized: send a valid bearer token (Authorization: Bearer <token>)' },
  forbidden: { status: 403, error: 'Forbidden' },
  unavailable: { status: 503, error: 'Cannot check access right now: the Kubernetes API server did not answer; try again' },
  busy: { status: 503, error: 'Too many access checks in flight; try again' },
};

function reject(ctx: AuthContext, res: Response, reason: Rejection, route: string, user?: UserInfo, err?: unknown): void {
  ctx.metrics.rejections.inc({ reason });
  const answer = ANSWERS[reason];
  if (reason === 'unauthenticated') res.set('WWW-Authenticate', 'Bearer realm="mapleakprobe"');
  if (reason === 'unavailable' || reason === 'busy') res.set('Retry-After', '1');
  const fields: Record<string, unknown> = { route, status: answer.status, reason };
  if (user) fields.user = user.username;
  if (err instanceof ReviewUnavailableError) {
    fields.review = err.review;
    if (err.statusCode) fields.apiServerStatus = err.statusCode;
  }
  if (reason === 'unavailable') ctx.log.warn('http request refused: access review failed', fields);
  else ctx.log.debug('http request refused', fields);
  res.status(answer.status).json({ error: answer.error });
}

function rejectionOf(err: unknown): Rejection {
  return err instanceof ReviewsBusyError ? 'busy' : 'unavailable';
}

/** res.locals.user once a route's authentication passed. */
export function requestUser(res: Response): UserInfo {
  const user = (res.locals as { user?: UserInfo }).user;
  if (!user) throw new Error('route is not behind authenticate()');
  return user;
}

/** Every request it sees must carry a bearer token the API server accepts (TokenReview), else 401. */
export function authenticate(ctx: AuthContext): RequestHandler {
  return (req: Request, res: Response, next: NextFunction): void => {
    const token = bearerToken(req.get('authorization'));
    if (!token) return reject(ctx, res, 'unauthenticated', 'any');
    ctx.reviewer.authenticate(token).then(
      (user) => {
        if (!user) return reject(ctx, res, 'unauthenticated', 'any');
        (res.locals as { user?: UserInfo }).user = user;
        next();
      },
      (err: unknown) => reject(ctx, res, rejectionOf(err), 'any', undefined, err),
    );
  };
}

/**
 * The authenticated user must be allowed `attributes` (SubjectAccessReview), else 403.
 * `attributesOf` returns undefined for a request whose path is not valid: 400, and no review is sent.
 */
export function authorize(ctx: AuthContext, route: string, attributesOf: (req: Request) => AccessAttributes | undefined): RequestHandler {
  return (req: Request, res: Response, next: NextFunction): void => {
    const attributes = attributesOf(req);
    if (!attributes) return void res.status(400).json({ error: 'invalid path' });
    const user = requestUser(res);
    ctx.reviewer.authorize(user, attributes).then(
      (allowed) => (allowed ? next() : reject(ctx, res, 'forbidden', route, user)),
      (err: unknown) => reject(ctx, res, rejectionOf(err), route, user, err),
    );
  };
}

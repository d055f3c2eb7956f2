import { Counter, type Registry } from 'prom-client';

/** Reviews sent to the API server and answered from the caches, on the operator's registry. */
export class AuthMetrics {
  readonly reviews: Counter<'review' | 'outcome'>;
  readonly cacheHits: Counter<'review'>;
  readonly rejections: Counter<'reason'>;

  constructor(registry: Registry) {
    this.reviews = new Counter({
      name: 'mapleak_auth_reviews_total',
      help: 'TokenReviews (review="token") and SubjectAccessReviews (review="access") sent to the API server, by outcome (allowed, denied, error).',
      labelNames: ['review', 'outcome'],
      registers: [registry],
    });
    this.cacheHits = new Counter({ name: 'mapleak_auth_cache_hits_total', help: 'Token and access decisions answered from the cache.', labelNames: ['review'], registers: [registry] });
    this.rejections = new Counter({
      name: 'mapleak_http_auth_rejections_total',
      help: 'HTTP requests refused by authentication or authorisation, by reason (unauthenticated, forbidden, unavailable, busy).',
      labelNames: ['reason'],
      registers: [registry],
    });
  }
}

import { Redis, type RedisOptions } from 'ioredis';

export interface RedisConfig {
  url: string;
  password?: string;
}

/**
 * Workers block on Redis and must retry forever (maxRetriesPerRequest:
 * null); producers fail fast when Redis is away rather than queue commands
 * in memory (enableOfflineQueue: false).
 */
export function redisConnection(config: RedisConfig, role: 'worker' | 'producer' | 'store'): Redis {
  const options: RedisOptions = {
    lazyConnect: false,
    maxRetriesPerRequest: role === 'producer' ? 1 : null,
    enableOfflineQueue: role !== 'producer',
    retryStrategy: (attempt) => Math.min(200 * 2 ** Math.min(attempt, 6), 5000),
    ...(config.password ? { password: config.password } : {}),
  };
  return new Redis(config.url, options);
}

/** The URL without credentials, for logs. */
export function describeRedis(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.password = '';
    parsed.username = '';
    return parsed.toString();
  } catch {
    return '(invalid redis url)';
  }
}

import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';

/** An address of a sentinel or a cluster seed node. */
export interface HostPort {
  host: string;
  port: number;
}

/** Where the queue and the series store live: one of three topologies. */
export type RedisTopology =
  | { mode: 'standalone'; url: string }
  | { mode: 'sentinel'; sentinels: HostPort[]; masterName: string; tls: boolean }
  | { mode: 'cluster'; nodes: HostPort[]; tls: boolean };

export type RedisMode = RedisTopology['mode'];

/** The topology with its secrets, which come from the environment only (never flags, logs, job data or status). */
export type RedisConfig = RedisTopology & {
  password?: string;
  /** Sentinel mode: the sentinels' own requirepass. */
  sentinelPassword?: string;
};

/** A client of any topology: the commands the store and BullMQ use exist on both. */
export type RedisClient = Redis | Cluster;

export class RedisConfigError extends Error {
  override name = 'RedisConfigError';
}

/** The inputs of parseRedisConfig: flag values (undefined when not given) and the environment. */
export interface RedisSettings {
  url?: string;
  sentinels?: string;
  sentinelMaster?: string;
  clusterNodes?: string;
  tls?: boolean;
}

const DEFAULT_URL = 'redis://127.0.0.1:6379';
/** Sentinel master names as redis-sentinel accepts them in `sentinel monitor`, kept to what is safe in a log line. */
const MASTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)$/;

/**
 * The one place Redis settings are read and checked: a flag beats its
 * environment variable; --redis-url, --redis-sentinels and
 * --redis-cluster-nodes are mutually exclusive.
 */
export function parseRedisConfig(flags: RedisSettings, env: NodeJS.ProcessEnv = process.env): RedisConfig {
  const url = flags.url ?? env.REDIS_URL;
  const sentinels = flags.sentinels ?? env.REDIS_SENTINELS;
  const sentinelMaster = flags.sentinelMaster ?? env.REDIS_SENTINEL_MASTER;
  const clusterNodes = flags.clusterNodes ?? env.REDIS_CLUSTER_NODES;
  const tls = flags.tls ?? env.REDIS_TLS === 'true';
  const secrets = {
    ...(env.REDIS_PASSWORD ? { password: env.REDIS_PASSWORD } : {}),
    ...(env.REDIS_SENTINEL_PASSWORD ? { sentinelPassword: env.REDIS_SENTINEL_PASSWORD } : {}),
  };
  const chosen = [url ? '--redis-url (REDIS_URL)' : '', sentinels ? '--redis-sentinels (REDIS_SENTINELS)' : '', clusterNodes ? '--redis-cluster-nodes (REDIS_CLUSTER_NODES)' : ''].filter(Boolean);
  if (chosen.length > 1) throw new RedisConfigError(`choose one Redis mode: ${chosen.join(' and ')} are both set`);
  if (sentinelMaster && !sentinels) throw new RedisConfigError('--redis-sentinel-master (REDIS_SENTINEL_MASTER) needs --redis-sentinels (REDIS_SENTINELS)');
  if (sentinels) {
    if (!sentinelMaster) throw new RedisConfigError('--redis-sentinels needs --redis-sentinel-master NAME (REDIS_SENTINEL_MASTER): the master group the sentinels monitor');
    if (!MASTER_NAME.test(sentinelMaster)) throw new RedisConfigError('--redis-sentinel-master must be a sentinel master name (letters, digits, ".", "_", "-")');
    return { mode: 'sentinel', sentinels: hostPorts(sentinels, '--redis-sentinels', 26379), masterName: sentinelMaster, tls, ...secrets };
  }
  if (env.REDIS_SENTINEL_PASSWORD) throw new RedisConfigError('REDIS_SENTINEL_PASSWORD is set but the mode is not sentinel (--redis-sentinels)');
  if (clusterNodes) return { mode: 'cluster', nodes: hostPorts(clusterNodes, '--redis-cluster-nodes', 6379), tls, ...secrets };
  const standaloneUrl = url ?? DEFAULT_URL;
  let parsed: URL;
  try {
    parsed = new URL(standaloneUrl);
  } catch {
    throw new RedisConfigError('--redis-url (REDIS_URL) is not a URL; expected redis://host:port[/db] or rediss://host:port[/db]');
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') throw new RedisConfigError('--redis-url (REDIS_URL) must start with redis:// or rediss://');
  if (parsed.password) throw new RedisConfigError('--redis-url (REDIS_URL) must not hold a password: set REDIS_PASSWORD');
  // ioredis merges every query parameter into its options (?password=, ?sentinelPassword=, ...):
  // a secret there would be used and then logged with the URL.
  if (parsed.search || parsed.hash) throw new RedisConfigError('--redis-url (REDIS_URL) must not have a query or fragment: options come from flags, passwords from REDIS_PASSWORD');
  if (flags.tls) throw new RedisConfigError('--redis-tls is for sentinel and cluster modes; a standalone Redis over TLS is rediss://');
  return { mode: 'standalone', url: standaloneUrl, ...secrets };
}

/** `host:port,host:port` (IPv6 as `[::1]:port`); a missing port is `defaultPort`. */
function hostPorts(text: string, flag: string, defaultPort: number): HostPort[] {
  const items = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new RedisConfigError(`${flag} lists no address; expected HOST:PORT,...`);
  if (items.length > 64) throw new RedisConfigError(`${flag} lists ${items.length} addresses; at most 64`);
  return items.map((item) => {
    const match = /^(.+?)(?::(\d{1,5}))?$/.exec(item);
    const host = match?.[1] ?? '';
    const port = match?.[2] === undefined ? defaultPort : Number(match[2]);
    if (!HOST.test(host) || (host.includes(':') && !host.startsWith('['))) throw new RedisConfigError(`${flag}: "${item.slice(0, 80)}" is not HOST:PORT`);
    if (!(port >= 1 && port <= 65535)) throw new RedisConfigError(`${flag}: port of "${item.slice(0, 80)}" is not 1-65535`);
    return { host: host.replace(/^\[(.*)\]$/, '$1'), port };
  });
}

export type ConnectionRole = 'worker' | 'producer' | 'store';

/**
 * Workers block on Redis and must retry forever (maxRetriesPerRequest:
 * null); producers fail fast when Redis is away rather than queue commands
 * in memory (enableOfflineQueue: false).
 */
export function redisConnection(config: RedisConfig, role: ConnectionRole): RedisClient {
  const perRequest = {
    maxRetriesPerRequest: role === 'producer' ? 1 : null,
    ...(config.password ? { password: config.password } : {}),
  };
  const retryStrategy = (attempt: number): number => Math.min(200 * 2 ** Math.min(attempt, 6), 5000);
  switch (config.mode) {
    case 'standalone': {
      const options: RedisOptions = { lazyConnect: false, enableOfflineQueue: role !== 'producer', retryStrategy, ...perRequest };
      return new Redis(config.url, options);
    }
    case 'sentinel': {
      const options: RedisOptions = {
        lazyConnect: false,
        enableOfflineQueue: role !== 'producer',
        retryStrategy,
        ...perRequest,
        sentinels: config.sentinels,
        name: config.masterName,
        ...(config.sentinelPassword ? { sentinelPassword: config.sentinelPassword } : {}),
        // Reconnect on the sentinels' +switch-master at once instead of on the old master's timeout.
        failoverDetector: true,
        sentinelRetryStrategy: retryStrategy,
        ...(config.tls ? { tls: {}, enableTLSForSentinelMode: true, sentinelTLS: {} } : {}),
      };
      return new Redis(options);
    }
    case 'cluster': {
      const options: ClusterOptions = {
        lazyConnect: false,
        enableOfflineQueue: role !== 'producer',
        clusterRetryStrategy: retryStrategy,
        // A failover moves slots: wait a little for the new primary before retrying MOVED/CLUSTERDOWN,
        // and long enough (100 x 300 ms) to ride out cluster-node-timeout (15 s by default) plus the
        // election, so a failover delays commands instead of failing them inside BullMQ.
        retryDelayOnFailover: 200,
        retryDelayOnClusterDown: 300,
        maxRedirections: 100,
        // No CLUSTER INFO ready check: when it sees cluster_state:fail (a failover between the
        // primary marked failed and its replica promoted), ioredis reconnects on its own but never
        // settles the connect() promise, and BullMQ awaits that promise when it resets its blocking
        // connection, which parks the worker's fetch loop for good. Commands sent in that window
        // get CLUSTERDOWN and wait (retryDelayOnClusterDown) like any other in the failover.
        enableReadyCheck: false,
        redisOptions: { ...perRequest, ...(config.tls ? { tls: {} } : {}) },
        // TLS certificates name hosts, not the IPs the cluster announces: keep the names.
        ...(config.tls ? { dnsLookup: (address: string, callback: (err: null, address: string) => void) => callback(null, address) } : {}),
      };
      return new Cluster(config.nodes, options);
    }
  }
}

/** The topology without credentials, for the start-up log line. */
export function describeRedis(config: RedisTopology): string {
  switch (config.mode) {
    case 'standalone':
      return describeUrl(config.url);
    case 'sentinel':
      return `sentinel master "${config.masterName}" via ${config.sentinels.map(formatHostPort).join(',')}${config.tls ? ' (tls)' : ''}`;
    case 'cluster':
      return `cluster seeds ${config.nodes.map(formatHostPort).join(',')}${config.tls ? ' (tls)' : ''}`;
  }
}

/** The URL without credentials. */
function describeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.password = '';
    parsed.username = '';
    parsed.search = '';
    parsed.hash = '';
    return parsed.toString();
  } catch {
    return '(invalid redis url)';
  }
}

export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** What /readyz and the start-up log say about Redis: the mode and whom we talk to. */
export interface RedisTopologyStatus {
  mode: RedisMode;
  /** Standalone and sentinel: the address of the server this client is connected to now (the master as resolved). */
  master?: string;
  /** Cluster: primaries in the client's current slot map. */
  primaries?: number;
}

export function redisTopologyStatus(config: RedisTopology, client: RedisClient): RedisTopologyStatus {
  if (client instanceof Cluster) return { mode: config.mode, primaries: client.nodes('master').length };
  const stream = client.stream as { remoteAddress?: string; remotePort?: number } | undefined;
  const connected = client.status === 'ready' && stream?.remoteAddress && stream.remotePort ? formatHostPort({ host: stream.remoteAddress, port: stream.remotePort }) : undefined;
  if (config.mode === 'standalone') return { mode: 'standalone', master: connected ?? new URL(config.url).host };
  return { mode: config.mode, ...(connected ? { master: connected } : {}) };
}

/** The servers that hold data: every primary of a cluster, else the one client. */
export function primaries(client: RedisClient): Redis[] {
  return client instanceof Cluster ? client.nodes('master') : [client];
}

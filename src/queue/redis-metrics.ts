import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Redis } from 'ioredis';
import { formatHostPort, primaries, type RedisClient } from './connection.js';
import type { StoredCaptureBytes } from '../store/series-store.js';

/** Redis memory: what each capture stores, and how full each primary is (for the chart's alert). */
export class RedisMetrics {
  readonly captureBytes: Histogram;
  readonly storedBytes: Counter<'part'>;
  readonly usedMemory: Gauge<'node'>;
  readonly maxMemory: Gauge<'node'>;

  constructor(registry: Registry) {
    this.captureBytes = new Histogram({
      name: 'mapleak_redis_capture_bytes',
      help: 'Bytes one stored capture writes to Redis (attributed summary plus raw gzipped profile; key names and Redis overhead not counted). Kept for the probe window, per target.',
      // 4x steps from 4 KiB to 64 MiB (the default --max-profile-bytes).
      buckets: [4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864],
      registers: [registry],
    });
    this.storedBytes = new Counter({
      name: 'mapleak_redis_stored_bytes_total',
      help: 'Bytes of capture values written to Redis, by part (summary: the attributed JSON; profile: the raw gzipped pprof).',
      labelNames: ['part'],
      registers: [registry],
    });
    this.usedMemory = new Gauge({ name: 'mapleak_redis_used_memory_bytes', help: 'used_memory of each Redis primary (INFO memory), sampled every 5 s.', labelNames: ['node'], registers: [registry] });
    this.maxMemory = new Gauge({
      name: 'mapleak_redis_maxmemory_bytes',
      help: 'maxmemory of each Redis primary (0: no limit). With noeviction, writes fail once used_memory reaches it.',
      labelNames: ['node'],
      registers: [registry],
    });
  }

  observeCapture(bytes: StoredCaptureBytes): void {
    this.captureBytes.observe(bytes.summary + bytes.profile);
    this.storedBytes.inc({ part: 'summary' }, bytes.summary);
    this.storedBytes.inc({ part: 'profile' }, bytes.profile);
  }
}

/** INFO memory of every primary into the gauges; a primary that does not answer drops out until it does. */
export async function sampleRedisMemory(client: RedisClient, metrics: RedisMetrics): Promise<void> {
  const samples = await Promise.all(
    primaries(client).map(async (node) => {
      const info = await node.info('memory').catch(() => undefined);
      return info === undefined ? undefined : { node: nodeName(node), ...parseMemoryInfo(info) };
    }),
  );
  metrics.usedMemory.reset();
  metrics.maxMemory.reset();
  for (const sample of samples) {
    if (!sample) continue;
    metrics.usedMemory.set({ node: sample.node }, sample.used);
    metrics.maxMemory.set({ node: sample.node }, sample.max);
  }
}

/** used_memory and maxmemory from an INFO memory answer. */
export function parseMemoryInfo(info: string): { used: number; max: number } {
  const field = (name: string): number => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1] ?? 0);
  return { used: field('used_memory'), max: field('maxmemory') };
}

/** The address this connection talks to (the resolved master under sentinel), else the configured one. */
function nodeName(node: Redis): string {
  const stream = node.stream as { remoteAddress?: string; remotePort?: number } | undefined;
  if (stream?.remoteAddress && stream.remotePort) return formatHostPort({ host: stream.remoteAddress, port: stream.remotePort });
  return formatHostPort({ host: node.options.host ?? 'localhost', port: node.options.port ?? 6379 });
}

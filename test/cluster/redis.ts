// Throwaway Redis for tests: Debian's redis-server on free loopback ports, in
// temp dirs, no persistence. Settings follow what BullMQ needs in production
// (noeviction). Also a primary + replica + 3 sentinels, and a Redis Cluster,
// for the failover tests (test/redis).
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';

export interface RedisServer {
  url: string;
  host: string;
  port: number;
  dir: string;
  stop(): Promise<void>;
}

const REDIS_SERVER = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';
const REDIS_CLI = process.env.REDIS_CLI ?? '/usr/bin/redis-cli';
const execFileAsync = promisify(execFile);

/** Starts redis-server on 127.0.0.1 (on `port` when given, e.g. to restart one) and resolves once it answers PING. */
export async function startRedis(options: { timeoutMs?: number; port?: number } = {}): Promise<RedisServer> {
  const node = await launchRedis({ ...options, args: [] });
  return { url: `redis://127.0.0.1:${node.port}`, host: node.host, port: node.port, dir: node.dir, stop: node.stop };
}

/** One redis-server (or sentinel) process the test can kill. */
export interface RedisNode {
  host: string;
  port: number;
  dir: string;
  /** SIGKILL, as a crashed machine: no shutdown, no final save. */
  kill(): Promise<void>;
  /** Starts a killed node again on its port and directory (a cluster node keeps its nodes.conf: same id, same slots). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Spawns redis-server with the test defaults (loopback, no persistence,
 * noeviction) plus `args`; `sentinelConfig`: run `redis-server <file>
 * --sentinel` with that configuration instead.
 */
async function launchRedis(options: { timeoutMs?: number; port?: number; args: string[]; sentinelConfig?: string; tls?: TestTls }): Promise<RedisNode> {
  if (!existsSync(REDIS_SERVER)) throw new Error(`${REDIS_SERVER} is missing; apt-get install redis-server`);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const dir = mkdtempSync(join(tmpdir(), 'mapleak-redis-'));
  const port = options.port ?? (await freeLoopbackPort());
  const logFile = join(dir, 'redis.log');
  let argv: string[];
  if (options.sentinelConfig !== undefined) {
    const configFile = join(dir, 'sentinel.conf');
    const listen = options.tls ? ['port 0', `tls-port ${port}`, ...tlsSettings(options.tls).map(([name, value]) => `${name} ${value}`), ''].join('\n') : `port ${port}\n`;
    writeFileSync(configFile, `bind 127.0.0.1\n${listen}dir ${dir}\nlogfile ${logFile}\ndaemonize no\n${options.sentinelConfig}`);
    argv = [configFile, '--sentinel'];
  } else {
    const listen = options.tls ? ['--port', '0', '--tls-port', String(port), ...tlsArgs(options.tls)] : ['--port', String(port)];
    argv = ['--bind', '127.0.0.1', ...listen, '--dir', dir, '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction', '--logfile', logFile, '--daemonize', 'no', ...options.args];
  }
  let child = spawn(REDIS_SERVER, argv, { stdio: 'ignore' });
  const stop = (): Promise<void> => stopChild(child).then(() => rmSync(dir, { recursive: true, force: true }));
  const started = async (): Promise<void> => {
    try {
      await waitForPong(port, timeoutMs, child, options.tls);
    } catch (error) {
      const detail = existsSync(logFile) ? readFileSync(logFile, 'utf8').trim().split('\n').slice(-3).join(' | ') : '';
      await stop();
      throw new Error(`${error instanceof Error ? error.message : String(error)} ${detail}`.trim());
    }
  };
  await started();
  const kill = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
    child.kill('SIGKILL');
    await exited;
  };
  const restart = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) throw new Error(`redis-server on ${port} is still running`);
    child = spawn(REDIS_SERVER, argv, { stdio: 'ignore' });
    await started();
  };
  return { host: '127.0.0.1', port, dir, kill, restart, stop };
}

/** A CA and a server certificate for 127.0.0.1 (PEM files), for Redis over TLS in tests. */
export interface TestTls {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** Makes a throwaway CA and a certificate for IP 127.0.0.1 signed by it, with openssl, in `dir`. */
export function makeTestTls(dir: string): TestTls {
  const file = (name: string): string => join(dir, name);
  const openssl = (...args: string[]): void => void execFileSync('openssl', args, { stdio: 'ignore' });
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=mapleak test CA', '-keyout', file('ca.key'), '-out', file('ca.crt'));
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', file('server.key'), '-out', file('server.csr'));
  writeFileSync(file('san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  openssl('x509', '-req', '-in', file('server.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', file('san.ext'), '-out', file('server.crt'));
  return { caFile: file('ca.crt'), certFile: file('server.crt'), keyFile: file('server.key') };
}

/** TLS on every link: clients, replication and the cluster bus; clients need no certificate. */
function tlsSettings(tls: TestTls): [string, string][] {
  return [
    ['tls-cert-file', tls.certFile],
    ['tls-key-file', tls.keyFile],
    ['tls-ca-cert-file', tls.caFile],
    ['tls-auth-clients', 'no'],
    ['tls-replication', 'yes'],
  ];
}

function tlsArgs(tls: TestTls): string[] {
  return tlsSettings(tls).flatMap(([name, value]) => [`--${name}`, value]);
}

/** A primary, its replica and three sentinels on loopback, every one with a password. */
export interface SentinelSet {
  masterName: string;
  primary: RedisNode;
  replica: RedisNode;
  sentinels: RedisNode[];
  /** `127.0.0.1:port,...`, as --redis-sentinels takes it. */
  sentinelAddresses: string;
  password: string;
  sentinelPassword: string;
  /** The master the sentinels name now (host:port). */
  currentMaster(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Starts a replicated pair and three sentinels (quorum 2) and resolves once
 * every sentinel knows the replica and the other two sentinels, so a
 * failover can happen. `downAfterMs` short keeps failover tests short.
 */
export async function startSentinelSet(options: { masterName?: string; downAfterMs?: number; password?: string; sentinelPassword?: string; tls?: TestTls } = {}): Promise<SentinelSet> {
  const masterName = options.masterName ?? 'mapleak';
  const password = options.password ?? `data-${randomBytes(8).toString('hex')}`;
  const sentinelPassword = options.sentinelPassword ?? `sentinel-${randomBytes(8).toString('hex')}`;
  const auth = ['--requirepass', password, '--masterauth', password];
  const started: RedisNode[] = [];
  const stopAll = (): Promise<void> => Promise.all(started.map((n) => n.stop())).then(() => undefined);
  try {
    const tls = options.tls;
    const primary = await launchRedis({ args: auth, ...(tls ? { tls } : {}) });
    started.push(primary);
    const replica = await launchRedis({ args: [...auth, '--replicaof', '127.0.0.1', String(primary.port)], ...(tls ? { tls } : {}) });
    started.push(replica);
    const sentinelConfig = [
      `requirepass ${sentinelPassword}`,
      `sentinel monitor ${masterName} 127.0.0.1 ${primary.port} 2`,
      `sentinel auth-pass ${masterName} ${password}`,
      `sentinel down-after-milliseconds ${masterName} ${options.downAfterMs ?? 1000}`,
      `sentinel failover-timeout ${masterName} 10000`,
      `sentinel parallel-syncs ${masterName} 1`,
      '',
    ].join('\n');
    const sentinels = await Promise.all([0, 1, 2].map(() => launchRedis({ args: [], sentinelConfig, ...(tls ? { tls } : {}) })));
    started.push(...sentinels);
    const tlsOption = tls ? { tls: { ca: readFileSync(tls.caFile) } } : {};
    const clients = sentinels.map((s) => new Redis({ host: s.host, port: s.port, password: sentinelPassword, lazyConnect: true, maxRetriesPerRequest: 1, ...tlsOption }));
    try {
      await waitUntil('the sentinels to see the replica and each other', 30_000, async () => {
        for (const client of clients) {
          const fields = pairs((await client.call('SENTINEL', 'MASTER', masterName)) as string[]);
          if (Number(fields.get('num-slaves')) < 1 || Number(fields.get('num-other-sentinels')) < 2) return false;
        }
        return true;
      });
    } finally {
      for (const client of clients) client.disconnect();
    }
    const currentMaster = async (): Promise<string> => {
      for (const s of sentinels) {
        const client = new Redis({ host: s.host, port: s.port, password: sentinelPassword, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null, ...tlsOption });
        try {
          const [host, port] = (await client.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName)) as [string, string];
          return `${host}:${port}`;
        } catch {
          // Try the next sentinel.
        } finally {
          client.disconnect();
        }
      }
      throw new Error('no sentinel answers');
    };
    return { masterName, primary, replica, sentinels, sentinelAddresses: sentinels.map((s) => `${s.host}:${s.port}`).join(','), password, sentinelPassword, currentMaster, stop: stopAll };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** A Redis Cluster on loopback: `primaries` primaries with `replicas` replicas each (default 1). */
export interface RedisClusterSet {
  nodes: RedisNode[];
  /** Every node, as --redis-cluster-nodes takes it. */
  seeds: string;
  password: string;
  /** The current primaries (host:port) and the slot ranges each serves. */
  primaries(): Promise<{ address: string; node: RedisNode; slots: [number, number][] }[]>;
  /** The node replicating `primary` (the one the cluster will promote when it dies); kill a primary with its node's kill(). */
  replicaOf(primary: string): Promise<RedisNode>;
  /** Each live node's cluster state, role and clients (CLIENT LIST), for failure messages. */
  describe(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Starts `primaries` x (1 + `replicas`) nodes, joins them with `redis-cli
 * --cluster create` and resolves once every node says cluster_state:ok.
 * Without replicas a killed primary leaves the cluster failed until it is
 * restarted.
 */
export async function startRedisCluster(options: { primaries?: number; replicas?: number; nodeTimeoutMs?: number; password?: string; tls?: TestTls } = {}): Promise<RedisClusterSet> {
  const tls = options.tls;
  const replicas = options.replicas ?? 1;
  const count = (options.primaries ?? 3) * (1 + replicas);
  const password = options.password ?? `cluster-${randomBytes(8).toString('hex')}`;
  const started: RedisNode[] = [];
  const stopAll = (): Promise<void> => Promise.all(started.map((n) => n.stop())).then(() => undefined);
  try {
    const nodes = await Promise.all(
      Array.from({ length: count }, async () => {
        // The cluster bus gets a port of its own (port + 10000 may be above 65535 or taken).
        const busPort = await freeLoopbackPort();
        const node = await launchRedis({
          args: [
            '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', String(options.nodeTimeoutMs ?? 1000), '--cluster-port', String(busPort),
            '--requirepass', password, '--masterauth', password, ...(tls ? ['--tls-cluster', 'yes'] : []),
          ],
          ...(tls ? { tls } : {}),
        });
        started.push(node);
        return node;
      }),
    );
    const addresses = nodes.map((n) => `${n.host}:${n.port}`);
    const cliTls = tls ? ['--tls', '--cacert', tls.caFile] : [];
    await execFileAsync(REDIS_CLI, [...cliTls, '--cluster', 'create', ...addresses, '--cluster-replicas', String(replicas), '--cluster-yes'], { env: { ...process.env, REDISCLI_AUTH: password }, timeout: 60_000 });
    const tlsOption = tls ? { tls: { ca: readFileSync(tls.caFile) } } : {};
    const clientOf = (n: RedisNode): Redis => new Redis({ host: n.host, port: n.port, password, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null, ...tlsOption });
    await waitUntil('every cluster node to say cluster_state:ok and every replica to be in sync', 60_000, async () => {
      for (const n of nodes) {
        const client = clientOf(n);
        try {
          if (!/cluster_state:ok/.test((await client.call('CLUSTER', 'INFO')) as string)) return false;
          const replication = await client.info('replication');
          if (/role:slave/.test(replication) && !/master_link_status:up/.test(replication)) return false;
        } finally {
          client.disconnect();
        }
      }
      return true;
    });
    const primariesNow = async (): Promise<{ address: string; node: RedisNode; slots: [number, number][] }[]> => {
      for (const n of nodes) {
        const client = clientOf(n);
        try {
          const shards = (await client.call('CLUSTER', 'SLOTS')) as [number, number, [string, number, ...unknown[]], ...unknown[]][];
          const byAddress = new Map<string, [number, number][]>();
          for (const [from, to, [host, port]] of shards) {
            const address = `${host}:${port}`;
            byAddress.set(address, [...(byAddress.get(address) ?? []), [from, to]]);
          }
          return [...byAddress].map(([address, slots]) => ({ address, slots, node: nodes.find((x) => `${x.host}:${x.port}` === address)! }));
        } catch {
          // A killed node: ask the next one.
        } finally {
          client.disconnect();
        }
      }
      throw new Error('no cluster node answers');
    };
    const replicaOf = async (primary: string): Promise<RedisNode> => {
      const port = primary.split(':').pop();
      for (const n of nodes) {
        const client = clientOf(n);
        try {
          const replication = await client.info('replication').catch(() => '');
          if (replication.includes('role:slave') && replication.includes(`master_port:${port}\r`)) return n;
        } finally {
          client.disconnect();
        }
      }
      throw new Error(`${primary} has no replica`);
    };
    const describe = async (): Promise<string> => {
      const parts: string[] = [];
      for (const n of nodes) {
        const client = clientOf(n);
        try {
          const state = /cluster_state:\w+/.exec((await client.call('CLUSTER', 'INFO')) as string)?.[0];
          const role = /role:\w+/.exec(await client.info('replication'))?.[0];
          const clients = ((await client.call('CLIENT', 'LIST')) as string).split('\n').filter(Boolean).map((line) => line.replace(/ (fd|age|idle|flags|db|sub|psub|ssub|multi|qbuf|qbuf-free|argv-mem|multi-mem|obl|oll|omem|tot-mem|events|user|redir|resp|rbs|rbp|lib-name|lib-ver|laddr|id|name)=\S*/g, ''));
          parts.push(`${n.host}:${n.port} ${state} ${role}\n  ${clients.join('\n  ')}`);
        } catch (error) {
          parts.push(`${n.host}:${n.port} down (${error instanceof Error ? error.message : String(error)})`);
        } finally {
          client.disconnect();
        }
      }
      return parts.join('\n');
    };
    return { nodes, seeds: addresses.join(','), password, primaries: primariesNow, replicaOf, describe, stop: stopAll };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** A flat [k1, v1, k2, v2...] reply as a map. */
function pairs(flat: string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) map.set(String(flat[i]), String(flat[i + 1]));
  return map;
}

async function waitUntil(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      last = error;
    }
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}${last instanceof Error ? ` (${last.message})` : ''}`);
}

/** A TCP port nothing listens on right now, on 127.0.0.1. */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

async function waitForPong(port: number, timeoutMs: number, child: ChildProcess, tls?: TestTls): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with code ${child.exitCode}`);
    if (await ping(port, tls)) return;
    await sleep(50);
  }
  throw new Error(`redis-server did not answer PING on 127.0.0.1:${port} within ${timeoutMs / 1000}s`);
}

function ping(port: number, tls?: TestTls): Promise<boolean> {
  return new Promise((resolvePing) => {
    const socket = tls ? tlsConnect({ host: '127.0.0.1', port, ca: readFileSync(tls.caFile) }) : connect({ host: '127.0.0.1', port });
    let reply = '';
    socket.setTimeout(500);
    socket.on(tls ? 'secureConnect' : 'connect', () => socket.write('PING\r\n'));
    socket.on('data', (data) => {
      reply += data.toString('utf8');
      if (reply.includes('\r\n')) {
        socket.destroy();
        // A server with requirepass answers NOAUTH: it is up all the same.
        resolvePing(reply.startsWith('+PONG') || reply.startsWith('-NOAUTH'));
      }
    });
    socket.on('error', () => resolvePing(false));
    socket.on('timeout', () => {
      socket.destroy();
      resolvePing(false);
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  child.kill('SIGTERM');
  const done = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
  if (!done) {
    child.kill('SIGKILL');
    await exited;
  }
}

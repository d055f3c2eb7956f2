// A throwaway Redis for tests: Debian's redis-server on a free loopback port,
// in a temp dir, no persistence. Settings follow what BullMQ needs in production
// (noeviction).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface RedisServer {
  url: string;
  host: string;
  port: number;
  dir: string;
  stop(): Promise<void>;
}

const REDIS_SERVER = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';

/** Starts redis-server on 127.0.0.1 (on `port` when given, e.g. to restart one) and resolves once it answers PING. */
export async function startRedis(options: { timeoutMs?: number; port?: number } = {}): Promise<RedisServer> {
  if (!existsSync(REDIS_SERVER)) throw new Error(`${REDIS_SERVER} is missing; apt-get install redis-server`);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const dir = mkdtempSync(join(tmpdir(), 'mapleak-redis-'));
  const port = options.port ?? (await freeLoopbackPort());
  const logFile = join(dir, 'redis.log');
  const child = spawn(
    REDIS_SERVER,
    [
      '--bind', '127.0.0.1',
      '--port', String(port),
      '--dir', dir,
      '--save', '',
      '--appendonly', 'no',
      '--maxmemory-policy', 'noeviction',
      '--logfile', logFile,
      '--daemonize', 'no',
    ],
    { stdio: 'ignore' },
  );
  const stop = (): Promise<void> => stopChild(child).then(() => rmSync(dir, { recursive: true, force: true }));
  try {
    await waitForPong(port, timeoutMs, child);
  } catch (error) {
    const detail = existsSync(logFile) ? readFileSync(logFile, 'utf8').trim().split('\n').slice(-3).join(' | ') : '';
    await stop();
    throw new Error(`${error instanceof Error ? error.message : String(error)} ${detail}`.trim());
  }
  return { url: `redis://127.0.0.1:${port}`, host: '127.0.0.1', port, dir, stop };
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

async function waitForPong(port: number, timeoutMs: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with code ${child.exitCode}`);
    if (await ping(port)) return;
    await sleep(50);
  }
  throw new Error(`redis-server did not answer PING on 127.0.0.1:${port} within ${timeoutMs / 1000}s`);
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolvePing) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    socket.setTimeout(500);
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (data) => {
      reply += data.toString('utf8');
      if (reply.includes('\r\n')) {
        socket.destroy();
        resolvePing(reply.startsWith('+PONG'));
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

/**
 * `npm run bench:controller`: the operator's controller at scale on the local
 * control plane (issue 4), and the worker's capture path on one core.
 *
 *  1. its own cluster (`bench`: etcd + kube-apiserver + kwok) and Redis;
 *  2. BENCH_PODS (5,000) kwok pods in BENCH_NAMESPACES (5) namespaces, no
 *     processes behind them, labelled so each of BENCH_PROBES (1,000)
 *     probes selects 5;
 *  3. the operator as a child process (`--role controller` by default: the
 *     probes' 1h interval and no worker keep captures out of the figures),
 *     its RSS read from /proc/<pid>/status;
 *  4. (a) probes created as fast as possible -> all job schedulers in Redis;
 *     (b) spec.schedule.interval patched -> the scheduler's `every` changes,
 *     one probe at a time and as a burst;
 *     (c) operator RSS and CPU, peak and steady (a 65 s idle window spans a
 *     60 s resync);
 *  5. captures per second per worker core: captureHeap + attributeProfile +
 *     SeriesStore + analyzeSeries over a 12-capture window against a local
 *     HTTP server (a child process) serving the Go 1.26 fixture profiles.
 *
 * Prints a Markdown table. Everything it starts is stopped on success,
 * failure, SIGINT and SIGTERM.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, Watch, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { attributeProfile } from '../src/analysis/attribute.js';
import { analyzeSeries, DEFAULT_THRESHOLDS } from '../src/analysis/series.js';
import { GROUP, PLURAL, VERSION, type MapLeakProbe } from '../src/api/types.js';
import { captureHeap } from '../src/capture/capture.js';
import { directPprofClient } from '../src/capture/direct.js';
import { BinaryKnowledgeCache } from '../src/capture/binary-knowledge.js';
import { CAPTURE_QUEUE } from '../src/queue/names.js';
import { SeriesStore } from '../src/store/series-store.js';
import { applyManifestFile, loadKubeConfig, startCluster, stopCluster, waitForCrdsEstablished, type Cluster } from '../test/cluster/cluster.js';
import { freeLoopbackPort, startRedis, type RedisServer } from '../test/cluster/redis.js';
import { CACHE_DIR, CLI, repoPath } from '../test/support/paths.js';
import { testReaderToken } from '../test/support/tokens.js';

const CLUSTER = 'bench';
const num = (name: string, fallback: number): number => {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number, got "${process.env[name]}"`);
  return value;
};
const PODS = num('BENCH_PODS', 5000);
const PROBES = num('BENCH_PROBES', 1000);
const NAMESPACES = num('BENCH_NAMESPACES', 5);
const PODS_PER_PROBE = Math.max(1, Math.floor(PODS / PROBES));
const CREATE_CONCURRENCY = num('BENCH_CREATE_CONCURRENCY', 32);
const LATENCY_SAMPLES = num('BENCH_LATENCY_SAMPLES', 200);
const STEADY_SECONDS = num('BENCH_STEADY_SECONDS', 65);
const CAPTURE_SECONDS = num('BENCH_CAPTURE_SECONDS', 20);
const ROLE = process.env.BENCH_ROLE ?? 'controller';
/** Extra node flags for the operator child, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof --heap-prof` to see where its time and memory go. */
const OPERATOR_NODE_ARGS = (process.env.BENCH_OPERATOR_NODE_ARGS ?? '').split(' ').filter(Boolean);
/** BENCH_WORKER=0 skips (d), the captures per worker core, when only the controller is being measured. */
const WORKER_PART = process.env.BENCH_WORKER !== '0';
const POD_WAIT_MS = num('BENCH_POD_WAIT_SECONDS', 180) * 1000;
const SCHEDULER_WAIT_MS = num('BENCH_SCHEDULER_WAIT_SECONDS', 300) * 1000;
const WINDOW = 12;
const FIXTURES = ['heap-001', 'heap-008'].map((name) => repoPath('test', 'pprof', 'testdata', 'go1.26', name));
const benchDir = join(CACHE_DIR, 'bench');
/** Written by `npm run bench` (bench/heapgen): 57k samples from 4,096 stacks. */
const LARGE_PROFILE = join(benchDir, 'heap-large.pb.gz');
const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

// --- small helpers ----------------------------------------------------------

const ms = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e6;
const now = (): bigint => process.hrtime.bigint();
const log = (message: string): void => {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
};

function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}
const median = (values: readonly number[]): number => percentile(values, 50);

async function mapLimit<T>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, async () => {
      while (next < items.length) {
        const index = next++;
        await fn(items[index] as T, index);
      }
    }),
  );
}

async function retrying<T>(what: string, fn: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (attempt >= attempts || (code !== undefined && code < 500 && code !== 429)) throw new Error(`${what}: ${(err as Error).message}`);
      await sleep(200 * attempt);
    }
  }
}

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
const sec = (msValue: number): string => `${(msValue / 1000).toFixed(1)} s`;
const msText = (msValue: number): string => (Number.isFinite(msValue) ? `${msValue.toFixed(msValue < 10 ? 1 : 0)} ms` : 'n/a');

// --- /proc sampling -----------------------------------------------------------

interface ProcSample {
  at: number;
  rssBytes: number;
  hwmBytes: number;
  cpuSeconds: number;
}

const CLOCK_TICKS = 100;

function readProc(pid: number): ProcSample | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 (1-based) of stat: 11 and 12 after "pid (comm) ".
    const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
    return { at: Date.now(), rssBytes: kib('VmRSS'), hwmBytes: kib('VmHWM'), cpuSeconds };
  } catch {
    return undefined;
  }
}

class ProcSampler {
  readonly samples: ProcSample[] = [];
  private timer?: NodeJS.Timeout;
  constructor(private readonly pid: number) {}
  start(everyMs = 250): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }
  sample(): ProcSample | undefined {
    const s = readProc(this.pid);
    if (s) this.samples.push(s);
    return s;
  }
  stop(): void {
    clearInterval(this.timer);
  }
  between(from: number, to: number): ProcSample[] {
    return this.samples.filter((s) => s.at >= from && s.at <= to);
  }
}

// --- cleanup ------------------------------------------------------------------

const cleanups: { name: string; fn: () => Promise<void> }[] = [];
let cleaning: Promise<void> | undefined;
function onCleanup(name: string, fn: () => Promise<void>): void {
  cleanups.push({ name, fn });
}
function cleanupAll(): Promise<void> {
  return (cleaning ??= (async () => {
    for (const { name, fn } of cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        log(`cleanup of ${name} failed: ${(err as Error).message}`);
      }
    }
  })());
}
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});
function handleSignals(): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: cleaning up`);
      void cleanupAll().finally(() => process.exit(130));
    });
  }
}

async function stopChild(child: ChildProcess, timeoutMs = 10_000): Promise<number> {
  const started = Date.now();
  if (child.exitCode !== null || child.signalCode !== null) return 0;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  if (!(await Promise.race([exited.then(() => true), sleep(timeoutMs).then(() => false)]))) {
    child.kill('SIGKILL');
    await exited;
  }
  children.delete(child);
  return Date.now() - started;
}

// --- objects ------------------------------------------------------------------

const namespaceOf = (group: number): string => `bench-${group % NAMESPACES}`;

function podBody(cluster: Cluster, index: number): V1Pod {
  const group = Math.floor(index / PODS_PER_PROBE);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `pod-${index}`, namespace: namespaceOf(group), labels: { app: `g${group}`, bench: 'controller-scale' } },
    spec: {
      nodeName: cluster.nodeName,
      containers: [{ name: 'app', image: 'mapleakprobe.local/process:latest', ports: [{ name: 'pprof', containerPort: 6060, protocol: 'TCP' }] }],
      terminationGracePeriodSeconds: 0,
    },
  };
}

function probeBody(group: number): MapLeakProbe {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'MapLeakProbe',
    metadata: { name: `probe-${group}`, namespace: namespaceOf(group) },
    spec: { selector: { matchLabels: { app: `g${group}` } }, schedule: { interval: '1h', window: WINDOW }, suspend: false },
  } as unknown as MapLeakProbe;
}

const probeKey = (group: number): string => `${namespaceOf(group)}/probe-${group}`;

// --- figures --------------------------------------------------------------------

interface Row {
  section: string;
  figure: string;
  value: string;
  note?: string;
}
const rows: Row[] = [];
const record = (section: string, figure: string, value: string, note = ''): void => {
  rows.push({ section, figure, value, note });
  log(`${section} | ${figure}: ${value}${note ? ` (${note})` : ''}`);
};

/** 1-minute load average and the whole machine's CPU busy share since the last call (other sessions share these cores). */
let lastStat: { busy: number; total: number } | undefined;
function machineLoad(): string {
  const cpu = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').split(/\s+/).slice(1).map(Number);
  const idle = (cpu[3] ?? 0) + (cpu[4] ?? 0);
  const total = cpu.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
  const previous = lastStat;
  lastStat = { busy: total - idle, total };
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
  return previous ? `load ${load}, machine CPU ${(((lastStat.busy - previous.busy) / Math.max(1, lastStat.total - previous.total)) * 100).toFixed(0)}% busy since last mark` : `load ${load}`;
}

/** Which operator code ran: dist/src is built from the working tree, which other work may be changing. */
function codeVersion(): string {
  const git = (args: string[]): string => {
    const r = spawnSync('git', args, { cwd: repoPath(), encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : '?';
  };
  const dirty = git(['status', '--porcelain', '--', 'src']).split('\n').filter(Boolean).length;
  return `operator code: git ${git(['rev-parse', '--short', 'HEAD'])}${dirty ? ` + ${dirty} uncommitted file(s) under src/` : ''}`;
}

function printTable(totalMs: number): void {
  const lines = [
    `## Controller scale: ${PROBES} probes over ${PODS} kwok pods (${NAMESPACES} namespaces), operator --role ${ROLE}`,
    '',
    '| section | figure | value | note |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${r.section} | ${r.figure} | ${r.value} | ${r.note ?? ''} |`),
    '',
    `Whole run: ${sec(totalMs)} on ${readFileSync('/proc/cpuinfo', 'utf8').split('\n').filter((l) => l.startsWith('processor')).length} cores.`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

// --- the controller part --------------------------------------------------------

async function createPods(core: CoreV1Api, cluster: Cluster): Promise<void> {
  for (let n = 0; n < NAMESPACES; n++) {
    await core.createNamespace({ body: { metadata: { name: `bench-${n}` } } }).catch((err: unknown) => {
      if ((err as { code?: number }).code !== 409) throw err;
    });
  }
  const indexes = Array.from({ length: PODS }, (_, i) => i);
  const latencies: number[] = [];
  const started = now();
  let last = Date.now();
  let done = 0;
  await mapLimit(indexes, CREATE_CONCURRENCY, async (i) => {
    const body = podBody(cluster, i);
    const t = now();
    await retrying(`create pod ${i}`, () => core.createNamespacedPod({ namespace: body.metadata?.namespace ?? '', body }));
    latencies.push(ms(t));
    done++;
    if (Date.now() - last > 10_000) {
      last = Date.now();
      log(`  ${done}/${PODS} pods created`);
    }
  });
  const createdMs = ms(started);
  record('setup', `create ${PODS} pods (concurrency ${CREATE_CONCURRENCY})`, sec(createdMs), `${(PODS / (createdMs / 1000)).toFixed(0)} pods/s; request p50 ${msText(median(latencies))}, p99 ${msText(percentile(latencies, 99))}`);

  // kwok makes them Running (one status write each); count the ones that are not yet.
  const deadline = Date.now() + POD_WAIT_MS;
  let notRunning = PODS;
  for (;;) {
    notRunning = 0;
    for (let n = 0; n < NAMESPACES; n++) {
      const list = await core.listNamespacedPod({ namespace: `bench-${n}`, fieldSelector: 'status.phase!=Running' });
      notRunning += list.items.length;
    }
    if (notRunning === 0 || Date.now() > deadline) break;
    log(`  ${PODS - notRunning}/${PODS} pods Running`);
    await sleep(3000);
  }
  const runningMs = ms(started);
  let withIp = 0;
  const ips = new Set<string>();
  const ipNumber = (ip: string): number => ip.split('.').reduce((a, b) => a * 256 + Number(b), 0);
  for (let n = 0; n < NAMESPACES; n++) {
    const list = await core.listNamespacedPod({ namespace: `bench-${n}`, labelSelector: 'bench=controller-scale' });
    for (const pod of list.items) {
      if (pod.status?.podIP) {
        withIp++;
        ips.add(pod.status.podIP);
      }
    }
  }
  record(
    'setup',
    `pods Running (kwok)`,
    `${PODS - notRunning}/${PODS} after ${sec(runningMs)}`,
    `${withIp} with a pod IP, ${ips.size} distinct IPs from ${[...ips].sort((a, b) => ipNumber(a) - ipNumber(b))[0] ?? '-'} to ${[...ips].sort((a, b) => ipNumber(b) - ipNumber(a))[0] ?? '-'} (node CIDR ${cluster.podCidr})${notRunning > 0 ? `; gave up waiting after ${POD_WAIT_MS / 1000}s` : ''}`,
  );
}

interface OperatorChild {
  child: ChildProcess;
  pid: number;
  port: number;
  logFile: string;
  sampler: ProcSampler;
  /** TLS connections the operator opened so far (tls.connect calls, counted by tls-counter.js). */
  tlsConnections(): number;
}

async function startOperatorChild(cluster: Cluster, redis: RedisServer): Promise<OperatorChild> {
  const port = await freeLoopbackPort();
  mkdirSync(benchDir, { recursive: true });
  const logFile = join(benchDir, 'controller-scale-operator.log');
  const fd = openSync(logFile, 'w');
  const tlsCountFile = join(benchDir, 'controller-scale-tls-count');
  const counter = fileURLToPath(new URL('./tls-counter.js', import.meta.url));
  const args = [...OPERATOR_NODE_ARGS, '--import', counter, CLI, 'operator', '--role', ROLE, '--kubeconfig', cluster.kubeconfigPath, '--redis-url', redis.url, '--port', String(port), '--no-leader-elect'];
  const child = spawn(process.execPath, args, { env: { ...process.env, LOG_LEVEL: 'warn', MAPLEAK_BENCH_TLS_COUNT_FILE: tlsCountFile }, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  children.add(child);
  onCleanup('operator', async () => {
    await stopChild(child);
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('operator did not start');
  const sampler = new ProcSampler(pid);
  sampler.start();
  const started = now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`operator exited with code ${child.exitCode}; see ${logFile}`);
    const ok = await fetch(`http://127.0.0.1:${port}/readyz`)
      .then((r) => r.status === 200)
      .catch(() => false);
    if (ok) break;
    if (ms(started) > 60_000) throw new Error(`operator not ready within 60s; see ${logFile}`);
    await sleep(100);
  }
  record('operator', 'start to /readyz 200 (0 probes)', msText(ms(started)), `--role ${ROLE}`);
  const tlsConnections = (): number => {
    try {
      return Number(readFileSync(tlsCountFile, 'utf8').trim());
    } catch {
      return Number.NaN;
    }
  };
  return { child, pid, port, logFile, sampler, tlsConnections };
}

function countStatus(items: MapLeakProbe[]): { ready: number; finalizers: number } {
  let ready = 0;
  let finalizers = 0;
  for (const p of items) {
    if ((p.metadata.finalizers ?? []).length > 0) finalizers++;
    const c = p.status?.conditions?.find((x) => x.type === 'Ready');
    if (c?.status === 'True' && p.status?.observedGeneration === p.metadata.generation) ready++;
  }
  return { ready, finalizers };
}

async function listProbes(custom: CustomObjectsApi): Promise<MapLeakProbe[]> {
  const list = (await custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })) as { items: MapLeakProbe[] };
  return list.items;
}

async function createProbesAndWait(custom: CustomObjectsApi, queue: Queue, operator: OperatorChild): Promise<void> {
  const groups = Array.from({ length: PROBES }, (_, g) => g);
  const createLatencies: number[] = [];
  const startedAt = Date.now();
  const cpuBefore = readProc(operator.pid)?.cpuSeconds ?? 0;
  const tlsBefore = operator.tlsConnections();
  const started = now();
  let createdMs = Number.NaN;
  let schedulersMs = Number.NaN;
  let firstSchedulerMs = Number.NaN;
  const progress: string[] = [];
  const creating = mapLimit(groups, CREATE_CONCURRENCY, async (g) => {
    const body = probeBody(g);
    const t = now();
    await retrying(`create probe ${g}`, () => custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: body.metadata.namespace, plural: PLURAL, body }));
    createLatencies.push(ms(t));
  }).then(() => {
    createdMs = ms(started);
  });
  let creationError: unknown;
  creating.catch((err: unknown) => (creationError = err));
  let lastProgress = 0;
  for (;;) {
    if (creationError) throw creationError;
    const count = await queue.getJobSchedulersCount();
    if (count > 0 && Number.isNaN(firstSchedulerMs)) firstSchedulerMs = ms(started);
    if (ms(started) - lastProgress >= 5000) {
      lastProgress = ms(started);
      progress.push(`${(lastProgress / 1000).toFixed(0)}s:${count}`);
      log(`  ${count}/${PROBES} schedulers after ${sec(ms(started))} (operator RSS ${mib(readProc(operator.pid)?.rssBytes ?? 0)})`);
    }
    if (count >= PROBES) {
      schedulersMs = ms(started);
      break;
    }
    if (ms(started) > SCHEDULER_WAIT_MS) break;
    if (operator.child.exitCode !== null) throw new Error(`operator exited with code ${operator.child.exitCode}; see ${operator.logFile}`);
    await sleep(100);
  }
  await creating;
  const cpuAtSchedulers = readProc(operator.pid)?.cpuSeconds ?? 0;
  record('a: create', `create ${PROBES} probes (concurrency ${CREATE_CONCURRENCY})`, sec(createdMs), `request p50 ${msText(median(createLatencies))}, p99 ${msText(percentile(createLatencies, 99))}`);
  record('a: create', 'first probe created -> first scheduler', msText(firstSchedulerMs));
  if (Number.isNaN(schedulersMs)) {
    record('a: create', `start -> all ${PROBES} schedulers in Redis`, `not reached in ${SCHEDULER_WAIT_MS / 1000}s`, `${await queue.getJobSchedulersCount()} present; progress ${progress.join(' ')}`);
    return;
  }
  record('a: create', `start -> all ${PROBES} schedulers in Redis`, sec(schedulersMs), `${(PROBES / (schedulersMs / 1000)).toFixed(1)} schedulers/s; operator CPU ${(cpuAtSchedulers - cpuBefore).toFixed(1)} s; progress ${progress.join(' ')}`);

  // Settled: every probe has Ready=True for its generation (the last status writes).
  let readyMs = Number.NaN;
  let counts = { ready: 0, finalizers: 0 };
  for (;;) {
    counts = countStatus(await listProbes(custom));
    if (counts.ready >= PROBES) {
      readyMs = ms(started);
      break;
    }
    if (ms(started) > SCHEDULER_WAIT_MS + 120_000) break;
    await sleep(1000);
  }
  record('a: create', `start -> all ${PROBES} probes Ready=True (status written)`, Number.isNaN(readyMs) ? `not reached (${counts.ready} Ready)` : sec(readyMs), `${counts.finalizers} with the finalizer; polled by listing every 1 s`);
  // The work queue drains the echo of the status writes: wait until the operator is idle.
  const idleFrom = await waitIdle(operator, 60_000);
  record('a: create', `start -> operator idle (CPU < 5% over 2 s)`, idleFrom === undefined ? 'not idle within 60 s' : sec(idleFrom - startedAt), `operator CPU from start: ${((readProc(operator.pid)?.cpuSeconds ?? 0) - cpuBefore).toFixed(1)} s; ${operator.tlsConnections() - tlsBefore} new TLS connections to the API server (${((operator.tlsConnections() - tlsBefore) / PROBES).toFixed(1)} per probe)`);
}

/** V8 heap figures from the operator's own /metrics (prom-client default metrics). */
async function heapFigures(operator: OperatorChild, token: string): Promise<string> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${operator.port}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
    const value = (name: string): number => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, 'm').exec(text)?.[1] ?? Number.NaN);
    return `V8 heap used ${mib(value('nodejs_heap_size_used_bytes'))} of ${mib(value('nodejs_heap_size_total_bytes'))}, external ${mib(value('nodejs_external_memory_bytes'))}`;
  } catch (err) {
    return `no /metrics: ${(err as Error).message}`;
  }
}

/** Waits until the process used under 5% of a core over 2 s; returns when that window started. */
async function waitIdle(operator: OperatorChild, timeoutMs: number): Promise<number | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const a = readProc(operator.pid);
    await sleep(2000);
    const b = readProc(operator.pid);
    if (a && b && (b.cpuSeconds - a.cpuSeconds) / ((b.at - a.at) / 1000) < 0.05) return a.at;
  }
  return undefined;
}

async function patchInterval(custom: CustomObjectsApi, group: number, interval: string): Promise<void> {
  await custom.patchNamespacedCustomObject(
    { group: GROUP, version: VERSION, namespace: namespaceOf(group), plural: PLURAL, name: `probe-${group}`, body: { spec: { schedule: { interval } } } },
    MERGE_PATCH,
  );
}

/** One probe at a time: patch, then poll its scheduler in a tight loop until `every` changes. */
async function sequentialLatency(custom: CustomObjectsApi, queue: Queue, groups: number[], interval: string, everyMs: number): Promise<{ fromAck: number[]; fromSend: number[]; timeouts: number }> {
  const fromAck: number[] = [];
  const fromSend: number[] = [];
  let timeouts = 0;
  for (const g of groups) {
    const sent = now();
    await patchInterval(custom, g, interval);
    const acked = now();
    const key = probeKey(g);
    let ok = false;
    while (ms(acked) < 30_000) {
      const scheduler = await queue.getJobScheduler(key);
      if (scheduler?.every === everyMs) {
        ok = true;
        break;
      }
      await sleep(1);
    }
    if (!ok) {
      timeouts++;
      continue;
    }
    fromAck.push(ms(acked));
    fromSend.push(ms(sent));
  }
  return { fromAck, fromSend, timeouts };
}

/** All at once: patches with bounded concurrency, every pending scheduler polled every 20 ms. */
async function burstLatency(custom: CustomObjectsApi, queue: Queue, groups: number[], interval: string, everyMs: number): Promise<{ fromAck: number[]; allMs: number; timeouts: number }> {
  const ackedAt = new Map<number, bigint>();
  const fromAck: number[] = [];
  const started = now();
  const patching = mapLimit(groups, CREATE_CONCURRENCY, async (g) => {
    await patchInterval(custom, g, interval);
    ackedAt.set(g, now());
  });
  let patchError: unknown;
  patching.catch((err: unknown) => (patchError = err));
  const pending = new Set(groups);
  while (pending.size > 0 && ms(started) < 120_000) {
    if (patchError) throw patchError;
    const batch = [...pending].filter((g) => ackedAt.has(g));
    const schedulers = await Promise.all(batch.map((g) => queue.getJobScheduler(probeKey(g))));
    const seen = now();
    batch.forEach((g, i) => {
      if (schedulers[i]?.every === everyMs) {
        pending.delete(g);
        fromAck.push(Number(seen - (ackedAt.get(g) as bigint)) / 1e6);
      }
    });
    await sleep(20);
  }
  await patching;
  return { fromAck, allMs: ms(started), timeouts: pending.size };
}

/** Opens watches on the probes until one stays open for 2 s without an error; returns how long that took. */
async function waitForWatchable(kc: KubeConfig): Promise<number> {
  const started = now();
  const watch = new Watch(kc);
  for (;;) {
    let failed: unknown;
    const controller = await watch
      .watch(`/apis/${GROUP}/${VERSION}/${PLURAL}`, {}, () => undefined, (err: unknown) => (failed ??= err ?? 'closed'))
      .catch((err: unknown) => {
        failed = err;
        return undefined;
      });
    await sleep(2000);
    const ok = !failed && controller !== undefined;
    controller?.abort();
    if (ok) return ms(started) - 2000;
    if (ms(started) > 120_000) throw new Error(`probe watch still failing after 120s: ${String((failed as Error).message ?? failed)}`);
    await sleep(250);
  }
}

/**
 * Pod churn with the operator running: one new pod per probe (kwok makes it
 * Running and Ready). The controller watches pods and turns a selected pod
 * becoming Ready into one extra (debounced) round per probe: count those jobs.
 */
async function podChurn(core: CoreV1Api, cluster: Cluster, queue: Queue, operator: OperatorChild): Promise<void> {
  const pendingJobs = async (): Promise<number> => {
    const counts = await queue.getJobCounts('waiting', 'delayed', 'prioritized');
    return Object.values(counts).reduce((a, b) => a + b, 0);
  };
  const before = await pendingJobs();
  const cpu0 = readProc(operator.pid)?.cpuSeconds ?? 0;
  const tls0 = operator.tlsConnections();
  const started = now();
  const groups = Array.from({ length: PROBES }, (_, g) => g);
  await mapLimit(groups, CREATE_CONCURRENCY, async (g) => {
    const body = podBody(cluster, g * PODS_PER_PROBE);
    body.metadata = { ...body.metadata, name: `extra-${g}` };
    await retrying(`create pod extra-${g}`, () => core.createNamespacedPod({ namespace: namespaceOf(g), body }));
  });
  const createdMs = ms(started);
  let triggered = 0;
  let allMs = Number.NaN;
  while (ms(started) < 120_000) {
    triggered = (await pendingJobs()) - before;
    if (triggered >= PROBES) {
      allMs = ms(started);
      break;
    }
    await sleep(250);
  }
  await waitIdle(operator, 30_000);
  record(
    'e: pod churn',
    `${PROBES} new selected pods (one per probe) -> extra rounds queued`,
    `${triggered} jobs${Number.isNaN(allMs) ? ' (not all within 120 s)' : ` after ${sec(allMs)}`}`,
    `pods created in ${sec(createdMs)}; operator CPU ${((readProc(operator.pid)?.cpuSeconds ?? 0) - cpu0).toFixed(1)} s, ${operator.tlsConnections() - tls0} new TLS connections; RSS now ${mib(readProc(operator.pid)?.rssBytes ?? 0)}`,
  );
}

async function controllerPart(cluster: Cluster, redis: RedisServer): Promise<void> {
  const kc: KubeConfig = loadKubeConfig(cluster);
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  await applyManifestFile(kc, repoPath('crds', 'mapleakprobes.yaml'));
  await waitForCrdsEstablished(kc, ['mapleakprobes.mapleak.io']);

  log(`creating ${PODS} pods`);
  await createPods(core, cluster);

  const queueRedis = new Redis(redis.url, { maxRetriesPerRequest: null });
  const queue = new Queue(CAPTURE_QUEUE, { connection: queueRedis });
  onCleanup('bench queue', async () => {
    await queue.close();
    queueRedis.disconnect();
  });

  // A fresh CRD's watch cache answers 429 "storage is (re)initializing" for a while: start the operator once a watch holds.
  const watchableMs = await waitForWatchable(kc);
  record('setup', 'CRD established -> probe watch served', msText(watchableMs), 'watches before that get 429 "storage is (re)initializing"');
  log('starting the operator');
  const operator = await startOperatorChild(cluster, redis);
  const baseline = operator.sampler.sample();
  record('c: operator', 'RSS with 0 probes', mib(baseline?.rssBytes ?? 0));
  // /metrics needs a bearer token.
  const metricsToken = await testReaderToken(kc);

  log(`(a) creating ${PROBES} probes`);
  const aStart = Date.now();
  await createProbesAndWait(custom, queue, operator);
  const aEnd = Date.now();
  const aSamples = operator.sampler.between(aStart, aEnd);
  record('c: operator', `peak RSS while ${PROBES} probes were reconciled`, mib(Math.max(...aSamples.map((s) => s.rssBytes))), `VmHWM so far ${mib(operator.sampler.sample()?.hwmBytes ?? 0)}; now ${await heapFigures(operator, metricsToken)}`);

  record('machine', 'after (a)', machineLoad());
  log(`(b) ${LATENCY_SAMPLES} interval changes, one at a time`);
  const step = Math.max(1, Math.floor(PROBES / LATENCY_SAMPLES));
  const seqGroups = Array.from({ length: Math.min(LATENCY_SAMPLES, PROBES) }, (_, i) => (i * step) % PROBES);
  const seq = await sequentialLatency(custom, queue, seqGroups, '2h', 2 * 3_600_000);
  record('b: watch->scheduler', `sequential, N=${seq.fromAck.length}: patch acknowledged -> scheduler.every changed`, `p50 ${msText(median(seq.fromAck))}, p99 ${msText(percentile(seq.fromAck, 99))}`, `${seq.fromAck.filter((x) => x > 1000).length} over 1 s, slowest ${[...seq.fromAck].sort((a, b) => b - a).slice(0, 3).map(msText).join(', ')}; from patch sent: p50 ${msText(median(seq.fromSend))}, p99 ${msText(percentile(seq.fromSend, 99))}${seq.timeouts ? `; ${seq.timeouts} not seen in 30 s` : ''}`);

  await waitIdle(operator, 30_000);
  log(`(b) ${LATENCY_SAMPLES} interval changes at once`);
  const burstGroups = seqGroups.map((g) => (g + 1) % PROBES);
  const burst = await burstLatency(custom, queue, burstGroups, '3h', 3 * 3_600_000);
  record('b: watch->scheduler', `burst of ${burstGroups.length} patches (concurrency ${CREATE_CONCURRENCY}): ack -> every changed`, `p50 ${msText(median(burst.fromAck))}, p99 ${msText(percentile(burst.fromAck, 99))}`, `all ${burstGroups.length - burst.timeouts} seen after ${sec(burst.allMs)}; polled every 20 ms${burst.timeouts ? `; ${burst.timeouts} not seen in 120 s` : ''}`);

  await waitIdle(operator, 30_000);
  record('machine', 'after (b)', machineLoad());
  log(`(c) steady state for ${STEADY_SECONDS}s (spans a 60 s resync)`);
  const steadyStart = Date.now();
  const cpuStart = readProc(operator.pid)?.cpuSeconds ?? 0;
  const tlsStart = operator.tlsConnections();
  await sleep(STEADY_SECONDS * 1000);
  await sleep(300);
  const tlsSteady = operator.tlsConnections() - tlsStart;
  const end = operator.sampler.sample();
  const steady = operator.sampler.between(steadyStart, Date.now());
  const cpuSteady = (end?.cpuSeconds ?? 0) - cpuStart;
  // Bursts of CPU within the idle window are resyncs: 1 s buckets above 20% of a core.
  const buckets: { index: number; at: number; share: number }[] = [];
  for (let i = 4; i < steady.length; i += 4) {
    const a = steady[i - 4] as ProcSample;
    const b = steady[i] as ProcSample;
    buckets.push({ index: i / 4 - 1, at: a.at, share: (b.cpuSeconds - a.cpuSeconds) / ((b.at - a.at) / 1000) });
  }
  const busyBuckets = buckets.filter((b) => b.share > 0.2);
  const busy = busyBuckets.map((b) => `${((b.at - steadyStart) / 1000).toFixed(0)}s:${(b.share * 100).toFixed(0)}%`);
  record('c: operator', `steady RSS with ${PROBES} probes (median over ${STEADY_SECONDS} s)`, mib(median(steady.map((s) => s.rssBytes))), `min ${mib(Math.min(...steady.map((s) => s.rssBytes)))}, max ${mib(Math.max(...steady.map((s) => s.rssBytes)))}; at the end ${await heapFigures(operator, metricsToken)}`);
  // V8 returns the garbage of the burst in (a)/(b) to the OS only when its memory reducer runs, about a minute into the idle window: the window's tail is the process at rest.
  const tail = steady.filter((s) => s.at >= Date.now() - 20_000);
  const drops = steady.slice(1).filter((s, i) => (steady[i] as ProcSample).rssBytes - s.rssBytes > 16 * 1024 * 1024);
  record(
    'c: operator',
    `RSS at rest with ${PROBES} probes (median of the idle window's last 20 s)`,
    mib(median(tail.map((s) => s.rssBytes))),
    drops.length ? `RSS fell by more than 16 MiB at ${drops.map((s) => `${((s.at - steadyStart) / 1000).toFixed(0)} s`).join(', ')} into the window (V8 releasing the burst's heap)` : 'no drop of more than 16 MiB within the window',
  );
  // The longest run of busy 1 s buckets (gaps of one quiet bucket allowed) is one resync pass over every probe.
  let best = { length: 0, cpu: 0 };
  let current = { length: 0, cpu: 0, last: -10 };
  for (const b of busyBuckets) {
    current = b.index - current.last <= 2 ? { length: current.length + (b.index - current.last), cpu: current.cpu + b.share, last: b.index } : { length: 1, cpu: b.share, last: b.index };
    if (current.length > best.length) best = { length: current.length, cpu: current.cpu };
  }
  record(
    'c: operator',
    `one resync pass over ${PROBES} probes (longest busy run of 1 s buckets)`,
    `~${best.length} s, ~${best.cpu.toFixed(1)} CPU-s`,
    `~${((best.cpu / PROBES) * 1000).toFixed(1)} ms operator CPU per probe; resync every 60 s reads every scheduler from Redis at once and reconciles only probes whose scheduler or Ready status differs from the watch cache`,
  );
  record('c: operator', `new TLS connections to the API server while idle (${STEADY_SECONDS} s)`, String(tlsSteady), 'each is a TLS handshake; the operator shares one keep-alive agent per identity (src/clusters/keep-alive.ts), where client-node 1.4 alone would open one per API call');
  record('c: operator', `idle CPU with ${PROBES} probes`, `${((cpuSteady / STEADY_SECONDS) * 100).toFixed(1)}% of a core`, `${cpuSteady.toFixed(2)} CPU-s in ${STEADY_SECONDS} s; busy seconds (>20%): ${busy.join(' ') || 'none'}`);
  record('c: operator', 'peak RSS (VmHWM) over the whole run', mib(end?.hwmBytes ?? 0));
  record('machine', 'after (c)', machineLoad());

  if (process.env.BENCH_POD_CHURN !== '0') {
    log(`(e) ${PROBES} new pods while the operator runs`);
    await podChurn(core, cluster, queue, operator);
  }

  operator.sampler.stop();
  const stopMs = await stopChild(operator.child);
  record('operator', 'SIGTERM -> exit', msText(stopMs), `exit code ${operator.child.exitCode ?? operator.child.signalCode}`);
  const warnings = readFileSync(operator.logFile, 'utf8').split('\n').filter((l) => l.includes('"level":"warn"') || l.includes('"level":"error"'));
  const byMsg = new Map<string, number>();
  for (const line of warnings) {
    const msg = /"msg":"([^"]*)"/.exec(line)?.[1] ?? line.slice(0, 80);
    byMsg.set(msg, (byMsg.get(msg) ?? 0) + 1);
  }
  record('operator', 'warnings/errors logged', String(warnings.length), [...byMsg].map(([m, n]) => `${n}× ${m}`).join('; ') || `log: ${operator.logFile}`);
}

// --- the worker part: captures per second per core --------------------------------

/** Child-process mode: serve the fixture profiles like net/http/pprof. */
async function serveFixtures(set: string): Promise<void> {
  if (set === 'large') {
    // bench/heapgen's 57k-sample proto only: debug=1 and /symbol answer 404, as from a Go build without them.
    const proto = readFileSync(LARGE_PROFILE);
    const server = createHttpServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (req.method === 'GET' && url.pathname === '/debug/pprof/heap' && !url.searchParams.has('debug')) res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(proto);
      else res.writeHead(404).end('404 page not found\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const address = server.address();
    process.stdout.write(`${typeof address === 'object' && address ? address.port : 0}\n`);
    process.on('SIGTERM', () => server.close(() => process.exit(0)));
    return;
  }
  const fixtures = FIXTURES.map((base) => ({
    proto: readFileSync(`${base}.pb.gz`),
    debug1: readFileSync(`${base}.txt`),
    symbols: new Map(
      readFileSync(`${base}.sym`, 'utf8')
        .split('\n')
        .slice(1)
        .map((line) => line.split(' ') as [string, string])
        .filter(([pc, name]) => pc.startsWith('0x') && name)
        .map(([pc, name]) => [Number.parseInt(pc, 16), name]),
    ),
  }));
  let current = 0;
  let served = 0;
  const server = createHttpServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const fixture = fixtures[current] as (typeof fixtures)[number];
    if (req.method === 'GET' && url.pathname === '/debug/pprof/heap') {
      if (url.searchParams.get('debug') === '1') {
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(fixture.debug1);
      } else {
        // Each proto request starts a new capture: alternate fixtures so consecutive captures differ.
        current = served++ % fixtures.length;
        const next = fixtures[current] as (typeof fixtures)[number];
        res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(next.proto);
      }
      return;
    }
    if (req.method === 'POST' && url.pathname === '/debug/pprof/symbol') {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      req.on('end', () => {
        const names = body
          .split('+')
          .map((pc) => Number.parseInt(pc, 16))
          .map((pc) => [pc, fixture.symbols.get(pc)] as const)
          .filter(([, name]) => name);
        res.writeHead(200, { 'content-type': 'text/plain' }).end(`num_symbols: 1\n${names.map(([pc, name]) => `0x${pc.toString(16)} ${name}`).join('\n')}\n`);
      });
      return;
    }
    res.writeHead(404).end('404 page not found\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  process.stdout.write(`${typeof address === 'object' && address ? address.port : 0}\n`);
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

async function startFixtureServer(set: 'small' | 'large'): Promise<{ url: string; child: ChildProcess; pid: number }> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--serve-fixtures', set], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  onCleanup('fixture server', async () => {
    await stopChild(child);
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      if (out.includes('\n')) resolve(Number(out.trim()));
    });
    child.once('exit', (code) => reject(new Error(`fixture server exited with code ${code}`)));
  });
  return { url: `http://127.0.0.1:${port}/debug/pprof`, child, pid: child.pid ?? 0 };
}

interface CaptureRun {
  captures: number;
  seconds: number;
  cpuSeconds: number;
  sliceRates: number[];
  serverCpuSeconds: number;
}

async function captureLoop(redis: Redis, baseUrl: string, serverPid: number, options: { seconds: number; concurrency: number; coldSymbols: boolean; label: string; pods?: number }): Promise<CaptureRun> {
  const store = new SeriesStore(redis, `bench-${options.label}`);
  const sharedSymbols = new BinaryKnowledgeCache();
  const client = directPprofClient(baseUrl, 10_000);
  const probe = 'bench/probe-0';
  const pods = Array.from({ length: options.pods ?? 5 }, (_, i) => `pod-uid-${i}`);
  const ttlSeconds = 3 * 3600;
  const base = Date.UTC(2026, 0, 1);
  let seq = 0;
  const one = async (): Promise<void> => {
    const n = seq++;
    const pod = pods[n % pods.length] as string;
    const symbols = options.coldSymbols ? new BinaryKnowledgeCache() : sharedSymbols;
    const capture = await captureHeap(client, { limits: { maxBytes: 64 * 1024 * 1024 }, knowledge: symbols, scope: pod });
    // The fixtures carry their own timestamp: give each capture its own minute so the window is a real series.
    const time = new Date(base + Math.floor(n / pods.length) * 60_000);
    const id = createHash('sha256').update(`job-${n}|${pod}`).digest('hex').slice(0, 24);
    await store.addCapture(probe, pod, { id, snapshot: { ...attributeProfile(capture.profile), time }, proto: capture.proto }, WINDOW, ttlSeconds);
    const series = await store.loadSeries(probe, pod);
    const analysis = analyzeSeries(series, DEFAULT_THRESHOLDS);
    if (series.length === 0 || analysis === undefined) throw new Error('empty series');
    await store.recordTarget(probe, { name: pod, namespace: 'bench', uid: pod, lastCaptureTime: time.toISOString() }, ttlSeconds);
  };
  // Warm up (JIT, connections) and fill every pod's window to 12 captures.
  for (let i = 0; i < WINDOW * pods.length; i++) await one();

  const sliceMs = 5000;
  const sliceRates: number[] = [];
  const cpu0 = process.cpuUsage();
  const server0 = readProc(serverPid)?.cpuSeconds ?? 0;
  const started = now();
  let captures = 0;
  let sliceStart = now();
  let sliceCount = 0;
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      while (ms(started) < options.seconds * 1000) {
        await one();
        captures++;
        sliceCount++;
        if (ms(sliceStart) >= sliceMs) {
          sliceRates.push(sliceCount / (ms(sliceStart) / 1000));
          sliceStart = now();
          sliceCount = 0;
        }
      }
    }),
  );
  const seconds = ms(started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const window = await store.loadSeries(probe, pods[0] as string);
  if (window.length !== WINDOW) throw new Error(`window holds ${window.length} captures, expected ${WINDOW}`);
  return { captures, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, sliceRates, serverCpuSeconds: (readProc(serverPid)?.cpuSeconds ?? 0) - server0 };
}

async function workerPart(redis: RedisServer): Promise<void> {
  const server = await startFixtureServer('small');
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  onCleanup('capture redis', async () => {
    connection.disconnect();
  });
  const sizes = FIXTURES.map((f) => `${(readFileSync(`${f}.pb.gz`).length / 1024).toFixed(1)}+${(readFileSync(`${f}.txt`).length / 1024).toFixed(0)} KiB`).join(', ');
  const runs: { label: string; concurrency: number; coldSymbols: boolean; note: string }[] = [
    { label: 'warm-c1', concurrency: 1, coldSymbols: false, note: 'one capture at a time; symbols cached per build id (as the operator does)' },
    { label: 'warm-c4', concurrency: 4, coldSymbols: false, note: '4 captures in flight (the worker default targetConcurrency); symbols cached' },
    { label: 'cold-c1', concurrency: 1, coldSymbols: true, note: 'one at a time; /symbol asked every capture (a new binary each time)' },
  ];
  for (const run of runs) {
    log(`captures: ${run.label} for ${CAPTURE_SECONDS}s`);
    const r = await captureLoop(connection, server.url, server.pid, { seconds: CAPTURE_SECONDS, concurrency: run.concurrency, coldSymbols: run.coldSymbols, label: run.label });
    const rate = r.captures / r.seconds;
    const cpuPer = r.cpuSeconds / r.captures;
    record(
      'd: captures',
      `${run.label}: captures/s (median of ${r.sliceRates.length} 5 s slices)`,
      `${median(r.sliceRates.length ? r.sliceRates : [rate]).toFixed(1)} /s`,
      `${r.captures} in ${r.seconds.toFixed(1)} s (${rate.toFixed(1)}/s overall, slices ${r.sliceRates.map((x) => x.toFixed(0)).join('/')}); worker process at ${((r.cpuSeconds / r.seconds) * 100).toFixed(0)}% of a core; ${run.note}`,
    );
    record('d: captures', `${run.label}: worker CPU per capture`, msText(cpuPer * 1000), `=> ${(1 / cpuPer).toFixed(1)} captures per CPU-second of one worker core; profile server child used ${r.serverCpuSeconds.toFixed(2)} CPU-s (not counted)`);
  }
  record('d: captures', 'profiles served', `heap-001/heap-008 (Go 1.26) alternating`, `${sizes} (proto+debug=1); capture = proto + debug=1 + /symbol + attribute + SeriesStore.addCapture + loadSeries + analyzeSeries(12) + recordTarget`);
  await stopChild(server.child);

  if (existsSync(LARGE_PROFILE)) {
    const large = await startFixtureServer('large');
    const seconds = Math.max(1, Math.round(CAPTURE_SECONDS / 2));
    log(`captures: large-c1 for ${seconds}s`);
    const r = await captureLoop(connection, large.url, large.pid, { seconds, concurrency: 1, coldSymbols: false, label: 'large-c1', pods: 1 });
    const cpuPer = r.cpuSeconds / r.captures;
    record(
      'd: captures',
      `large-c1: captures/s, proto only (${(readFileSync(LARGE_PROFILE).length / 1024).toFixed(0)} KiB, 57k samples)`,
      `${median(r.sliceRates.length ? r.sliceRates : [r.captures / r.seconds]).toFixed(1)} /s`,
      `${r.captures} in ${r.seconds.toFixed(1)} s; worker CPU ${msText(cpuPer * 1000)} per capture => ${(1 / cpuPer).toFixed(1)} per CPU-second; debug=1 404 so no symbolization; identical captures collapse to one in analyzeSeries`,
    );
    await stopChild(large.child);
  } else {
    record('d: captures', 'large-c1', 'skipped', `${LARGE_PROFILE} missing: run npm run bench once to generate it`);
  }
  record('machine', 'after (d)', machineLoad());
}

// --- main -------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = Date.now();
  if (PODS < PROBES) throw new Error('BENCH_PODS must be at least BENCH_PROBES');
  let cluster: Cluster | undefined;
  let redis: RedisServer | undefined;
  try {
    record('machine', 'at start', machineLoad(), codeVersion());
    log(`starting cluster "${CLUSTER}"`);
    const t = now();
    onCleanup('cluster', async () => {
      log(`stopping cluster "${CLUSTER}"`);
      await stopCluster(CLUSTER);
    });
    // Cluster ports come from an index claimed per checkout: another checkout's cluster can hold them for a while.
    for (let attempt = 1; ; attempt++) {
      try {
        cluster = await startCluster({ name: CLUSTER, log: (m) => log(`  ${m}`) });
        break;
      } catch (err) {
        if (!/already in use/.test((err as Error).message) || attempt >= 30) throw err;
        log(`  ${(err as Error).message}; retrying in 10 s`);
        await sleep(10_000);
      }
    }
    record('setup', 'cluster start (etcd + kube-apiserver + kwok)', sec(ms(t)), 'including any wait for ports held by another checkout\'s cluster');
    redis = await startRedis();
    const r = redis;
    onCleanup('redis', () => r.stop());
    await controllerPart(cluster, redis);
    // The control plane is not needed any more: stop it so the capture figures have both cores to themselves.
    const c = now();
    await stopCluster(CLUSTER);
    record('setup', 'cluster stop', sec(ms(c)));
    if (WORKER_PART) await workerPart(redis);
  } finally {
    await cleanupAll();
  }
  printTable(Date.now() - started);
}

const serveIndex = process.argv.indexOf('--serve-fixtures');
if (serveIndex >= 0) {
  void serveFixtures(process.argv[serveIndex + 1] ?? 'small');
} else {
  handleSignals();
  main().catch(async (err: unknown) => {
    log(`benchmark failed: ${(err as Error).stack ?? String(err)}`);
    await cleanupAll();
    if (rows.length > 0) printTable(0);
    process.exit(1);
  });
}

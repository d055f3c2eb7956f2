/**
 * `npm run bench:workers`: capture rounds per second and CPU per round with
 * 1, 2 and 4 worker processes on one Redis and the local control plane.
 *
 *  1. its own cluster (`bench-workers`: etcd + kube-apiserver + kwok) and
 *     Redis; BENCH_PODS (4) kwok pods backed by real Go programs
 *     (test/targets/leaky, Go 1.26, swiss maps) in network namespaces,
 *     captured through the API server's pod proxy as in production;
 *  2. BENCH_PROBES (32) probes, each selecting BENCH_PODS_PER_PROBE (2) of
 *     them; no controller runs (no schedulers), the bench queues rounds;
 *  3. per configuration (BENCH_CONFIGS, default 1x4,2x4,4x4,1x16: worker
 *     processes × --concurrency, 4 being the chart's): that many
 *     `mapleak operator --role worker` processes, a warm-up wave (every
 *     worker learns the binaries' hidden frames), then BENCH_WAVES (3)
 *     measured waves of one round per probe, queued at once: rounds per
 *     second = rounds / (last finish − queued), CPU from /proc/<pid>/stat of
 *     the workers, kube-apiserver + etcd and the Go targets (Redis: INFO cpu), and what the
 *     rest of the machine (other sessions) used meanwhile from /proc/stat;
 *     BENCH_PASSES (2) passes over every configuration in turn;
 *  4. Redis bytes per stored capture (MEMORY USAGE of the series keys over
 *     the captures they hold).
 *
 * Prints a Markdown table of medians. Everything it starts is stopped on
 * success, failure, SIGINT and SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { Queue, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { GROUP, PLURAL, VERSION, type MapLeakProbe } from '../src/api/types.js';
import { CAPTURE_JOB, CAPTURE_QUEUE, type CaptureJobData } from '../src/queue/names.js';
import { applyManifestFile, loadKubeConfig, runPod, startCluster, stopCluster, waitForCrdsEstablished, type Cluster, type RunningPod } from '../test/cluster/cluster.js';
import { startRedis, type RedisServer } from '../test/cluster/redis.js';
import { CLI, repoPath } from '../test/support/paths.js';

const CLUSTER = 'bench-workers';
const NS = 'default';
const num = (name: string, fallback: number): number => {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value < 1) throw new Error(`${name} must be a positive number, got "${process.env[name]}"`);
  return value;
};
const PODS = num('BENCH_PODS', 4);
const PROBES = num('BENCH_PROBES', 32);
const PODS_PER_PROBE = Math.min(PODS, num('BENCH_PODS_PER_PROBE', 2));
const WAVES = num('BENCH_WAVES', 3);
/** Passes over all configurations (A B C D A B C D): the machine's other load drifts, every configuration sees it. */
const PASSES = num('BENCH_PASSES', 2);
/**
 * Worker processes × --concurrency each. 1×16 is the peer of 4×4: as many
 * rounds at once in one process, telling what a process adds beyond
 * concurrency.
 */
const CONFIGS = (process.env.BENCH_CONFIGS ?? '1x4,2x4,4x4,1x16').split(',').map((text) => {
  const [workers, concurrency] = text.split('x').map(Number);
  if (!workers || !concurrency) throw new Error(`BENCH_CONFIGS: "${text}" is not WORKERSxCONCURRENCY`);
  return { workers, concurrency };
});
const CORES = readFileSync('/proc/cpuinfo', 'utf8').match(/^processor\s/gm)?.length ?? 1;
const WAVE_TIMEOUT_MS = 180_000;
const CLOCK_TICKS = 100;

const log = (message: string): void => {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
};
const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

/** User + system CPU seconds of a process (0 once it is gone). */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** Busy and total jiffies of the whole machine (every engineer's work on it included). */
function machineJiffies(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const total = values.reduce((a, b) => a + b, 0);
  const idle = (values[3] ?? 0) + (values[4] ?? 0);
  return { busy: total - idle, total };
}

function componentPid(cluster: Cluster, component: string): number {
  return Number.parseInt(readFileSync(join(cluster.stateDir, `${component}.pid`), 'utf8').trim(), 10);
}

interface Worker {
  pid: number;
  child: ChildProcess;
  output: () => string;
}

function spawnWorker(cluster: Cluster, redis: RedisServer, identity: string, concurrency: number): Worker {
  // All probes are one namespace's: its share of the slots is every slot (the bench measures workers, not the share).
  const child = spawn(
    process.execPath,
    [CLI, 'operator', '--role', 'worker', '--kubeconfig', cluster.kubeconfigPath, '--redis-url', redis.url, '--port', '0', '--identity', identity, '--no-leader-elect', '--concurrency', String(concurrency), '--target-concurrency', '4', '--max-active-rounds-per-namespace', '64'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn' } },
  );
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-20_000)));
  child.stderr?.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-20_000)));
  return { pid: child.pid ?? 0, child, output: () => output };
}

async function stopWorkers(workers: Worker[]): Promise<void> {
  await Promise.all(
    workers.map(
      (w) =>
        new Promise<void>((resolve) => {
          if (w.child.exitCode !== null || w.child.signalCode !== null) return resolve();
          w.child.once('exit', () => resolve());
          w.child.kill('SIGTERM');
          setTimeout(() => w.child.kill('SIGKILL'), 30_000).unref();
        }),
    ),
  );
}

interface Wave {
  rounds: number;
  failed: number;
  seconds: number;
  workerCpu: number;
  controlPlaneCpu: number;
  targetCpu: number;
  redisCpu: number;
  /** Cores busy on the whole machine, and what of that was none of ours (other sessions). */
  machineCores: number;
  otherCores: number;
}

/** Redis's own CPU seconds (INFO cpu: used_cpu_user + used_cpu_sys). */
async function redisCpuSeconds(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const field = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return field('used_cpu_user') + field('used_cpu_sys');
}

async function runWave(queue: Queue<CaptureJobData>, redis: Redis, probes: MapLeakProbe[], tag: string, pids: { workers: number[]; controlPlane: number[]; targets: number[] }): Promise<Wave> {
  const cpu = (list: number[]): number => list.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  const [workers0, plane0, targets0, redis0, machine0] = [cpu(pids.workers), cpu(pids.controlPlane), cpu(pids.targets), await redisCpuSeconds(redis), machineJiffies()];
  const queuedAt = Date.now();
  const jobs = await queue.addBulk(
    probes.map((p, i) => ({
      name: CAPTURE_JOB,
      data: { namespace: NS, name: p.metadata.name, uid: p.metadata.uid },
      opts: { jobId: `${tag}-${i}`, attempts: 1, removeOnComplete: false, removeOnFail: false },
    })),
  );
  const ids = jobs.map((j) => j.id as string);
  let finished: Job<CaptureJobData>[] = [];
  const deadline = Date.now() + WAVE_TIMEOUT_MS;
  for (;;) {
    finished = (await Promise.all(ids.map((id) => queue.getJob(id)))).filter((j): j is Job<CaptureJobData> => Boolean(j?.finishedOn));
    if (finished.length === ids.length) break;
    if (Date.now() > deadline) throw new Error(`wave ${tag}: ${finished.length} of ${ids.length} rounds finished in ${WAVE_TIMEOUT_MS / 1000} s`);
    await sleep(50);
  }
  const lastFinish = Math.max(...finished.map((j) => j.finishedOn ?? 0));
  const machine1 = machineJiffies();
  const redisCpu = (await redisCpuSeconds(redis)) - redis0;
  const elapsed = (Date.now() - queuedAt) / 1000;
  const seconds = (lastFinish - queuedAt) / 1000;
  const [workerCpu, controlPlaneCpu, targetCpu] = [cpu(pids.workers) - workers0, cpu(pids.controlPlane) - plane0, cpu(pids.targets) - targets0];
  const machineCores = ((machine1.busy - machine0.busy) / Math.max(1, machine1.total - machine0.total)) * CORES;
  return {
    rounds: ids.length,
    failed: finished.filter((j) => j.failedReason !== undefined || j.returnvalue !== 'captured').length,
    seconds,
    workerCpu,
    controlPlaneCpu,
    targetCpu,
    redisCpu,
    machineCores,
    otherCores: Math.max(0, machineCores - (workerCpu + controlPlaneCpu + targetCpu + redisCpu) / elapsed),
  };
}

/** Redis bytes per capture kept: MEMORY USAGE of every series key over the captures their sorted sets hold. */
async function bytesPerCapture(redis: Redis): Promise<{ keys: number; bytes: number; captures: number }> {
  let cursor = '0';
  let bytes = 0;
  let keys = 0;
  let captures = 0;
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', 'mlp:*', 'COUNT', 500);
    cursor = next;
    for (const key of batch) {
      keys++;
      bytes += Number((await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')) ?? 0);
      if (key.endsWith(':series')) captures += await redis.zcard(key);
    }
  } while (cursor !== '0');
  return { keys, bytes, captures };
}

async function main(): Promise<void> {
  let cluster: Cluster | undefined;
  let redis: RedisServer | undefined;
  let workers: Worker[] = [];
  let client: Redis | undefined;
  let queue: Queue<CaptureJobData> | undefined;
  const cleanup = async (): Promise<void> => {
    await stopWorkers(workers);
    await queue?.close().catch(() => undefined);
    client?.disconnect();
    await redis?.stop();
    await stopCluster(CLUSTER);
  };
  const onSignal = (): void => {
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    log(`cluster ${CLUSTER}, Redis, ${PODS} Go targets`);
    [cluster, redis] = await Promise.all([startCluster({ name: CLUSTER }), startRedis()]);
    const kc: KubeConfig = loadKubeConfig(cluster);
    await applyManifestFile(kc, repoPath('crds', 'mapleakprobes.yaml'));
    await waitForCrdsEstablished(kc, ['mapleakprobes.mapleak.io']);
    const started = cluster;
    // Cheap targets (150 sessions per tick instead of 1,500) so the Go programs leave the cores to what is measured.
    const pods: RunningPod[] = [];
    for (let i = 0; i < PODS; i += 2) {
      const pair = await Promise.all(
        [i, i + 1]
          .filter((n) => n < PODS)
          .map((n) => runPod(started, { name: `target-${n}`, labels: { app: 'bench-target', slot: String(n) }, path: 'test/targets/leaky', args: ['-sessions-per-tick', '150', '-max-leak-heap', String(256 << 20), '-max-lifetime', '2h'] })),
      );
      pods.push(...pair);
    }
    const custom = kc.makeApiClient(CustomObjectsApi);
    const probes: MapLeakProbe[] = [];
    for (let p = 0; p < PROBES; p++) {
      const slots = Array.from({ length: PODS_PER_PROBE }, (_, k) => String((p + k) % PODS));
      probes.push(
        (await custom.createNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace: NS,
          plural: PLURAL,
          body: {
            apiVersion: `${GROUP}/${VERSION}`,
            kind: 'MapLeakProbe',
            metadata: { name: `bench-${p}` },
            spec: { selector: { matchLabels: { app: 'bench-target' }, matchExpressions: [{ key: 'slot', operator: 'In', values: slots }] }, schedule: { interval: '1h' } },
          },
        })) as MapLeakProbe,
      );
    }
    client = new Redis(redis.url, { maxRetriesPerRequest: null });
    queue = new Queue<CaptureJobData>(CAPTURE_QUEUE, { connection: client });
    const controlPlane = [componentPid(cluster, 'kube-apiserver'), componentPid(cluster, 'etcd')];
    const targetPids = pods.map((p) => p.pid);

    const measured = new Map<string, Wave[]>();
    for (let pass = 0; pass < PASSES; pass++) {
      for (const { workers: count, concurrency } of CONFIGS) {
        const label = `${count} × ${concurrency}`;
        workers = Array.from({ length: count }, (_, i) => spawnWorker(started, redis as RedisServer, `bench-worker-${count}x${concurrency}-${i}`, concurrency));
        await sleep(2000);
        const pids = { workers: workers.map((w) => w.pid), controlPlane, targets: targetPids };
        const tag = `p${pass}-w${count}x${concurrency}`;
        log(`${label}, pass ${pass + 1}: warm-up wave`);
        await runWave(queue, client, probes, `${tag}-warm`, pids);
        for (let k = 0; k < WAVES; k++) {
          const wave = await runWave(queue, client, probes, `${tag}-${k}`, pids);
          log(`${label}, pass ${pass + 1}, wave ${k + 1}: ${wave.rounds} rounds in ${wave.seconds.toFixed(2)} s, ${wave.failed} failed, worker CPU ${wave.workerCpu.toFixed(2)} s, others ${wave.otherCores.toFixed(2)} cores`);
          measured.set(label, [...(measured.get(label) ?? []), wave]);
        }
        await stopWorkers(workers);
        workers = [];
        await queue.clean(0, 100_000, 'completed');
        await queue.clean(0, 100_000, 'failed');
      }
    }
    const rows: string[] = [];
    let firstRate = 0;
    for (const [label, waves] of measured) {
      const rate = median(waves.map((w) => w.rounds / w.seconds));
      if (firstRate === 0) firstRate = rate;
      const perRound = (pick: (w: Wave) => number): string => `${median(waves.map((w) => (pick(w) / w.rounds) * 1000)).toFixed(0)} ms`;
      const failed = waves.reduce((sum, w) => sum + w.failed, 0);
      rows.push(
        `| ${label} | ${rate.toFixed(1)} | ${(rate / firstRate).toFixed(2)}× | ${(rate * PODS_PER_PROBE).toFixed(1)} | ${perRound((w) => w.workerCpu)} | ${perRound((w) => w.controlPlaneCpu)} | ${perRound((w) => w.targetCpu)} | ${perRound((w) => w.redisCpu)} | ${median(waves.map((w) => w.machineCores)).toFixed(2)} (others ${median(waves.map((w) => w.otherCores)).toFixed(2)}) | ${failed} |`,
      );
    }
    const stored = await bytesPerCapture(client);
    process.stdout.write(
      [
        `${PROBES} probes × ${PODS_PER_PROBE} pods each (${PODS} Go 1.26 targets through the pod proxy), ${PASSES} passes × ${WAVES} waves of ${PROBES} rounds each (after a warm-up per start), medians; ${CORES} cores, load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`,
        '',
        '| workers × concurrency | rounds/s | vs first row | captures/s | worker CPU per round | API server + etcd CPU per round | Go targets CPU per round (their own work too) | Redis CPU per round | machine cores busy | failed rounds |',
        '|---|---|---|---|---|---|---|---|---|---|',
        ...rows,
        '',
        `Redis: ${stored.captures} captures kept in ${stored.keys} keys, ${(stored.bytes / 1024 / 1024).toFixed(1)} MiB: ${Math.round(stored.bytes / Math.max(1, stored.captures) / 1024)} KiB per capture kept`,
        '',
      ].join('\n'),
    );
  } catch (err) {
    for (const w of workers) process.stderr.write(`--- worker ${w.pid}\n${w.output().slice(-3000)}\n`);
    throw err;
  } finally {
    await cleanup();
  }
}

await main();

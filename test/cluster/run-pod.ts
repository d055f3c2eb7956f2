// run-pod: a Pod on the kwok node whose "container" is a real local process.
// The Pod is created through the API; once kwok has assigned its IP, the
// program runs in a network namespace holding that IP (so the apiserver proxy
// can reach :6060), its output goes to a CRI-format log file that kwok's
// kubelet API serves, and a detached supervisor (pod-supervisor.ts) stops the
// program and removes its namespace when the Pod is deleted.
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import type { Cluster } from './cluster.js';
import { buildGoProgram, type GoLine, type GoToolchain } from './go-build.js';
import { createPodNetwork, deletePodNetwork } from './netns.js';
import { isOurProcess, processGone, startDaemon, stopProcess, waitFor } from './processes.js';

export interface RunPodOptions {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  /** A Go main package directory (built here) or an executable. Relative paths are from the repo root. */
  path: string;
  args?: string[];
  /** Build with Debian's Go 1.19 (classic maps) instead of the machine's Go 1.26. */
  goVersion?: GoToolchain;
  /** The go line written into the program's go.mod (default: current, as real services have). */
  goLine?: GoLine;
  /** Extra environment for the program (GODEBUG=gctrace=1 is always set unless overridden). */
  env?: Record<string, string>;
  /**
   * What happens when the program exits while the Pod exists, as the
   * kubelet's restartPolicy says. Unset (the default here): it stays
   * exited and the pod status is left as it was. `Never`: the pod spec says
   * so, and the supervisor publishes what the kubelet does when the program
   * exits: the container terminated (OOMKilled, Error or Completed, with
   * its exit code) and the pod Failed (Succeeded on exit 0), not Ready.
   * `Always`: the supervisor publishes the container status the way
   * the kubelet does (state terminated, then restartCount + 1 with
   * lastState.terminated and a new containerID) and starts the program
   * again, with a fresh log (the old one is kept as app.log.previous).
   */
  restartPolicy?: 'Always' | 'Never';
  /** Pause before a restart (the kubelet's CrashLoopBackOff starts at 10 s; default 10 s). */
  restartDelayMs?: number;
  /**
   * Run the program in a cgroup v1 memory cgroup with this limit (and set
   * it as the container's resources.limits.memory): the kernel OOM-kills it
   * there, and the supervisor reports that as reason OOMKilled, exit code 137.
   */
  memoryLimitBytes?: number;
  /** The container's resources in the pod spec (e.g. a memory limit); kwok does not enforce them. */
  resources?: k8s.V1ResourceRequirements;
  /**
   * Names of further containers, listed in the pod spec before the
   * program's (`app`): kwok reports them Running, as the kubelet would a
   * sidecar that keeps the pod alive. No program runs for them (nothing
   * talks to them); the supervisor reports only `app`'s ends, and with
   * restartPolicy Never leaves the pod Running while they run.
   */
  sidecars?: string[];
  /** Wait until this port accepts connections on the pod IP (default 6060; null to not wait). */
  waitForPort?: number | null;
  timeoutMs?: number;
}

export interface RunningPod {
  name: string;
  namespace: string;
  uid: string;
  podIp: string;
  /** The network namespace the program runs in. */
  netns: string;
  /** The CRI-format log file behind the pod log API. */
  logFile: string;
  /** pid of the program (in the root pid namespace). */
  pid: number;
  supervisorPid: number;
}

/** What the supervisor process needs; written to <podDir>/pod.json. */
export interface SupervisorSpec {
  kubeconfigPath: string;
  namespace: string;
  name: string;
  uid: string;
  binary: string;
  args: string[];
  env: Record<string, string>;
  netns: string;
  hostVeth: string;
  logFile: string;
  podDir: string;
  restartPolicy: 'Always' | 'Never';
  /** restartPolicy Never was asked for: publish the terminal status when the program exits. */
  reportExit?: boolean;
  restartDelayMs: number;
  memoryLimitBytes?: number;
  /** The program's container (its status is the one the supervisor writes). */
  container: string;
}

const CONTAINER_NAME = 'app';
const PPROF_PORT = 6060;

export function podDirectory(cluster: Cluster, namespace: string, name: string): string {
  return join(cluster.stateDir, 'pods', `${namespace}_${name}`);
}

export async function runPod(cluster: Cluster, options: RunPodOptions): Promise<RunningPod> {
  if (process.getuid?.() !== 0) throw new Error('run-pod needs root: it creates network namespaces and veth pairs');
  const namespace = options.namespace ?? 'default';
  const timeoutMs = options.timeoutMs ?? 60_000;
  const podDir = podDirectory(cluster, namespace, options.name);
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(cluster.kubeconfigPath);
  const core = kc.makeApiClient(k8s.CoreV1Api);

  if (await podExists(core, namespace, options.name)) {
    throw new Error(`pod ${namespace}/${options.name} already exists in cluster "${cluster.name}"; delete it first`);
  }
  // A deleted pod of this name whose supervisor is still stopping would, once stopped, remove this
  // pod's network namespace (same name) and pid files: it goes first.
  const predecessor = readPidFile(join(podDir, 'supervisor.pid'));
  if (predecessor !== undefined) await stopProcess(predecessor, podDir, 10_000);
  rmSync(podDir, { recursive: true, force: true });
  mkdirSync(podDir, { recursive: true });
  const binary = await resolveProgram(cluster, options);

  await ensureNamespace(core, namespace);
  const created = await core.createNamespacedPod({ namespace, body: podManifest(cluster, namespace, options) });
  const uid = created.metadata?.uid ?? '';
  const podIp = await waitForPodIp(core, namespace, options.name, timeoutMs);

  const logFile = join(podDir, `${CONTAINER_NAME}.log`);
  writeFileSync(logFile, '');
  await createLogsRule(kc, namespace, options.name, logFile);
  const network = await createPodNetwork(cluster.index, `${namespace}/${options.name}`, podIp, cluster.gatewayIp);

  const spec: SupervisorSpec = {
    kubeconfigPath: cluster.kubeconfigPath,
    namespace,
    name: options.name,
    uid,
    binary,
    args: options.args ?? [],
    env: { GODEBUG: 'gctrace=1', ...options.env },
    netns: network.namespace,
    hostVeth: network.hostVeth,
    logFile,
    podDir,
    restartPolicy: options.restartPolicy ?? 'Never',
    ...(options.restartPolicy === 'Never' ? { reportExit: true } : {}),
    restartDelayMs: options.restartDelayMs ?? 10_000,
    ...(options.memoryLimitBytes ? { memoryLimitBytes: options.memoryLimitBytes } : {}),
    container: CONTAINER_NAME,
  };
  const specFile = join(podDir, 'pod.json');
  writeFileSync(specFile, JSON.stringify(spec, null, 2) + '\n');
  const supervisorPid = startSupervisor(specFile, podDir);
  try {
    const pid = await waitFor(
      async () => readProgramPid(podDir, supervisorPid),
      timeoutMs,
      () => `program of pod ${namespace}/${options.name} did not start; see ${join(podDir, 'supervisor.log')}`,
    );
    const port = options.waitForPort === undefined ? PPROF_PORT : options.waitForPort;
    if (port !== null) await waitForTcp(podIp, port, timeoutMs, { podDir, pod: `${namespace}/${options.name}`, pid, supervisorPid, netns: network.namespace, binary });
    return { name: options.name, namespace, uid, podIp, netns: network.namespace, logFile, pid, supervisorPid };
  } catch (error) {
    await stopProcess(supervisorPid, podDir);
    await deletePodNetwork(network);
    throw error;
  }
}

/** Deletes the pod and waits until its supervisor has stopped the program and removed its network. */
export async function deletePod(cluster: Cluster, namespace: string, name: string, timeoutMs = 30_000): Promise<void> {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(cluster.kubeconfigPath);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await core.deleteNamespacedPod({ namespace, name, gracePeriodSeconds: 0 }).catch((error: unknown) => {
    if (statusCode(error) !== 404) throw error;
  });
  const podDir = podDirectory(cluster, namespace, name);
  const supervisorPid = readPidFile(join(podDir, 'supervisor.pid'));
  if (supervisorPid === undefined) return;
  await waitFor(
    async () => (isOurProcess(supervisorPid, podDir) ? undefined : true),
    timeoutMs,
    () => `supervisor of pod ${namespace}/${name} did not stop within ${timeoutMs / 1000}s; see ${join(podDir, 'supervisor.log')}`,
  );
}

function podManifest(cluster: Cluster, namespace: string, options: RunPodOptions): k8s.V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: options.name, namespace, labels: options.labels ?? {} },
    spec: {
      nodeName: cluster.nodeName, // kwok does not schedule
      containers: [
        ...(options.sidecars ?? []).map((name) => ({ name, image: 'mapleakprobe.local/sidecar:latest' })),
        {
          name: CONTAINER_NAME,
          // Never pulled: kwok only fakes the container; the program runs on this machine.
          image: 'mapleakprobe.local/process:latest',
          ports: [{ name: 'pprof', containerPort: PPROF_PORT, protocol: 'TCP' }],
          ...(options.resources ? { resources: options.resources } : options.memoryLimitBytes ? { resources: { limits: { memory: String(options.memoryLimitBytes) } } } : {}),
        },
      ],
      ...(options.restartPolicy ? { restartPolicy: options.restartPolicy } : {}),
      terminationGracePeriodSeconds: 0,
    },
  };
}

async function resolveProgram(cluster: Cluster, options: RunPodOptions): Promise<string> {
  const path = resolve(cluster.repoRoot, options.path);
  if (!existsSync(path)) throw new Error(`run-pod: ${path} does not exist`);
  if (!statSync(path).isDirectory()) return path;
  return buildGoProgram(path, { toolchain: options.goVersion ?? '1.26', goLine: options.goLine ?? 'current' });
}

async function ensureNamespace(core: k8s.CoreV1Api, namespace: string): Promise<void> {
  try {
    await core.readNamespace({ name: namespace });
  } catch (error) {
    if (statusCode(error) !== 404) throw error;
    await core.createNamespace({ body: { metadata: { name: namespace } } }).catch((createError: unknown) => {
      if (statusCode(createError) !== 409) throw createError;
    });
  }
}

async function podExists(core: k8s.CoreV1Api, namespace: string, name: string): Promise<boolean> {
  try {
    await core.readNamespacedPod({ namespace, name });
    return true;
  } catch (error) {
    if (statusCode(error) === 404) return false;
    throw error;
  }
}

async function waitForPodIp(core: k8s.CoreV1Api, namespace: string, name: string, timeoutMs: number): Promise<string> {
  return waitFor(
    async () => {
      const pod = await core.readNamespacedPod({ namespace, name });
      const ip = pod.status?.podIP;
      return pod.status?.phase === 'Running' && ip ? ip : undefined;
    },
    timeoutMs,
    () => `kwok did not make pod ${namespace}/${name} Running with an IP within ${timeoutMs / 1000}s; see kwok.log`,
  );
}

/** kwok serves a pod's logs from the file its namespaced Logs object names. */
async function createLogsRule(kc: k8s.KubeConfig, namespace: string, name: string, logFile: string): Promise<void> {
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const body = {
    apiVersion: 'kwok.x-k8s.io/v1alpha1',
    kind: 'Logs',
    metadata: { name, namespace },
    spec: { logs: [{ containers: [CONTAINER_NAME], logsFile: logFile, follow: true }] },
  };
  await custom
    .deleteNamespacedCustomObject({ group: 'kwok.x-k8s.io', version: 'v1alpha1', namespace, plural: 'logs', name })
    .catch(() => undefined);
  await custom.createNamespacedCustomObject({ group: 'kwok.x-k8s.io', version: 'v1alpha1', namespace, plural: 'logs', body });
}

function startSupervisor(specFile: string, podDir: string): number {
  const script = fileURLToPath(new URL('./pod-supervisor.js', import.meta.url));
  const pid = startDaemon(process.execPath, [script, specFile], join(podDir, 'supervisor.log'), { cwd: podDir });
  writeFileSync(join(podDir, 'supervisor.pid'), `${pid}\n`);
  return pid;
}

function readProgramPid(podDir: string, supervisorPid: number): number | undefined {
  const pid = readPidFile(join(podDir, 'program.pid'));
  if (pid !== undefined) return pid;
  if (!isOurProcess(supervisorPid, podDir)) {
    throw new Error(`pod supervisor exited early: ${tail(join(podDir, 'supervisor.log'))}`);
  }
  return undefined;
}

/** What a readiness failure reports about the pod it waited for. */
interface WaitedPod {
  podDir: string;
  pod: string;
  pid: number;
  supervisorPid: number;
  netns: string;
  binary: string;
}

async function waitForTcp(host: string, port: number, timeoutMs: number, waited: WaitedPod): Promise<void> {
  await waitFor(
    async () => {
      // A program that is gone never will listen: say so now, not after the whole wait. Gone, not merely
      // unrecognised: a child between fork and exec, or inside execve, does not show the binary's command line yet.
      if (processGone(waited.pid)) {
        // Its last output reaches app.log through the supervisor, which logs the exit once it has seen it.
        await waitFor(async () => (tail(join(waited.podDir, 'supervisor.log')).includes('program exited') ? true : undefined), 3000, () => '', 50).catch(() => undefined);
        throw new NoUseWaiting(`pod ${waited.pod}: its program (pid ${waited.pid}) exited before listening on ${host}:${port}; ${podReport(waited)}`);
      }
      // Removed under the pod (a sweep of this index: another cluster on it), with its veth: nothing will reach the program.
      if (!existsSync(join('/run/netns', waited.netns))) throw new NoUseWaiting(`pod ${waited.pod}: its network namespace was removed before it listened on ${host}:${port}; ${podReport(waited)}`);
      return new Promise<true | undefined>((resolveConnect) => {
        const socket = connect({ host, port, timeout: 1000 });
        socket.once('connect', () => {
          socket.destroy();
          resolveConnect(true);
        });
        socket.once('error', () => resolveConnect(undefined));
        socket.once('timeout', () => {
          socket.destroy();
          resolveConnect(undefined);
        });
      });
    },
    timeoutMs,
    () => `pod ${waited.pod} is not listening on ${host}:${port} after ${timeoutMs / 1000}s; ${podReport(waited)}`,
    250,
    (error) => error instanceof NoUseWaiting,
  );
}

/** A failed readiness check that waiting longer cannot mend. */
class NoUseWaiting extends Error {}

/** The program's state, its network namespace's, and the tails of its log and its supervisor's: a failed start explains itself. */
function podReport(waited: WaitedPod): string {
  const alive = isOurProcess(waited.pid, waited.binary) ? 'running' : 'exited';
  const supervisor = isOurProcess(waited.supervisorPid, waited.podDir) ? 'running' : 'exited';
  const netns = existsSync(join('/run/netns', waited.netns)) ? `netns ${waited.netns} present` : `netns ${waited.netns} GONE`;
  const appLog = tail(join(waited.podDir, 'app.log'), 15)
    .split(' | ')
    .map((line) => line.replace(/^\S+ (stdout|stderr) [FP] /, ''))
    .join(' | ');
  return `program ${alive}, supervisor ${supervisor}, ${netns}; app.log: ${appLog || '(empty)'}; supervisor.log: ${tail(join(waited.podDir, 'supervisor.log'), 5)}`;
}

export function readPidFile(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function tail(file: string, lines = 5): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join(' | ');
  } catch {
    return `(no ${file})`;
  }
}

/** HTTP status of a client-node ApiException, if that is what error is. */
export function statusCode(error: unknown): number | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code;
    return typeof code === 'number' ? code : undefined;
  }
  return undefined;
}

// One detached supervisor per run-pod pod: `node pod-supervisor.js <pod.json>`.
// It runs the program inside the pod's network namespace, writes its output in
// CRI log format (what kwok's kubelet API serves as the pod log), and when the
// Pod is deleted (or replaced, or the cluster has been gone for a minute, or it
// gets SIGTERM from cluster:down) it stops the program and removes the netns.
// With restartPolicy Always it stands in for the kubelet when the program
// exits: it publishes the container status as the kubelet does and restarts
// the program; with restartPolicy Never it publishes the container's end and
// the pod's terminal phase (Failed, or Succeeded on exit 0); with a memory limit the program runs in a cgroup v1 memory
// cgroup of its own, where the kernel's OOM killer is real.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import * as k8s from '@kubernetes/client-node';
import { deletePodNetwork } from './netns.js';
import type { SupervisorSpec } from './run-pod.js';

const POLL_MS = 1000;
const CLUSTER_GONE_MS = 60_000;
const KILL_GRACE_MS = 3000;

/** `2016-10-06T00:00:00.000000000Z stderr F message`: one complete CRI log line. */
export function criLine(stream: 'stdout' | 'stderr', message: string, now: Date = new Date()): string {
  const timestamp = now.toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z');
  return `${timestamp} ${stream} F ${message}\n`;
}

/** Splits a stream into lines and appends each to the log as a CRI line. */
function pipeAsCri(source: Readable, stream: 'stdout' | 'stderr', sink: WriteStream): void {
  let pending = '';
  source.setEncoding('utf8');
  source.on('data', (chunk: string) => {
    const lines = (pending + chunk).split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) sink.write(criLine(stream, line));
  });
  source.on('end', () => {
    if (pending !== '') sink.write(criLine(stream, pending));
    pending = '';
  });
}

/** cgroup v1's memory hierarchy (this machine), else the unified v2 hierarchy. */
const MEMORY_CGROUP_V1 = '/sys/fs/cgroup/memory';
const CGROUP_V2 = '/sys/fs/cgroup';

/** The program's own memory cgroup, named after its netns so a sweep can find it. */
function createMemoryCgroup(spec: SupervisorSpec): string | undefined {
  if (!spec.memoryLimitBytes) return undefined;
  const v1 = existsSync(MEMORY_CGROUP_V1);
  if (!v1 && !existsSync(join(CGROUP_V2, 'cgroup.controllers'))) throw new Error('memoryLimitBytes needs a memory cgroup (v1 or v2)');
  const dir = join(v1 ? MEMORY_CGROUP_V1 : CGROUP_V2, spec.netns);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, v1 ? 'memory.limit_in_bytes' : 'memory.max'), String(spec.memoryLimitBytes));
  return dir;
}

/** The kernel's count of OOM kills in the cgroup: `oom_kill` in memory.oom_control (v1, Linux 4.13+) or memory.events (v2). */
function oomKills(cgroup: string): number {
  const file = existsSync(join(cgroup, 'memory.oom_control')) ? 'memory.oom_control' : 'memory.events';
  const match = /^oom_kill (\d+)$/m.exec(readFileSync(join(cgroup, file), 'utf8'));
  return match ? Number(match[1]) : 0;
}

async function removeMemoryCgroup(cgroup: string): Promise<void> {
  // Emptied only once the killed process is reaped; retry briefly.
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      rmdirSync(cgroup);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      await sleep(100);
    }
  }
  log(`could not remove ${cgroup}`);
}

function startProgram(spec: SupervisorSpec, sink: WriteStream, cgroup: string | undefined): ChildProcess {
  // `ip netns exec` execs the program, so the child pid is the program's pid. In a cgroup,
  // sh moves itself there first and execs, so no allocation of the program is outside it.
  const command = ['ip', 'netns', 'exec', spec.netns, spec.binary, ...spec.args];
  const [file, args] = cgroup ? ['sh', ['-c', 'echo $$ > "$0" && exec "$@"', join(cgroup, 'cgroup.procs'), ...command]] as const : [command[0]!, command.slice(1)] as const;
  const child = spawn(file, args, {
    cwd: spec.podDir,
    env: { ...process.env, ...spec.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start ${spec.binary}`);
  writeFileSync(join(spec.podDir, 'program.pid'), `${child.pid}\n`);
  pipeAsCri(child.stdout!, 'stdout', sink);
  pipeAsCri(child.stderr!, 'stderr', sink);
  child.on('exit', (code, signal) => {
    log(`program exited (code ${code ?? '-'}, signal ${signal ?? '-'})${spec.restartPolicy === 'Always' ? '' : '; waiting for the pod to be deleted'}`);
  });
  return child;
}

/** How one run of the program ended, in the kubelet's words. */
interface Termination {
  reason: string;
  exitCode: number;
  startedAt: string;
  finishedAt: string;
  containerID: string;
}

const SIGNAL_NUMBERS: Record<string, number> = { SIGKILL: 9, SIGTERM: 15, SIGINT: 2, SIGABRT: 6, SIGSEGV: 11 };

/** The kubelet says OOMKilled when the kernel killed the container for memory, Error for any other non-zero exit, Completed for 0. */
function terminationOf(code: number | null, signal: NodeJS.Signals | null, oomKilled: boolean): { reason: string; exitCode: number } {
  const exitCode = code ?? 128 + (signal ? (SIGNAL_NUMBERS[signal] ?? 0) : 0);
  return { reason: oomKilled ? 'OOMKilled' : exitCode === 0 ? 'Completed' : 'Error', exitCode };
}

/** Rewrites the pod's status the way the kubelet would, retrying on conflicts. */
async function publishStatus(core: k8s.CoreV1Api, spec: SupervisorSpec, change: (pod: k8s.V1Pod) => void): Promise<void> {
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      const pod = await core.readNamespacedPodStatus({ namespace: spec.namespace, name: spec.name });
      if (pod.metadata?.uid !== spec.uid) return;
      change(pod);
      await core.replaceNamespacedPodStatus({ namespace: spec.namespace, name: spec.name, body: pod });
      return;
    } catch (error) {
      const code = typeof error === 'object' && error !== null && 'code' in error ? (error as { code: unknown }).code : undefined;
      if (code === 404) return;
      await sleep(200);
    }
  }
  log('could not publish the container status');
}

/** The program's container status (a pod with sidecars lists theirs too). */
function programStatus(pod: k8s.V1Pod, spec: SupervisorSpec): k8s.V1ContainerStatus | undefined {
  return pod.status?.containerStatuses?.find((status) => status.name === spec.container);
}

/** With restartPolicy Never the kubelet keeps a pod Running while any of its containers runs (a sidecar). */
function otherContainerRunning(pod: k8s.V1Pod, spec: SupervisorSpec): boolean {
  return (pod.status?.containerStatuses ?? []).some((status) => status.name !== spec.container && status.state?.running !== undefined);
}

function setReady(pod: k8s.V1Pod, ready: boolean, at: Date): void {
  for (const condition of pod.status?.conditions ?? []) {
    if (condition.type !== 'Ready' && condition.type !== 'ContainersReady') continue;
    const status = ready ? 'True' : 'False';
    if (condition.status !== status) {
      condition.status = status;
      condition.lastTransitionTime = at;
    }
  }
}

type PodState = 'present' | 'gone' | 'unreachable';

async function podState(core: k8s.CoreV1Api, spec: SupervisorSpec): Promise<PodState> {
  try {
    const pod = await core.readNamespacedPod({ namespace: spec.namespace, name: spec.name });
    if (pod.metadata?.uid !== spec.uid || pod.metadata?.deletionTimestamp) return 'gone';
    return 'present';
  } catch (error) {
    const code = typeof error === 'object' && error !== null && 'code' in error ? (error as { code: unknown }).code : undefined;
    return code === 404 ? 'gone' : 'unreachable';
  }
}

async function stopProgram(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  child.kill('SIGTERM');
  const killed = await Promise.race([exited.then(() => true), sleep(KILL_GRACE_MS).then(() => false)]);
  if (!killed) {
    child.kill('SIGKILL');
    await exited;
  }
}

async function removeLogsRule(kc: k8s.KubeConfig, spec: SupervisorSpec): Promise<void> {
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  await Promise.race([
    custom
      .deleteNamespacedCustomObject({
        group: 'kwok.x-k8s.io',
        version: 'v1alpha1',
        namespace: spec.namespace,
        plural: 'logs',
        name: spec.name,
      })
      .catch(() => undefined),
    sleep(3000),
  ]);
}

function log(message: string): void {
  process.stdout.write(`${new Date().toISOString()} ${message}\n`);
}

async function main(): Promise<void> {
  const specFile = process.argv[2];
  if (!specFile) throw new Error('usage: pod-supervisor.js <pod.json>');
  const spec = JSON.parse(readFileSync(specFile, 'utf8')) as SupervisorSpec;
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(spec.kubeconfigPath);
  const core = kc.makeApiClient(k8s.CoreV1Api);

  let stopping = false;
  let stopReason = '';
  const requestStop = (reason: string): void => {
    if (!stopping) stopReason = reason;
    stopping = true;
  };
  process.on('SIGTERM', () => requestStop('SIGTERM'));
  process.on('SIGINT', () => requestStop('SIGINT'));

  const cgroup = createMemoryCgroup(spec);
  let sink = createWriteStream(spec.logFile, { flags: 'a' });
  let child = startProgram(spec, sink, cgroup);
  let startedAt = new Date();
  let restarts = 0;
  let exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  const containerId = (): string => `mapleak://${spec.uid.replace(/-/g, '')}${restarts}`;
  log(`started ${spec.binary} as pid ${child.pid} in netns ${spec.netns} for pod ${spec.namespace}/${spec.name}${cgroup ? ` (memory cgroup ${cgroup}, limit ${spec.memoryLimitBytes} bytes)` : ''}`);
  if (spec.restartPolicy === 'Always') {
    await publishStatus(core, spec, (pod) => {
      const status = programStatus(pod, spec);
      if (status) status.containerID = containerId();
    });
  }
  let oomKillsSeen = cgroup ? oomKills(cgroup) : 0;

  let unreachableSince: number | undefined;
  let exitReported = false;
  while (!stopping) {
    // With restarts, an exit wakes the loop at once; without, an exited program just waits for the pod to go.
    await (spec.restartPolicy === 'Always' ? Promise.race([sleep(POLL_MS), exited]) : sleep(POLL_MS));
    if (stopping) break;
    if (spec.restartPolicy === 'Always' && (child.exitCode !== null || child.signalCode !== null)) {
      const finishedAt = new Date();
      const oomKilled = cgroup ? oomKills(cgroup) > oomKillsSeen : false;
      if (cgroup) oomKillsSeen = oomKills(cgroup);
      const termination: Termination = { ...terminationOf(child.exitCode, child.signalCode, oomKilled), startedAt: startedAt.toISOString(), finishedAt: finishedAt.toISOString(), containerID: containerId() };
      log(`container ended: ${termination.reason}, exit code ${termination.exitCode}; restarting in ${spec.restartDelayMs} ms`);
      // First the ended container, as the kubelet reports it until the restart.
      await publishStatus(core, spec, (pod) => {
        const status = programStatus(pod, spec);
        if (!status) return;
        status.ready = false;
        status.started = false;
        status.state = { terminated: { ...termination, startedAt: startedAt, finishedAt } };
        setReady(pod, false, finishedAt);
      });
      await sleep(spec.restartDelayMs);
      if (stopping) break;
      // A new container gets a new log; the kubelet keeps the previous one for `kubectl logs --previous`.
      await new Promise<void>((resolveEnd) => sink.end(() => resolveEnd()));
      renameSync(spec.logFile, `${spec.logFile}.previous`);
      sink = createWriteStream(spec.logFile, { flags: 'a' });
      restarts++;
      child = startProgram(spec, sink, cgroup);
      startedAt = new Date();
      exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
      log(`restarted ${spec.binary} as pid ${child.pid} (restart ${restarts})`);
      await publishStatus(core, spec, (pod) => {
        const status = programStatus(pod, spec);
        if (!status) return;
        status.restartCount = restarts;
        status.containerID = containerId();
        status.ready = true;
        status.started = true;
        status.state = { running: { startedAt } };
        status.lastState = { terminated: { reason: termination.reason, exitCode: termination.exitCode, startedAt: new Date(termination.startedAt), finishedAt, containerID: termination.containerID } };
        setReady(pod, true, startedAt);
      });
      continue;
    }
    if (spec.reportExit && !exitReported && (child.exitCode !== null || child.signalCode !== null)) {
      exitReported = true;
      const finishedAt = new Date();
      const oomKilled = cgroup ? oomKills(cgroup) > oomKillsSeen : false;
      const ended = terminationOf(child.exitCode, child.signalCode, oomKilled);
      log(`container ended: ${ended.reason}, exit code ${ended.exitCode}; restartPolicy Never: pod ${ended.exitCode === 0 ? 'Succeeded' : 'Failed'} unless a sidecar runs`);
      await publishStatus(core, spec, (pod) => {
        const status = programStatus(pod, spec);
        if (!status || !pod.status) return;
        status.ready = false;
        status.started = false;
        status.state = { terminated: { ...ended, startedAt, finishedAt, containerID: containerId() } };
        setReady(pod, false, finishedAt);
        if (!otherContainerRunning(pod, spec)) pod.status.phase = ended.exitCode === 0 ? 'Succeeded' : 'Failed';
      });
    }
    const state = await podState(core, spec);
    if (state === 'gone') requestStop('pod deleted');
    if (state === 'unreachable') {
      unreachableSince ??= Date.now();
      if (Date.now() - unreachableSince > CLUSTER_GONE_MS) requestStop('apiserver unreachable for 60s');
    } else {
      unreachableSince = undefined;
    }
  }

  log(`stopping (${stopReason})`);
  await stopProgram(child);
  if (cgroup) await removeMemoryCgroup(cgroup);
  await deletePodNetwork({ namespace: spec.netns, hostVeth: spec.hostVeth });
  if (stopReason === 'pod deleted') await removeLogsRule(kc, spec);
  await new Promise<void>((resolveEnd) => sink.end(() => resolveEnd()));
  rmSync(join(spec.podDir, 'program.pid'), { force: true });
  rmSync(join(spec.podDir, 'supervisor.pid'), { force: true });
  log('stopped');
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    log(`supervisor failed: ${error instanceof Error ? error.stack : String(error)}`);
    process.exit(1);
  },
);

// One detached supervisor per run-pod pod: `node pod-supervisor.js <pod.json>`.
// It runs the program inside the pod's network namespace, writes its output in
// CRI log format (what kwok's kubelet API serves as the pod log), and when the
// Pod is deleted (or replaced, or the cluster has been gone for a minute, or it
// gets SIGTERM from cluster:down) it stops the program and removes the netns.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
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

function startProgram(spec: SupervisorSpec, sink: WriteStream): ChildProcess {
  // `ip netns exec` execs the program, so the child pid is the program's pid.
  const child = spawn('ip', ['netns', 'exec', spec.netns, spec.binary, ...spec.args], {
    cwd: spec.podDir,
    env: { ...process.env, ...spec.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start ${spec.binary}`);
  writeFileSync(join(spec.podDir, 'program.pid'), `${child.pid}\n`);
  pipeAsCri(child.stdout!, 'stdout', sink);
  pipeAsCri(child.stderr!, 'stderr', sink);
  child.on('exit', (code, signal) => {
    log(`program exited (code ${code ?? '-'}, signal ${signal ?? '-'}); waiting for the pod to be deleted`);
  });
  return child;
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
  const sink = createWriteStream(spec.logFile, { flags: 'a' });

  let stopping = false;
  let stopReason = '';
  const requestStop = (reason: string): void => {
    if (!stopping) stopReason = reason;
    stopping = true;
  };
  process.on('SIGTERM', () => requestStop('SIGTERM'));
  process.on('SIGINT', () => requestStop('SIGINT'));

  const child = startProgram(spec, sink);
  log(`started ${spec.binary} as pid ${child.pid} in netns ${spec.netns} for pod ${spec.namespace}/${spec.name}`);

  let unreachableSince: number | undefined;
  while (!stopping) {
    await sleep(POLL_MS);
    if (stopping) break;
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

// A real local Kubernetes control plane without Docker: etcd + kube-apiserver
// (RBAC, service-account token signing) + kwok faking one Ready node whose
// kubelet API serves pod logs. Binaries come from build-binaries.sh's cache;
// state (pids, logs, certs, etcd data, kubeconfig) lives in .cluster/<name>/.
//
//   const cluster = await startCluster({ name: 'smoke' });
//   const pod = await runPod(cluster, { name: 'hello', path: 'test/cluster/testdata/pprof-hello' });
//   await stopCluster('smoke');
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import * as https from 'node:https';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { ensurePki, pkiPaths, type ClusterPki } from './pki.js';
import { isOurProcess, startDaemon, stopProcess, waitFor } from './processes.js';
import { ensurePodRangeUnreachable, sweepClusterNetworks } from './netns.js';

export { runPod, deletePod, type RunPodOptions, type RunningPod } from './run-pod.js';

export const DEFAULT_CLUSTER_NAME = 'dev';
const MAX_CLUSTERS = 50;

export interface ClusterPorts {
  etcdClient: number;
  etcdPeer: number;
  apiserver: number;
  kubelet: number;
}

/** Everything needed to talk to (and tear down) one running local cluster. */
export interface Cluster {
  name: string;
  /** Small number unique among this checkout's clusters: picks ports and the pod CIDR. */
  index: number;
  repoRoot: string;
  stateDir: string;
  binDir: string;
  kubeconfigPath: string;
  server: string;
  ports: ClusterPorts;
  nodeName: string;
  /** Pod IPs come from here (10.244.<index>.0/24); .254 is the root-namespace gateway. */
  podCidr: string;
  gatewayIp: string;
}

export interface ClusterOptions {
  name?: string;
  /** Repository checkout; found from this file's location by default. */
  repoRoot?: string;
  /** Directory holding etcd, kube-apiserver and kwok; by default build-binaries.sh is run to find (or build) it. */
  binDir?: string;
  /** Progress messages; silent by default. */
  log?: (message: string) => void;
}

type Component = 'etcd' | 'kube-apiserver' | 'kwok';
const COMPONENTS: readonly Component[] = ['etcd', 'kube-apiserver', 'kwok'];

/** The repository root: the nearest ancestor holding package.json (works from test/ and dist/test/). */
export function findRepoRoot(start: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = resolve(start);
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'test', 'cluster'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no repository root (package.json + test/cluster) above ${start}`);
    dir = parent;
  }
}

export function clusterStateDir(name: string, repoRoot: string = findRepoRoot()): string {
  validateClusterName(name);
  return join(repoRoot, '.cluster', name);
}

/** Names become directory names, netns labels and kubeconfig contexts: keep them simple. */
function validateClusterName(name: string): void {
  if (!/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/.test(name)) {
    throw new Error(`bad cluster name "${name}": use up to 32 lowercase letters, digits and dashes`);
  }
}

export function kubeconfigPath(name: string = DEFAULT_CLUSTER_NAME, repoRoot: string = findRepoRoot()): string {
  return join(clusterStateDir(name, repoRoot), 'kubeconfig');
}

/** An admin KubeConfig for a running cluster. */
export function loadKubeConfig(cluster: Pick<Cluster, 'kubeconfigPath'>): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(cluster.kubeconfigPath);
  return kc;
}

/** Reads the description of a cluster that `startCluster` wrote; undefined when none was started. */
export function readCluster(name: string, repoRoot: string = findRepoRoot()): Cluster | undefined {
  const file = join(clusterStateDir(name, repoRoot), 'cluster.json');
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as Cluster;
}

/**
 * Starts the cluster unless it is already running and healthy (idempotent).
 * A half-dead cluster (some component exited) is stopped and started afresh.
 */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const name = options.name ?? DEFAULT_CLUSTER_NAME;
  const repoRoot = options.repoRoot ?? findRepoRoot();
  const log = options.log ?? (() => undefined);
  const existing = readCluster(name, repoRoot);
  if (existing && componentsAlive(existing) && (await apiserverReady(existing))) {
    log(`cluster "${name}" is already running at ${existing.server}`);
    return existing;
  }
  if (existing) {
    log(`cluster "${name}" is not healthy; restarting it`);
    await stopCluster(name, { repoRoot, log });
  }

  const binDir = options.binDir ?? findOrBuildBinaries(repoRoot, log);
  const stateDir = clusterStateDir(name, repoRoot);
  mkdirSync(stateDir, { recursive: true });
  const index = claimClusterIndex(repoRoot, name);
  const base = 20000 + index * 10;
  const cluster: Cluster = {
    name,
    index,
    repoRoot,
    stateDir,
    binDir,
    kubeconfigPath: join(stateDir, 'kubeconfig'),
    server: `https://127.0.0.1:${base + 2}`,
    ports: { etcdClient: base, etcdPeer: base + 1, apiserver: base + 2, kubelet: base + 3 },
    nodeName: 'kwok-node-0',
    podCidr: `10.244.${index}.0/24`,
    gatewayIp: `10.244.${index}.254`,
  };
  writeFileSync(join(stateDir, 'cluster.json'), JSON.stringify(cluster, null, 2) + '\n');
  let portsFree = false;
  try {
    await assertPortsFree(cluster);
    portsFree = true;
    // Pod IPs exist only inside our network namespaces: never let one leave the machine.
    await ensurePodRangeUnreachable();
    // Leftovers of a run whose state dir was removed (e.g. git clean) while pods ran.
    for (const removed of await sweepClusterNetworks(index)) log(`removed stale ${removed}`);
    const pki = await ensurePki(join(stateDir, 'pki'));
    writeFileSync(cluster.kubeconfigPath, adminKubeconfig(cluster, pki));
    const started = Date.now();
    await startEtcd(cluster);
    log(`etcd ${cluster.ports.etcdClient} up`);
    await startApiserver(cluster, pki);
    log(`kube-apiserver ${cluster.server} up`);
    const kc = loadKubeConfig(cluster);
    await applyManifestFile(kc, join(repoRoot, 'test', 'cluster', 'kwok', 'logs-crd.yaml'));
    await waitForCrdsEstablished(kc, ['logs.kwok.x-k8s.io']);
    await createNode(kc, cluster);
    await startKwok(cluster, pki);
    await waitForNodeReady(kc, cluster);
    log(`kwok node ${cluster.nodeName} Ready (kubelet API 127.0.0.1:${cluster.ports.kubelet}, pod CIDR ${cluster.podCidr})`);
    log(`cluster "${name}" ready in ${((Date.now() - started) / 1000).toFixed(1)}s; kubeconfig ${cluster.kubeconfigPath}`);
    return cluster;
  } catch (error) {
    // Leave the logs for diagnosis, but no processes. Ports taken: whoever holds them may hold this pod range too; its networks stay.
    await stopCluster(name, { repoRoot, keepState: true, keepNetworks: !portsFree });
    throw error;
  }
}

/**
 * Restarts only kube-apiserver (same certs, same etcd data), as an API
 * server upgrade or crash would: clients see their watches and requests
 * fail, then the same server come back.
 */
export async function restartApiserver(cluster: Cluster, downMs = 1000): Promise<void> {
  await stopApiserver(cluster);
  await new Promise((resolve) => setTimeout(resolve, downMs));
  await resumeApiserver(cluster);
}

/** Stops only kube-apiserver, for as long as a test wants it gone (etcd, kwok and pods keep running). */
export async function stopApiserver(cluster: Cluster): Promise<void> {
  const pid = readPid(cluster.stateDir, 'kube-apiserver');
  if (pid !== undefined) await stopProcess(pid, componentMarker(cluster.stateDir, 'kube-apiserver'));
}

/** Starts kube-apiserver again after stopApiserver (same certs, same etcd data) and waits until it is ready. */
export async function resumeApiserver(cluster: Cluster): Promise<void> {
  await startApiserver(cluster, await ensurePki(join(cluster.stateDir, 'pki')));
}

export interface StopOptions {
  repoRoot?: string;
  /** Keep .cluster/<name>/ (logs, certs, etcd data) instead of deleting it. */
  keepState?: boolean;
  /** Leave the `mlpI-*` netns and veths of the cluster's index alone (they may be another cluster's). */
  keepNetworks?: boolean;
  log?: (message: string) => void;
}

/** Stops pod supervisors (which stop their programs), kwok, kube-apiserver and etcd; removes the cluster's netns/veths. */
export async function stopCluster(name: string = DEFAULT_CLUSTER_NAME, options: StopOptions = {}): Promise<void> {
  const repoRoot = options.repoRoot ?? findRepoRoot();
  const log = options.log ?? (() => undefined);
  const stateDir = clusterStateDir(name, repoRoot);
  const cluster = readCluster(name, repoRoot);
  await stopPodSupervisors(stateDir, log);
  for (const component of [...COMPONENTS].reverse()) {
    const pid = readPid(stateDir, component);
    if (pid === undefined) continue;
    await stopProcess(pid, componentMarker(stateDir, component));
    rmSync(pidFile(stateDir, component), { force: true });
    log(`stopped ${component} (pid ${pid})`);
  }
  if (cluster && !options.keepNetworks) {
    for (const removed of await sweepClusterNetworks(cluster.index)) log(`removed ${removed}`);
  }
  if (!options.keepState) {
    rmSync(stateDir, { recursive: true, force: true });
    releaseClusterIndex(repoRoot, name);
  }
}

/** Lists the names of clusters that have state in this checkout. */
export function listClusters(repoRoot: string = findRepoRoot()): string[] {
  const dir = join(repoRoot, '.cluster');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((entry) => existsSync(join(dir, entry, 'cluster.json')));
}

// --- binaries -------------------------------------------------------------

function findOrBuildBinaries(repoRoot: string, log: (message: string) => void): string {
  const script = join(repoRoot, 'test', 'cluster', 'build-binaries.sh');
  log('checking control-plane binaries (build-binaries.sh)');
  // stderr passes through so a cold build shows its progress.
  const stdout = execFileSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const binDir = stdout.trim().split('\n').pop() ?? '';
  if (!existsSync(join(binDir, 'kube-apiserver'))) throw new Error(`build-binaries.sh printed no usable directory (${binDir})`);
  return binDir;
}

// --- components -----------------------------------------------------------

async function startEtcd(cluster: Cluster): Promise<void> {
  const { etcdClient, etcdPeer } = cluster.ports;
  const clientUrl = `http://127.0.0.1:${etcdClient}`;
  const peerUrl = `http://127.0.0.1:${etcdPeer}`;
  startComponent(cluster, 'etcd', join(cluster.binDir, 'etcd'), [
    `--name=${cluster.name}`,
    `--data-dir=${join(cluster.stateDir, 'etcd-data')}`,
    `--listen-client-urls=${clientUrl}`,
    `--advertise-client-urls=${clientUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=${cluster.name}=${peerUrl}`,
    '--unsafe-no-fsync',
    '--log-level=warn',
  ]);
  await waitFor(
    async () => ((await httpGetStatus(`${clientUrl}/health`)) === 200 ? true : undefined),
    30_000,
    () => `etcd did not become healthy in 30s; see ${logFile(cluster, 'etcd')}`,
  );
}

/** Where the API server records what service accounts did (see AUDIT_POLICY). */
export function auditLogPath(cluster: Pick<Cluster, 'stateDir'>): string {
  return join(cluster.stateDir, 'audit.log');
}

/**
 * Metadata of every request made by a service account, nothing else: tests
 * compare what an operator running with a ServiceAccount token really did
 * against what its RBAC grants.
 */
const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
`;

async function startApiserver(cluster: Cluster, pki: ClusterPki): Promise<void> {
  const { apiserver, etcdClient } = cluster.ports;
  const auditPolicy = join(cluster.stateDir, 'audit-policy.yaml');
  writeFileSync(auditPolicy, AUDIT_POLICY);
  startComponent(cluster, 'kube-apiserver', join(cluster.binDir, 'kube-apiserver'), [
    `--audit-policy-file=${auditPolicy}`,
    `--audit-log-path=${auditLogPath(cluster)}`,
    '--audit-log-format=json',
    `--etcd-servers=http://127.0.0.1:${etcdClient}`,
    `--bind-address=127.0.0.1`,
    `--advertise-address=127.0.0.1`,
    `--secure-port=${apiserver}`,
    `--cert-dir=${pki.dir}`,
    `--tls-cert-file=${pki.servingCert}`,
    `--tls-private-key-file=${pki.servingKey}`,
    `--client-ca-file=${pki.caCert}`,
    `--service-cluster-ip-range=10.96.${cluster.index}.0/24`,
    '--allow-privileged=true',
    '--authorization-mode=RBAC',
    `--service-account-issuer=https://127.0.0.1:${apiserver}`,
    `--service-account-key-file=${pki.serviceAccountPub}`,
    `--service-account-signing-key-file=${pki.serviceAccountKey}`,
    // No controller-manager mints default service-account tokens.
    '--disable-admission-plugins=ServiceAccount',
    '--kubelet-preferred-address-types=InternalIP',
    '--endpoint-reconciler-type=none',
    '--v=1',
  ]);
  await waitFor(
    async () => ((await apiserverReady(cluster)) ? true : undefined),
    90_000,
    () => `kube-apiserver did not become ready in 90s; see ${logFile(cluster, 'kube-apiserver')}`,
    500,
  );
}

async function startKwok(cluster: Cluster, pki: ClusterPki): Promise<void> {
  startComponent(cluster, 'kwok', join(cluster.binDir, 'kwok'), [
    `--kubeconfig=${cluster.kubeconfigPath}`,
    `--config=${join(cluster.repoRoot, 'test', 'cluster', 'kwok', 'stages.yaml')}`,
    `--manage-single-node=${cluster.nodeName}`,
    '--node-ip=127.0.0.1',
    `--node-port=${cluster.ports.kubelet}`,
    `--server-address=127.0.0.1:${cluster.ports.kubelet}`,
    `--tls-cert-file=${pki.servingCert}`,
    `--tls-private-key-file=${pki.servingKey}`,
    `--cidr=${cluster.podCidr}`,
    '--enable-crds=Logs',
  ]);
}

function startComponent(cluster: Cluster, component: Component, binary: string, args: string[]): void {
  if (!existsSync(binary)) throw new Error(`${binary} is missing; run test/cluster/build-binaries.sh`);
  // The state dir in argv lets stop() recognise the process before killing it.
  const pid = startDaemon(binary, args, logFile(cluster, component), { cwd: cluster.stateDir });
  writeFileSync(pidFile(cluster.stateDir, component), `${pid}\n`);
}

/** Every component's argv names the state dir, so it identifies our process. */
function componentMarker(stateDir: string, _component: Component): string {
  return stateDir;
}

function componentsAlive(cluster: Cluster): boolean {
  return COMPONENTS.every((component) => {
    const pid = readPid(cluster.stateDir, component);
    return pid !== undefined && isOurProcess(pid, componentMarker(cluster.stateDir, component));
  });
}

function logFile(cluster: Pick<Cluster, 'stateDir'>, component: string): string {
  return join(cluster.stateDir, `${component}.log`);
}

function pidFile(stateDir: string, component: string): string {
  return join(stateDir, `${component}.pid`);
}

function readPid(stateDir: string, component: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(pidFile(stateDir, component), 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function stopPodSupervisors(stateDir: string, log: (message: string) => void): Promise<void> {
  const podsDir = join(stateDir, 'pods');
  if (!existsSync(podsDir)) return;
  for (const pod of readdirSync(podsDir)) {
    const podDir = join(podsDir, pod);
    const pid = readPid(podDir, 'supervisor');
    if (pid !== undefined && isOurProcess(pid, podDir)) {
      await stopProcess(pid, podDir, 10_000);
      log(`stopped pod ${pod} (supervisor pid ${pid})`);
    }
    // The supervisor stops its program; this catches programs whose supervisor was SIGKILLed.
    const programPid = readPid(podDir, 'program');
    const binary = readSupervisedBinary(podDir);
    if (programPid !== undefined && binary !== undefined) await stopProcess(programPid, binary, 3000);
  }
}

function readSupervisedBinary(podDir: string): string | undefined {
  try {
    const spec = JSON.parse(readFileSync(join(podDir, 'pod.json'), 'utf8')) as { binary?: unknown };
    return typeof spec.binary === 'string' ? spec.binary : undefined;
  } catch {
    return undefined;
  }
}

// --- cluster index: ports and pod CIDR ------------------------------------

/**
 * Cluster indexes pick ports and the pod range, so they are claimed
 * machine-wide (not per checkout): two checkouts' clusters must never share
 * a pod range, or one's teardown would remove the other's pod routes.
 * Under /run, so claims do not outlive a reboot (nor do clusters).
 */
const INDEX_REGISTRY = process.env.MAPLEAK_CLUSTER_REGISTRY ?? '/run/mapleakprobe/cluster-indexes';
/** A registry lock older than this was left by a process that died holding it (a claim takes milliseconds). */
const REGISTRY_LOCK_STALE_MS = 10_000;

/**
 * Reuses the index this cluster name had, or claims the lowest free one.
 * Claims are made under a registry lock, and each claim file appears with
 * its owner already in it (written aside, then hard-linked into place): a
 * claim read between its creation and its write used to look empty, hence
 * stale, and was deleted and claimed again by the reader, so two clusters
 * shared ports and a pod range, and the one whose start then failed swept
 * the other's pod networks.
 */
export function claimClusterIndex(repoRoot: string, name: string, registry: string = INDEX_REGISTRY): number {
  mkdirSync(registry, { recursive: true });
  const owner = `${repoRoot}\t${name}`;
  return withRegistryLock(registry, () => {
    for (const entry of readdirSync(registry)) {
      if (!/^\d+$/.test(entry)) continue;
      const claimedBy = readClaim(join(registry, entry));
      if (claimedBy === undefined) continue; // released meanwhile
      if (claimedBy === owner) return Number(entry);
      // A claim whose checkout or cluster state is gone (e.g. a deleted clone) is stale.
      const [claimRoot, claimName] = claimedBy.split('\t');
      if (!claimRoot || !claimName || !existsSync(clusterStateDir(claimName, claimRoot))) rmSync(join(registry, entry), { force: true });
    }
    // Beside the registry, not in it: a reader sees only whole claims. Same file system, so it can be linked.
    const draft = `${registry}.claim-${process.pid}-${randomBytes(4).toString('hex')}`;
    writeFileSync(draft, `${owner}\n`);
    try {
      for (let index = 1; index <= MAX_CLUSTERS; index++) {
        try {
          linkSync(draft, join(registry, String(index)));
          return index;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
          // taken by another cluster
        }
      }
    } finally {
      rmSync(draft, { force: true });
    }
    throw new Error(`more than ${MAX_CLUSTERS} clusters on this machine (${registry}); run cluster:down on some`);
  });
}

export function releaseClusterIndex(repoRoot: string, name: string, registry: string = INDEX_REGISTRY): void {
  if (!existsSync(registry)) return;
  withRegistryLock(registry, () => {
    for (const entry of readdirSync(registry)) {
      if (/^\d+$/.test(entry) && readClaim(join(registry, entry)) === `${repoRoot}\t${name}`) rmSync(join(registry, entry), { force: true });
    }
  });
}

function readClaim(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Runs `body` holding the registry's lock file (O_EXCL, beside the registry), waiting for another holder; a lock left by a dead process is broken after REGISTRY_LOCK_STALE_MS. */
function withRegistryLock<T>(registry: string, body: () => T): T {
  const lock = `${registry}.lock`;
  const deadline = Date.now() + 3 * REGISTRY_LOCK_STALE_MS;
  for (;;) {
    try {
      closeSync(openSync(lock, 'wx'));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let age = 0;
    try {
      age = Date.now() - statSync(lock).mtimeMs;
    } catch {
      continue; // released meanwhile
    }
    if (age > REGISTRY_LOCK_STALE_MS) rmSync(lock, { force: true });
    else if (Date.now() > deadline) throw new Error(`the cluster index registry ${registry} stays locked (${lock})`);
    else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5); // claims are synchronous: a short blocking wait
  }
  try {
    return body();
  } finally {
    rmSync(lock, { force: true });
  }
}

async function assertPortsFree(cluster: Cluster): Promise<void> {
  for (const [what, port] of Object.entries(cluster.ports)) {
    if (!(await portFree(port))) {
      throw new Error(`port ${port} (${what} of cluster "${cluster.name}") is already in use; is another process holding it?`);
    }
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolvePort) => {
    const server = createServer();
    server.once('error', () => resolvePort(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolvePort(true)));
  });
}

// --- API helpers ------------------------------------------------------------

function adminKubeconfig(cluster: Cluster, pki: ClusterPki): string {
  const b64 = (file: string): string => readFileSync(file).toString('base64');
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: cluster.name, cluster: { server: cluster.server, 'certificate-authority-data': b64(pki.caCert) } }],
    users: [
      {
        name: `${cluster.name}-admin`,
        user: { 'client-certificate-data': b64(pki.adminCert), 'client-key-data': b64(pki.adminKey) },
      },
    ],
    contexts: [{ name: cluster.name, context: { cluster: cluster.name, user: `${cluster.name}-admin`, namespace: 'default' } }],
    'current-context': cluster.name,
  };
  return JSON.stringify(config, null, 2) + '\n';
}

/** GET /readyz with the admin identity; true on 200. */
async function apiserverReady(cluster: Cluster): Promise<boolean> {
  const pki = pkiPaths(join(cluster.stateDir, 'pki'));
  if (!existsSync(pki.adminCert)) return false;
  const status = await httpGetStatus(`${cluster.server}/readyz`, {
    ca: readFileSync(pki.caCert),
    cert: readFileSync(pki.adminCert),
    key: readFileSync(pki.adminKey),
  });
  return status === 200;
}

function httpGetStatus(url: string, tls: https.RequestOptions = {}): Promise<number> {
  return new Promise((resolveStatus) => {
    const get = url.startsWith('https:') ? https.get : httpGet;
    const request = get(url, { ...tls, timeout: 2000 }, (response) => {
      response.resume();
      resolveStatus(response.statusCode ?? 0);
    });
    request.on('error', () => resolveStatus(0));
    request.on('timeout', () => request.destroy());
  });
}

/** Creates (or replaces the spec of) every object in a YAML file, like `kubectl apply` for simple cases. */
export async function applyManifestFile(kc: k8s.KubeConfig, file: string): Promise<k8s.KubernetesObject[]> {
  const objects = k8s.loadAllYaml(readFileSync(file, 'utf8')) as Array<k8s.KubernetesObject | null>;
  const client = k8s.KubernetesObjectApi.makeApiClient(kc);
  const applied: k8s.KubernetesObject[] = [];
  for (const object of objects) {
    if (!object?.kind) continue;
    applied.push(await applyObject(client, object));
  }
  return applied;
}

/** Server-side apply of one object (creates or updates). */
export async function applyObject(client: k8s.KubernetesObjectApi, object: k8s.KubernetesObject): Promise<k8s.KubernetesObject> {
  return client.patch(object, undefined, undefined, 'mapleakprobe-harness', true, k8s.PatchStrategy.ServerSideApply);
}

export async function waitForCrdsEstablished(kc: k8s.KubeConfig, names: string[], timeoutMs = 30_000): Promise<void> {
  const api = kc.makeApiClient(k8s.ApiextensionsV1Api);
  for (const name of names) {
    await waitFor(
      async () => {
        const crd = await api.readCustomResourceDefinition({ name });
        const established = crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
        return established ? true : undefined;
      },
      timeoutMs,
      () => `CRD ${name} was not Established within ${timeoutMs / 1000}s`,
    );
  }
}

async function createNode(kc: k8s.KubeConfig, cluster: Cluster): Promise<void> {
  const client = k8s.KubernetesObjectApi.makeApiClient(kc);
  const node: k8s.V1Node = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: cluster.nodeName,
      labels: { 'kubernetes.io/hostname': cluster.nodeName, 'kubernetes.io/os': 'linux', type: 'kwok' },
      annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
    },
    spec: { podCIDR: cluster.podCidr, podCIDRs: [cluster.podCidr] },
  };
  await applyObject(client, node as k8s.KubernetesObject);
}

async function waitForNodeReady(kc: k8s.KubeConfig, cluster: Cluster): Promise<void> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await waitFor(
    async () => {
      const node = await core.readNode({ name: cluster.nodeName });
      const ready = node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      return ready ? true : undefined;
    },
    30_000,
    () => `node ${cluster.nodeName} did not become Ready in 30s; see ${logFile(cluster, 'kwok')}`,
  );
}

// Smoke test of the local control plane against the real kube-apiserver:
// CRDs apply, run-pod gives a Go program a real pod IP, its heap profile comes
// back intact through the apiserver's pod proxy, and its gctrace lines come
// back through the pod log API. Starts (and tears down) its own cluster "smoke".
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import * as https from 'node:https';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import * as k8s from '@kubernetes/client-node';
import { Profile } from 'pprof-format';
import {
  applyManifestFile,
  deletePod,
  findRepoRoot,
  loadKubeConfig,
  runPod,
  startCluster,
  stopCluster,
  waitForCrdsEstablished,
  type Cluster,
  type RunningPod,
} from './cluster.js';
import { listNetns, networkPrefix } from './netns.js';
import { commandLineOf, waitFor } from './processes.js';
import { podDirectory } from './run-pod.js';

const CLUSTER_NAME = 'smoke';
const NAMESPACE = 'smoke';
const repoRoot = findRepoRoot();

let cluster: Cluster | undefined;
let kc: k8s.KubeConfig;
let pod: RunningPod | undefined;
let failed = false;

function requireCluster(): Cluster {
  if (!cluster) throw new Error('cluster did not start');
  return cluster;
}

/** Marks the run failed so `after` keeps .cluster/smoke/ (logs) for diagnosis. */
async function guarded(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (error) {
    failed = true;
    throw error;
  }
}

before(() =>
  guarded(async () => {
    await stopCluster(CLUSTER_NAME); // never reuse a cluster left behind by an earlier run
    cluster = await startCluster({ name: CLUSTER_NAME, log: (message) => console.log(message) });
    kc = loadKubeConfig(cluster);
  }),
);

after(async () => {
  if (failed) console.log(`keeping logs in .cluster/${CLUSTER_NAME}/`);
  await stopCluster(CLUSTER_NAME, { keepState: failed });
});

test('the apiserver reports its real version and mints service-account tokens', () =>
  guarded(async () => {
    const version = await kc.makeApiClient(k8s.VersionApi).getCode();
    const pinned = /KUBERNETES_VERSION=(\S+)/.exec(readFileSync(join(repoRoot, 'test/cluster/go/versions.env'), 'utf8'))?.[1];
    assert.equal(version.gitVersion, `v${pinned}`);

    const core = kc.makeApiClient(k8s.CoreV1Api);
    await core.createNamespacedServiceAccount({ namespace: 'default', body: { metadata: { name: 'smoke-sa' } } });
    const token = await core.createNamespacedServiceAccountToken({
      namespace: 'default',
      name: 'smoke-sa',
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    assert.match(token.status?.token ?? '', /^ey/);
  }));

test('every CRD in crds/ applies and accepts an object', async (t) => {
  const crdDir = join(repoRoot, 'crds');
  const files = existsSync(crdDir) ? readdirSync(crdDir).filter((f) => /\.ya?ml$/.test(f)) : [];
  if (files.length === 0) {
    t.skip('no CRD files in crds/');
    return;
  }
  await guarded(async () => {
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    for (const file of files) {
      const applied = await applyManifestFile(kc, join(crdDir, file));
      const crds = applied.filter((o): o is k8s.V1CustomResourceDefinition => o.kind === 'CustomResourceDefinition');
      await waitForCrdsEstablished(kc, crds.map((crd) => crd.metadata?.name ?? ''));
      for (const crd of crds) {
        const version = crd.spec.versions.find((v) => v.storage)?.name ?? crd.spec.versions[0]?.name ?? 'v1';
        const body = {
          apiVersion: `${crd.spec.group}/${version}`,
          kind: crd.spec.names.kind,
          metadata: { name: 'smoke', namespace: 'default' },
          spec: sampleSpec(crd.spec.group, crd.spec.names.kind),
        };
        const target = { group: crd.spec.group, version, plural: crd.spec.names.plural };
        const created = (await (crd.spec.scope === 'Namespaced'
          ? custom.createNamespacedCustomObject({ ...target, namespace: 'default', body })
          : custom.createClusterCustomObject({ ...target, body }))) as k8s.KubernetesObject;
        assert.ok(created.metadata?.uid, `${file}: created ${crd.spec.names.kind} has a uid`);
      }
    }
  });
});

/** A minimal valid spec for the kinds we know; {} for the rest. */
function sampleSpec(group: string, kind: string): object {
  if (group === 'mapleak.io' && kind === 'MapLeakProbe') return { selector: { matchLabels: { app: 'x' } } };
  return {};
}

test('run-pod runs a Go program as a Running pod with a routable pod IP', () =>
  guarded(async () => {
    const c = requireCluster();
    pod = await runPod(c, {
      name: 'pprof-hello',
      namespace: NAMESPACE,
      labels: { app: 'pprof-hello', tier: 'smoke' },
      path: 'test/cluster/testdata/pprof-hello',
    });
    const read = await kc.makeApiClient(k8s.CoreV1Api).readNamespacedPod({ namespace: NAMESPACE, name: 'pprof-hello' });
    assert.equal(read.status?.phase, 'Running');
    assert.equal(read.metadata?.labels?.app, 'pprof-hello');
    assert.equal(read.spec?.containers[0]?.name, 'app');
    assert.equal(read.spec?.containers[0]?.ports?.[0]?.name, 'pprof');
    const podIp = read.status?.podIP ?? '';
    assert.equal(podIp, pod.podIp);
    assert.ok(podIp.startsWith(`10.244.${c.index}.`), `pod IP ${podIp} is in ${c.podCidr}`);
    assert.doesNotMatch(podIp, /^(127\.|169\.254\.)/);
  }));

test('the heap profile comes back intact through the apiserver pod proxy', () =>
  guarded(async () => {
    assert.ok(pod, 'pod is running');
    const path = `/api/v1/namespaces/${NAMESPACE}/pods/${pod.name}:6060/proxy/debug/pprof/heap`;
    const body = await getBytes(kc, path);
    assert.equal(body[0], 0x1f, 'gzip magic');
    assert.equal(body[1], 0x8b, 'gzip magic');
    const profile = Profile.decode(gunzipSync(body));
    const strings = profile.stringTable.strings;
    const sampleTypes = profile.sampleType.map((type) => strings[Number(type.type)]);
    assert.deepEqual(sampleTypes, ['alloc_objects', 'alloc_space', 'inuse_objects', 'inuse_space']);
    assert.ok(profile.sample.length > 0, 'heap profile has samples');
  }));

test('gctrace lines come back through the pod log API', () =>
  guarded(async () => {
    assert.ok(pod, 'pod is running');
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const logs = await waitFor(
      async () => {
        const text = await core.readNamespacedPodLog({ namespace: NAMESPACE, name: pod!.name, container: 'app' });
        return /^gc \d+ @/m.test(text) ? text : undefined;
      },
      30_000,
      () => `no "gc N @" line in the pod log within 30s; see ${pod!.logFile}`,
      500,
    );
    assert.match(logs, /pprof-hello: hello/);
  }));

test('deleting the pod stops its program and removes its network namespace', () =>
  guarded(async () => {
    assert.ok(pod, 'pod is running');
    const c = requireCluster();
    const programCommandLine = commandLineOf(pod.pid) ?? '';
    assert.ok(programCommandLine.includes('pprof-hello'), `program ${pod.pid} (the built pprof-hello) runs before the delete`);
    await deletePod(c, NAMESPACE, pod.name);
    await waitFor(
      async () => (commandLineOf(pod!.pid) === undefined ? true : undefined),
      10_000,
      () => `program pid ${pod!.pid} still runs after its pod was deleted`,
    );
    assert.ok(!(await listNetns()).includes(pod.netns), `netns ${pod.netns} is gone`);
    pod = undefined;
  }));

test('a program that exits before it listens fails run-pod at once, its own output in the error', () =>
  guarded(async () => {
    const c = requireCluster();
    const started = Date.now();
    await assert.rejects(
      runPod(c, { name: 'exits-early', namespace: NAMESPACE, path: '/bin/sh', args: ['-c', 'echo "config file not found" >&2; exit 3'], timeoutMs: 60_000 }),
      (error: Error) => {
        assert.match(error.message, /pod smoke\/exits-early: its program \(pid \d+\) exited before listening on 10\.244\.\d+\.\d+:6060/);
        assert.match(error.message, /app\.log: [^;]*config file not found/);
        assert.match(error.message, /supervisor\.log: .*program exited \(code 3/);
        return true;
      },
    );
    assert.ok(Date.now() - started < 30_000, `failed after ${Date.now() - started} ms, not after the whole wait`);
  }));

test('a pod whose network is removed under it: the readiness error says the netns is gone', () =>
  guarded(async () => {
    const c = requireCluster();
    // Not listening yet; its network namespace and veth are deleted while run-pod waits, as a sweep by another cluster on this index did.
    const started = Date.now();
    const starting = runPod(c, { name: 'swept', namespace: NAMESPACE, path: '/bin/sh', args: ['-c', 'echo starting; sleep 600'] });
    const podDir = podDirectory(c, NAMESPACE, 'swept');
    await waitFor(async () => (existsSync(join(podDir, 'program.pid')) ? true : undefined), 10_000, () => 'the program did not start', 50);
    const { netns, hostVeth } = JSON.parse(readFileSync(join(podDir, 'pod.json'), 'utf8')) as { netns: string; hostVeth: string };
    execFileSync('ip', ['link', 'del', hostVeth]);
    execFileSync('ip', ['netns', 'del', netns]);
    await assert.rejects(starting, (error: Error) => {
      assert.match(error.message, /pod smoke\/swept: its network namespace was removed before it listened on 10\.244\.\d+\.\d+:6060; program running, supervisor running, netns mlp\d+-\w+ GONE/);
      assert.match(error.message, /app\.log: starting/);
      return true;
    });
    assert.ok(Date.now() - started < 30_000, `failed after ${Date.now() - started} ms, not after the whole wait`);
    await deletePod(c, NAMESPACE, 'swept');
  }));

test('cluster:down leaves no processes or network namespaces behind', () =>
  guarded(async () => {
    const c = requireCluster();
    const pids = ['etcd', 'kube-apiserver', 'kwok'].map((name) =>
      Number(readFileSync(join(c.stateDir, `${name}.pid`), 'utf8').trim()),
    );
    // A second pod that is still running when the cluster goes down.
    const second = await runPod(c, { name: 'left-running', namespace: NAMESPACE, path: 'test/cluster/testdata/pprof-hello' });
    await stopCluster(CLUSTER_NAME, { keepState: failed });
    for (const pid of [...pids, second.pid, second.supervisorPid]) {
      assert.equal(commandLineOf(pid), undefined, `pid ${pid} is gone`);
    }
    const prefix = `${networkPrefix(c.index)}-`;
    assert.deepEqual((await listNetns()).filter((name) => name.startsWith(prefix)), []);
    if (!failed) assert.ok(!existsSync(c.stateDir), `${c.stateDir} is removed`);
  }));

/** GET an apiserver path as raw bytes (client-node's proxy helpers decode bodies as text). */
async function getBytes(config: k8s.KubeConfig, path: string): Promise<Buffer> {
  const server = config.getCurrentCluster()?.server;
  if (!server) throw new Error('kubeconfig has no current cluster');
  const options: https.RequestOptions = {};
  await config.applyToHTTPSOptions(options);
  return new Promise((resolveBody, reject) => {
    const request = https.get(new URL(path, server), { ...options, timeout: 30_000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const body = Buffer.concat(chunks);
        if (response.statusCode !== 200) {
          reject(new Error(`GET ${path}: HTTP ${response.statusCode}: ${body.toString('utf8').slice(0, 300)}`));
          return;
        }
        resolveBody(body);
      });
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${path} timed out`)));
    request.on('error', reject);
  });
}

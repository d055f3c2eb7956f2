/* global fetch, AbortSignal */
// `npm run demo`: the operator's main job on one machine, in one command.
//
//   node scripts/demo.mjs [--ci] [--name demo] [--port 8080] [--timeout 240s]
//   node scripts/demo.mjs down [--name demo]
//
// Builds if needed, starts the local control plane of test/cluster (etcd +
// kube-apiserver + kwok, cluster "demo"), a Redis, the leaking Go program of
// test/targets/leaky as pod "leaky", installs the CRD, starts `mapleak
// operator` in the background, applies a MapLeakProbe and shows its verdict
// and findings as they arrive. Everything keeps running afterwards (to look
// further) until `npm run demo:down`. With --ci it exits 0 once the verdict
// is Leaking with a growing map site (1 after the timeout), and always stops
// everything it started before exiting.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const root = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
const dist = (...parts) => join(root, 'dist', ...parts);
const MAIN_JS = dist('src', 'cli', 'main.js');
const KUBECTL = '/usr/bin/kubectl';
const NAMESPACE = 'default';
const PROBE = 'leaky';
// The leaking program stops leaking once its heap objects reach this (what leaked stays held), so a
// demo left running never exhausts the machine: about two minutes of growth at its rate.
const LEAK_CAP_BYTES = 1024 ** 3;
// ...and exits after this long all the same.
const LEAKY_LIFETIME = '8h';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    ci: { type: 'boolean', default: false },
    name: { type: 'string', default: 'demo' },
    port: { type: 'string' },
    timeout: { type: 'string', default: '240s' },
    watch: { type: 'string', default: '90s' },
  },
});
const command = positionals[0] ?? 'up';
if (!['up', 'down'].includes(command)) {
  console.error(`demo: unknown command "${command}" (use: up, down)`);
  process.exit(2);
}
const name = values.name;
const stateDir = join(root, '.cluster', name);
const kubeconfig = join(stateDir, 'kubeconfig');
const files = {
  redisDir: join(stateDir, 'redis'),
  redisPid: join(stateDir, 'redis', 'redis.pid'),
  redisLog: join(stateDir, 'redis', 'redis.log'),
  operatorPid: join(stateDir, 'operator.pid'),
  operatorLog: join(stateDir, 'operator.log'),
  demoJson: join(stateDir, 'demo.json'),
};
// Recognise our own processes by their command line before signalling a recorded pid.
const redisMarker = files.redisDir;
const operatorMarker = `${MAIN_JS} operator --kubeconfig ${kubeconfig}`;

const say = (message) => console.log(`demo: ${message}`);
const seconds = (text) => {
  const match = /^(\d+)(s|m)?$/.exec(text);
  if (!match) throw new Error(`bad duration "${text}" (use e.g. 90s or 3m)`);
  return Number(match[1]) * (match[2] === 'm' ? 60_000 : 1000);
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// --- build -----------------------------------------------------------------

function newestMtime(dir) {
  let newest = 0;
  if (!existsSync(dir)) return newest;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'testdata' && entry.name !== 'node_modules') newest = Math.max(newest, newestMtime(path));
    } else if (entry.name.endsWith('.ts')) {
      newest = Math.max(newest, statSync(path).mtimeMs);
    }
  }
  return newest;
}

function buildIfNeeded() {
  const needed = [MAIN_JS, dist('test', 'cluster', 'cluster.js'), dist('test', 'cluster', 'processes.js')];
  const built = needed.every((file) => existsSync(file)) ? Math.min(...needed.map((file) => statSync(file).mtimeMs)) : 0;
  const sources = Math.max(newestMtime(join(root, 'src')), newestMtime(join(root, 'test')), statSync(join(root, 'tsconfig.json')).mtimeMs);
  if (built > 0 && built >= sources) return;
  if (!existsSync(join(root, 'node_modules', '.bin', 'tsc'))) {
    say('installing npm dependencies (npm ci)');
    if (spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' }).status !== 0) throw new Error('npm ci failed');
  }
  say('building (npm run build)');
  const before = Date.now() - 1000;
  if (spawnSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' }).status !== 0) {
    // tsc still writes its output after type errors; go on when it did.
    if (!needed.every((file) => existsSync(file) && statSync(file).mtimeMs >= before)) throw new Error('npm run build failed');
    say('warning: npm run build reported type errors (above); going on with the JavaScript it emitted');
  }
}

// --- processes -------------------------------------------------------------

function readPid(file) {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Ours when the command line names `marker`, or (redis-server rewrites its title) when the process runs in directory `marker`. */
function isOurs(pid, marker) {
  let commandLine = '';
  try {
    commandLine = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return false;
  }
  if (commandLine === '') return false; // a zombie
  if (commandLine.includes(marker)) return true;
  try {
    return readlinkSync(`/proc/${pid}/cwd`) === marker;
  } catch {
    return false;
  }
}

/** SIGTERM, SIGKILL after graceMs; checks before each signal that the pid still is ours. */
async function stopRecorded(pidFile, marker, what, graceMs = 10_000) {
  const pid = readPid(pidFile);
  if (pid !== undefined && isOurs(pid, marker)) {
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (isOurs(pid, marker) && Date.now() < deadline) await sleep(100);
    if (isOurs(pid, marker)) process.kill(pid, 'SIGKILL');
    while (isOurs(pid, marker)) await sleep(100);
    say(`stopped ${what} (pid ${pid})`);
  }
  rmSync(pidFile, { force: true });
}

function freePort(preferred) {
  const tryPort = (port) =>
    new Promise((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(undefined));
      server.listen(port, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address ? address.port : undefined));
      });
    });
  return (preferred === undefined ? Promise.resolve(undefined) : tryPort(preferred)).then((port) => port ?? tryPort(0));
}

async function waitUntil(what, check, timeoutMs, intervalMs = 250) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs / 1000}s`);
    await sleep(intervalMs);
  }
}

async function startRedis(processes) {
  mkdirSync(files.redisDir, { recursive: true });
  const port = await freePort();
  const redisServer = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';
  if (!existsSync(redisServer)) throw new Error(`${redisServer} is missing; run bash scripts/setup.sh`);
  const args = ['--bind', '127.0.0.1', '--port', String(port), '--dir', files.redisDir, '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction', '--daemonize', 'no'];
  const pid = processes.startDaemon(redisServer, args, files.redisLog, { cwd: files.redisDir });
  writeFileSync(files.redisPid, `${pid}\n`);
  await waitUntil(`redis-server did not answer on 127.0.0.1:${port} (see ${files.redisLog})`, () => pingTcp(port), 15_000, 100);
  return { pid, port, url: `redis://127.0.0.1:${port}` };
}

function pingTcp(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    socket.setTimeout(1000);
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (data) => {
      reply += data.toString();
      socket.destroy();
      resolve(reply.startsWith('+PONG'));
    });
    socket.on('error', () => resolve(false));
    socket.on('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

async function startOperator(processes, redisUrl) {
  const port = await freePort(values.port === undefined ? 8080 : Number(values.port));
  const args = [MAIN_JS, 'operator', '--kubeconfig', kubeconfig, '--redis-url', redisUrl, '--port', String(port), '--no-leader-elect', '--identity', `${name}-operator`];
  const pid = processes.startDaemon(process.execPath, args, files.operatorLog, { cwd: root, env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' } });
  writeFileSync(files.operatorPid, `${pid}\n`);
  await waitUntil(`the operator did not become ready on port ${port} (see ${files.operatorLog})`, async () => {
    if (!isOurs(pid, operatorMarker)) throw new Error(`the operator exited; see ${files.operatorLog}`);
    const response = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2000) });
    return response.status === 200;
  }, 60_000, 300);
  return { pid, port };
}

// --- down ------------------------------------------------------------------

async function down() {
  const { stopCluster, listClusters } = await import(dist('test', 'cluster', 'cluster.js'));
  await stopRecorded(files.operatorPid, operatorMarker, 'the operator');
  await stopRecorded(files.redisPid, redisMarker, 'redis-server');
  if (listClusters(root).includes(name) || existsSync(stateDir)) {
    await stopCluster(name, { repoRoot: root, log: (message) => say(message) });
    say(`cluster "${name}" stopped`);
  } else {
    say(`no cluster "${name}" is running`);
  }
}

// --- up --------------------------------------------------------------------

function table(rows) {
  const widths = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('   ').trimEnd()).join('\n');
}

function age(timestamp) {
  if (!timestamp) return '<none>';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(timestamp)) / 1000));
  return s < 120 ? `${s}s` : `${Math.floor(s / 60)}m${s % 60}s`;
}

/** `kubectl get mlp` when kubectl is installed, else the same columns from the API. */
function probeTable(probe) {
  if (existsSync(KUBECTL)) {
    const result = spawnSync(KUBECTL, ['--kubeconfig', kubeconfig, 'get', 'mlp', PROBE, '-n', NAMESPACE], { encoding: 'utf8', timeout: 10_000 });
    if (result.status === 0) return result.stdout.trimEnd();
  }
  const status = probe?.status ?? {};
  return table([
    ['NAME', 'TARGETS', 'VERDICT', 'MAP MEMORY', 'LAST CAPTURE', 'AGE'],
    [PROBE, String(status.targetCount ?? ''), status.verdict ?? '', status.mapMemory ?? '', age(status.lastCaptureTime), age(probe?.metadata?.creationTimestamp)],
  ]);
}

function findingRow(finding, formatBytes) {
  const file = (finding.site.file ?? '').split('/').pop();
  const kind = finding.kind === 'map' && finding.mapImpl && finding.mapImpl !== 'unknown' ? `map/${finding.mapImpl}` : finding.kind;
  const growth = finding.growthBytesPerHour ?? 0;
  return [`${finding.site.function} ${file}:${finding.site.line}`, kind, finding.pattern, formatBytes(finding.inuseBytes ?? 0), `${growth > 0 ? '+' : ''}${formatBytes(growth)}`];
}

const isGrowingMap = (finding) => finding.kind === 'map' && finding.pattern === 'growing';

async function up() {
  const ciTimeoutMs = seconds(values.timeout);
  const watchMs = seconds(values.watch);
  const started = Date.now();
  buildIfNeeded();
  const processes = await import(dist('test', 'cluster', 'processes.js'));
  const cluster = await import(dist('test', 'cluster', 'cluster.js'));
  const k8s = await import('@kubernetes/client-node');
  const { formatBytes } = await import(dist('src', 'analysis', 'bytes.js'));

  if (process.getuid?.() !== 0) throw new Error('the demo needs root: pods run in network namespaces of their own');
  // A demo left running before: stop its operator and Redis, keep the cluster.
  await stopRecorded(files.operatorPid, operatorMarker, 'the previous operator');
  await stopRecorded(files.redisPid, redisMarker, 'the previous redis-server');

  say(`starting the local control plane "${name}" (etcd + kube-apiserver + kwok; a cold first run builds them from Go modules, 15-20 min)`);
  const c = await cluster.startCluster({ name, repoRoot: root, log: (message) => say(message) });
  checkpoint();
  const kc = cluster.loadKubeConfig(c);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const objects = k8s.KubernetesObjectApi.makeApiClient(kc);

  say('installing the MapLeakProbe CRD (crds/mapleakprobes.yaml)');
  await cluster.applyManifestFile(kc, join(root, 'crds', 'mapleakprobes.yaml'));
  await cluster.waitForCrdsEstablished(kc, ['mapleakprobes.mapleak.io']);
  checkpoint();
  // A probe left by an earlier run: delete it while no operator runs would leave its finalizer stuck, so drop that first.
  try {
    await custom.patchNamespacedCustomObject(
      { group: 'mapleak.io', version: 'v1alpha1', namespace: NAMESPACE, plural: 'mapleakprobes', name: PROBE, body: { metadata: { finalizers: null } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    await custom.deleteNamespacedCustomObject({ group: 'mapleak.io', version: 'v1alpha1', namespace: NAMESPACE, plural: 'mapleakprobes', name: PROBE });
  } catch {
    // none there
  }

  const redis = await startRedis(processes);
  checkpoint();
  say(`redis-server on ${redis.url} (pid ${redis.pid}, ${files.redisDir})`);

  const core = kc.makeApiClient(k8s.CoreV1Api);
  const existing = await core.readNamespacedPod({ namespace: NAMESPACE, name: PROBE }).catch(() => undefined);
  if (existing) {
    say('deleting the pod "leaky" of an earlier run');
    await cluster.deletePod(c, NAMESPACE, PROBE);
  }
  say(`building test/targets/leaky (a Go program that leaks map memory on purpose, until its heap reaches ${formatBytes(LEAK_CAP_BYTES)}) and running it as pod "leaky" (app=leaky)`);
  const pod = await cluster.runPod(c, {
    name: PROBE,
    labels: { app: 'leaky' },
    path: 'test/targets/leaky',
    args: ['-max-leak-heap', String(LEAK_CAP_BYTES), '-max-lifetime', LEAKY_LIFETIME],
  });
  say(`pod ${pod.namespace}/${pod.name} Running at ${pod.podIp}, pprof on :6060 (program pid ${pod.pid})`);
  checkpoint();

  const operator = await startOperator(processes, redis.url);
  checkpoint();
  say(`mapleak operator running (pid ${operator.pid}) on http://127.0.0.1:${operator.port}, log ${files.operatorLog}`);
  writeFileSync(files.demoJson, JSON.stringify({ name, port: operator.port, operatorPid: operator.pid, redisPid: redis.pid, redisUrl: redis.url }, null, 2) + '\n');

  const probeObject = {
    apiVersion: 'mapleak.io/v1alpha1',
    kind: 'MapLeakProbe',
    metadata: { name: PROBE, namespace: NAMESPACE },
    spec: { selector: { matchLabels: { app: 'leaky' } }, schedule: { interval: '5s' } },
  };
  await cluster.applyObject(objects, probeObject);
  say(`applied MapLeakProbe ${NAMESPACE}/${PROBE}: selector app=leaky, one capture every 5s`);
  console.log(`\n  ${JSON.stringify(probeObject.spec)}\n`);

  // Watch: the table and the findings as they arrive.
  const seen = new Map();
  let leakingRounds = -1;
  let probe;
  // --ci: until Leaking (or the timeout). Otherwise: until Leaking plus two more rounds, or --watch once Leaking was seen (the timeout at most).
  const deadline = Date.now() + ciTimeoutMs;
  const watchStart = Date.now();
  for (;;) {
    probe = await custom.getNamespacedCustomObject({ group: 'mapleak.io', version: 'v1alpha1', namespace: NAMESPACE, plural: 'mapleakprobes', name: PROBE }).catch(() => undefined);
    const elapsed = Math.round((Date.now() - watchStart) / 1000);
    console.log(`--- ${elapsed}s after the probe was applied ---`);
    console.log(probeTable(probe));
    const findings = probe?.status?.findings ?? [];
    const fresh = findings.filter((f) => {
      const key = `${f.site.function}:${f.site.line}:${f.kind}`;
      const changed = seen.get(key) !== f.pattern;
      seen.set(key, f.pattern);
      return changed;
    });
    if (fresh.length > 0) {
      console.log('\nnew findings:');
      console.log(table([['SITE', 'KIND', 'PATTERN', 'IN USE', 'GROWTH/h'], ...fresh.map((f) => findingRow(f, formatBytes))]).replace(/^/gm, '  '));
      for (const f of fresh) console.log(`  - ${f.site.function}:${f.site.line}: ${f.advice}`);
    }
    console.log('');
    const leaking = probe?.status?.verdict === 'Leaking' && findings.some(isGrowingMap);
    if (leaking && leakingRounds < 0) {
      leakingRounds = 0;
      say(`verdict Leaking after ${elapsed}s: ${findings.filter(isGrowingMap).map((f) => `${f.site.function}:${f.site.line}`).join(', ')} grows without bound`);
    }
    if (leakingRounds >= 0) leakingRounds++;
    const enoughRounds = values.ci ? leakingRounds >= 1 : leakingRounds >= 3;
    if (enoughRounds || (leakingRounds > 0 && Date.now() - watchStart > watchMs)) break;
    if (Date.now() > deadline) break;
    await sleep(5000);
    checkpoint();
  }

  const findings = probe?.status?.findings ?? [];
  const success = probe?.status?.verdict === 'Leaking' && findings.some(isGrowingMap);
  if (findings.length > 0) {
    console.log('Findings, most serious first:\n');
    console.log(table([['SITE', 'KIND', 'PATTERN', 'IN USE', 'GROWTH/h', 'ADVICE'], ...findings.map((f) => [...findingRow(f, formatBytes), f.advice])]).replace(/^/gm, '  '));
    console.log('');
  }
  say(`${success ? 'verdict Leaking with a growing map site' : `no Leaking verdict (verdict ${probe?.status?.verdict ?? 'none'})`} in ${Math.round((Date.now() - started) / 1000)}s in all`);

  if (values.ci) {
    if (!success) {
      const log = existsSync(files.operatorLog) ? readFileSync(files.operatorLog, 'utf8').trim().split('\n').slice(-20).join('\n') : '';
      console.error(`demo: timed out after ${ciTimeoutMs / 1000}s; last operator log lines:\n${log}`);
      console.error(`demo: status ${JSON.stringify(probe?.status ?? null)}`);
    }
    say('--ci: stopping everything');
    await down();
    return success ? 0 : 1;
  }

  const captureId = await fetch(`http://127.0.0.1:${operator.port}/api/v1/namespaces/${NAMESPACE}/mapleakprobes/${PROBE}`, { signal: AbortSignal.timeout(5000) })
    .then((response) => response.json())
    .then((body) => body.targets?.[0]?.captures?.at(-1)?.id)
    .catch(() => undefined);
  const api = `http://127.0.0.1:${operator.port}/api/v1/namespaces/${NAMESPACE}/mapleakprobes/${PROBE}`;
  const kubectl = existsSync(KUBECTL) ? 'kubectl' : 'kubectl  # (not installed here)';
  console.log(`Everything keeps running: the probe captures the pod every 5s. To look further:

  ${kubectl} --kubeconfig .cluster/${name}/kubeconfig get mlp -w
  kubectl --kubeconfig .cluster/${name}/kubeconfig describe mlp ${PROBE}
  kubectl --kubeconfig .cluster/${name}/kubeconfig get mlp ${PROBE} -o yaml      # the whole status
  # the HTTP API needs a bearer token (README, "Serving data"); a demo reader allowed everything:
  kubectl --kubeconfig .cluster/${name}/kubeconfig create serviceaccount demo-reader
  kubectl --kubeconfig .cluster/${name}/kubeconfig create clusterrolebinding demo-reader --clusterrole=cluster-admin --serviceaccount=default:demo-reader
  AUTH="Authorization: Bearer $(kubectl --kubeconfig .cluster/${name}/kubeconfig create token demo-reader)"
  curl -s -H "$AUTH" ${api}             # status plus each pod's stored series and captures
  curl -s -H "$AUTH" ${api} | grep -o '"id":"[0-9a-f]*"' | tail -3   # capture ids (kept for the window: 12 captures, about a minute here)
  curl -s -H "$AUTH" -o leaky.pb.gz ${api}/captures/${captureId ?? 'ID'}/profile
  go tool pprof -top -sample_index=inuse_space leaky.pb.gz     # or: go tool pprof -http=:0 leaky.pb.gz
  curl -s -H "$AUTH" http://127.0.0.1:${operator.port}/metrics | grep ^mapleak_
  curl -s -H "$AUTH" -o leaky-probe.html http://127.0.0.1:${operator.port}/ui/namespaces/${NAMESPACE}/mapleakprobes/${PROBE}   # the same as a page
  tail -f .cluster/${name}/operator.log

The leak stops once the program's heap reaches ${formatBytes(LEAK_CAP_BYTES)} (what leaked stays held); the
verdict then turns from Leaking as the window slides past the growth.

Try the kubectl plugin (bin/kubectl-mapleak; kubectl runs it as "kubectl mapleak" once bin/ is on PATH):

  export KUBECONFIG=$PWD/.cluster/${name}/kubeconfig PATH=$PWD/bin:$PATH
  ${existsSync(KUBECTL) ? 'kubectl mapleak' : 'kubectl-mapleak'} get -A
  ${existsSync(KUBECTL) ? 'kubectl mapleak' : 'kubectl-mapleak'} describe ${PROBE}
  ${existsSync(KUBECTL) ? 'kubectl mapleak' : 'kubectl-mapleak'} analyze pod/${PROBE} --every 5s --count 6 --html leaky.html   # no operator needed
  ${existsSync(KUBECTL) ? 'kubectl mapleak' : 'kubectl-mapleak'} profile ${PROBE} --url http://127.0.0.1:${operator.port} --token "$(kubectl create token demo-reader)" -o leaky.pb.gz

Stop it all with: npm run demo:down${name === 'demo' ? '' : ` -- --name ${name}`}`);
  return success ? 0 : 1;
}

// Ctrl-C while the demo comes up or watches: the step under way finishes (so nothing it starts is
// missed), then everything is stopped as by npm run demo:down. A second Ctrl-C leaves at once.
let interrupted = false;
class Interrupted extends Error {}
function checkpoint() {
  if (interrupted) throw new Interrupted('interrupted');
}
if (command === 'up') {
  process.on('SIGINT', () => {
    if (interrupted) {
      console.error('demo: interrupted again: leaving now; run npm run demo:down');
      process.exit(130);
    }
    interrupted = true;
    say('interrupted: stopping everything once the current step ends (Ctrl-C again to leave at once)');
  });
}

let exitCode = 1;
try {
  exitCode = command === 'down' ? (await down(), 0) : await up();
} catch (error) {
  if (!(error instanceof Interrupted)) console.error(`demo: ${error instanceof Error ? error.message : String(error)}`);
  if (command === 'up' && interrupted) {
    say('stopping everything (npm run demo:down)');
    await down().catch((err) => console.error(`demo: cleanup failed: ${err instanceof Error ? err.message : String(err)}; run npm run demo:down`));
    exitCode = 130;
  } else if (command === 'up' && values.ci) {
    say('--ci: stopping everything');
    await down().catch((err) => console.error(`demo: cleanup failed: ${err instanceof Error ? err.message : String(err)}`));
  } else if (command === 'up') {
    console.error(`demo: see the logs in .cluster/${name}/, then npm run demo:down`);
  }
}
// The API client keeps connections alive; the background processes are detached.
process.exit(exitCode);

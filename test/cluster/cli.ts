// Entry of `npm run cluster:up|cluster:down|cluster:run-pod`.
//
//   cluster:up      [--name NAME]
//   cluster:down    [--name NAME] [--keep-state]
//   cluster:run-pod --name POD [--namespace NS] [--labels k=v,...] [--cluster NAME]
//                   [--go 1.19] [--go-line old] [--no-wait] PATH [-- ARGS...]
import type { GoLine, GoToolchain } from './go-build.js';
import { parseArgs } from 'node:util';
import { DEFAULT_CLUSTER_NAME, readCluster, runPod, startCluster, stopCluster } from './cluster.js';

const USAGE = `usage:
  cluster:up   [--name NAME]
  cluster:down [--name NAME] [--keep-state]
  cluster:run-pod --name POD [--namespace NS] [--labels k=v,...] [--cluster NAME] [--go 1.19] [--go-line old] [--no-wait] PATH [-- ARGS...]`;

function say(message: string): void {
  console.log(`[cluster] ${message}`);
}

async function up(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { name: { type: 'string' } } });
  const cluster = await startCluster({ name: values.name ?? DEFAULT_CLUSTER_NAME, log: say });
  say(`etcd            http://127.0.0.1:${cluster.ports.etcdClient}  (log ${cluster.stateDir}/etcd.log)`);
  say(`kube-apiserver  ${cluster.server}  (log ${cluster.stateDir}/kube-apiserver.log)`);
  say(`kwok            node ${cluster.nodeName}, kubelet API 127.0.0.1:${cluster.ports.kubelet}, pod CIDR ${cluster.podCidr}`);
  say(`kubeconfig      ${cluster.kubeconfigPath}`);
  say(`try: kubectl --kubeconfig ${cluster.kubeconfigPath} get nodes`);
}

async function down(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { name: { type: 'string' }, 'keep-state': { type: 'boolean' } },
  });
  const name = values.name ?? DEFAULT_CLUSTER_NAME;
  await stopCluster(name, { keepState: values['keep-state'] ?? false, log: say });
  say(`cluster "${name}" is down`);
}

async function runPodCommand(argv: string[]): Promise<void> {
  const separator = argv.indexOf('--');
  const ownArgs = separator === -1 ? argv : argv.slice(0, separator);
  const programArgs = separator === -1 ? [] : argv.slice(separator + 1);
  const { values, positionals } = parseArgs({
    args: ownArgs,
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      namespace: { type: 'string' },
      labels: { type: 'string' },
      cluster: { type: 'string' },
      go: { type: 'string' },
      'go-line': { type: 'string' },
      'no-wait': { type: 'boolean' },
    },
  });
  const path = positionals[0];
  if (!values.name || !path || positionals.length > 1) throw new UsageError('run-pod needs --name POD and one PATH');
  const clusterName = values.cluster ?? DEFAULT_CLUSTER_NAME;
  const cluster = readCluster(clusterName);
  if (!cluster) throw new Error(`cluster "${clusterName}" is not up; run npm run cluster:up -- --name ${clusterName}`);
  const pod = await runPod(cluster, {
    name: values.name,
    namespace: values.namespace,
    labels: parseLabels(values.labels),
    path,
    args: programArgs,
    goVersion: parseToolchain(values.go),
    goLine: parseGoLine(values['go-line']),
    waitForPort: values['no-wait'] ? null : undefined,
  });
  say(`pod ${pod.namespace}/${pod.name} Running at ${pod.podIp} (netns ${pod.netns}, pid ${pod.pid})`);
  say(`logs: ${pod.logFile}; deleting the pod stops the program`);
}

function parseToolchain(value: string | undefined): GoToolchain | undefined {
  if (value === undefined || value === '1.19' || value === '1.26') return value;
  throw new UsageError(`--go takes 1.19 or 1.26, not ${value}`);
}

function parseGoLine(value: string | undefined): GoLine | undefined {
  if (value === undefined || value === 'old' || value === 'current') return value;
  throw new UsageError(`--go-line takes old or current, not ${value}`);
}

export function parseLabels(text: string | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  if (!text) return labels;
  for (const pair of text.split(',')) {
    const [key, value, ...rest] = pair.split('=');
    if (!key || value === undefined || rest.length > 0) throw new UsageError(`bad label "${pair}"; expected k=v`);
    labels[key.trim()] = value.trim();
  }
  return labels;
}

class UsageError extends Error {}

async function main(): Promise<void> {
  const [command, ...argv] = process.argv.slice(2);
  switch (command) {
    case 'up':
      return up(argv);
    case 'down':
      return down(argv);
    case 'run-pod':
      return runPodCommand(argv);
    default:
      throw new UsageError(`unknown command "${command ?? ''}"`);
  }
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) console.error(`${error.message}\n${USAGE}`);
  else console.error(`[cluster] ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});

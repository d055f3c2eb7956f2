#!/usr/bin/env node
import { writeFile } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import v8 from 'node:v8';
import { CustomObjectsApi } from '@kubernetes/client-node';
import type { Report } from '../analysis/report.js';
import { DEFAULT_THRESHOLDS } from '../analysis/series.js';
import { printable } from '../api/bounded.js';
import { GROUP, PLURAL, VERSION, type MapLeakProbe } from '../api/types.js';
import { CaptureError } from '../capture/errors.js';
import { apiServerProxyClient } from '../capture/proxy.js';
import { kubeHttp } from '../clusters/kube-http.js';
import { analyzeLive } from '../cli/analyze.js';
import { formatJson, formatReport } from '../cli/format.js';
import { ProgressReporter } from '../cli/progress.js';
import { runCommand } from '../cli/run.js';
import { parseCount, parseDuration, parseSize, UsageError } from '../cli/units.js';
import { DEFAULT_MAX_PROFILE_BYTES } from '../pprof/decode.js';
import { ProfileError } from '../pprof/errors.js';
import { explainApiError, loadUserKubeconfig, PluginError, type KubeContext } from './kube.js';
import { resolvePods, type PodToCapture } from './pods.js';
import { formatIncidents, formatProbeDescription, formatProbeList } from './probes.js';
import { downloadProfile, pickCapture, pickIncidentCapture, readIncidents, readProbeView, userBearerToken } from './profile.js';

const KUBE_FLAGS = `
Kubernetes flags (as kubectl's):
  -n, --namespace NS     namespace (default: the context's, else default)
      --kubeconfig FILE  kubeconfig (default: KUBECONFIG, ~/.kube/config)
      --context NAME     kubeconfig context
`;

const USAGE: Record<string, string> = {
  '': `kubectl mapleak: find Go map memory that is never given back, with your own kubeconfig and RBAC.

Usage:
  kubectl mapleak analyze pod/NAME|deployment/NAME|statefulset/NAME [flags]
  kubectl mapleak get [-A]
  kubectl mapleak describe NAME
  kubectl mapleak incidents NAME
  kubectl mapleak profile NAME --url OPERATOR_URL [--capture latest|ID] [--incident N] -o heap.pb.gz

analyze needs no operator: it captures heap profiles through the API server's
pod proxy (get on pods/proxy). get and describe read MapLeakProbes (get/list
on mapleakprobes.mapleak.io), incidents lists the probe's OOMKilled and
restarted containers (status.incidents); profile downloads from the operator's API with
your own bearer token. 'kubectl mapleak COMMAND --help' for each.
`,
  analyze: `Usage: kubectl mapleak analyze pod/NAME|deployment/NAME|statefulset/NAME [flags]

Captures the pod's (or each of the workload's Running pods') heap profile
every --every, --count times, through the API server's pod proxy (GET only,
never forces a GC), and prints the same table as 'mapleak analyze'.

Flags:
  -c, --container NAME    container whose port is used (default: the first)
      --port PORT         pprof port: a number or a containerPort name
                          (default: the port named pprof, else 6060)
      --path-prefix PATH  where net/http/pprof is mounted (default /debug/pprof)
      --every DURATION    time between captures (default 10s)
      --count N           captures to take (default 6)
      --timeout DURATION  per request (default 10s)
      --max-bytes SIZE    largest profile accepted (default 64Mi)
      --min-map-bytes SIZE, --min-growth SIZE, --top N   as for mapleak analyze
      --json              one JSON object: the report (pod/NAME), or
                          {"targets": [{"pod", "report"|"error"}]} for a workload
      --html FILE         also write one self-contained HTML report
      --quiet             no progress on stderr
${KUBE_FLAGS}`,
  get: `Usage: kubectl mapleak get [-A] [-n NS]

Lists MapLeakProbes: verdict, targets, failing targets, map memory, last
capture and the most serious finding.

Flags:
  -A, --all-namespaces   every namespace
${KUBE_FLAGS}`,
  describe: `Usage: kubectl mapleak describe NAME [-n NS]

A probe's verdict, conditions, per-target errors, findings and advice.
${KUBE_FLAGS}`,
  incidents: `Usage: kubectl mapleak incidents NAME [-n NS]

The probe's incidents, newest first: containers that were OOMKilled or
restarted, when, how (reason, exit code), the verdict and top finding of the
container's last series ("up to the end": that site was still growing at the
last capture before it), and how many captures are kept. Download one with
'kubectl mapleak profile NAME --incident N'.
${KUBE_FLAGS}`,
  profile: `Usage: kubectl mapleak profile NAME --url OPERATOR_URL [--capture latest|ID] [--pod POD | --incident N] -o FILE

Downloads one stored raw heap profile (gzipped proto, for go tool pprof)
through the operator's JSON API, authenticated with your kubeconfig's bearer
token (needs get on mapleakprobes and mapleakprobes/profiles in NS).

Flags:
      --url URL          the operator's HTTP server, e.g. http://127.0.0.1:8080
                         after kubectl -n mapleakprobe port-forward svc/mapleakprobe 8080
                         (default: MAPLEAK_URL)
      --capture ID       a capture id, or latest (default)
      --pod POD          only this target pod's captures
      --incident N       a capture kept by incident N (1: the newest, as
                         'kubectl mapleak incidents' numbers them); latest is
                         then the last capture before the container ended
  -o, --output FILE      where to write the profile (required)
      --token TOKEN      bearer token to use instead of the kubeconfig's
                         (default: MAPLEAK_TOKEN); never printed
      --timeout DURATION (default 30s)
${KUBE_FLAGS}`,
};

const kubeOptions = {
  namespace: { type: 'string', short: 'n' },
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} satisfies ParseArgsConfig['options'];

v8.setFlagsFromString('--max-semi-space-size=64');

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE['']!);
    return command === undefined ? 2 : 0;
  }
  if (!['analyze', 'get', 'describe', 'incidents', 'profile'].includes(command)) throw new UsageError(`unknown command "${command}"`);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(USAGE[command]!);
    return 0;
  }
  if (command === 'analyze') return analyzeCommand(rest);
  if (command === 'get') return getCommand(rest);
  if (command === 'describe') return describeCommand(rest);
  if (command === 'incidents') return incidentsCommand(rest);
  return profileCommand(rest);
}

async function analyzeCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...kubeOptions,
      container: { type: 'string', short: 'c' },
      port: { type: 'string' },
      'path-prefix': { type: 'string', default: '/debug/pprof' },
      every: { type: 'string', default: '10s' },
      count: { type: 'string', default: '6' },
      timeout: { type: 'string', default: '10s' },
      'max-bytes': { type: 'string', default: String(DEFAULT_MAX_PROFILE_BYTES) },
      'min-map-bytes': { type: 'string', default: String(DEFAULT_THRESHOLDS.minMapBytes) },
      'min-growth': { type: 'string', default: String(DEFAULT_THRESHOLDS.minGrowthBytesPerHour) },
      top: { type: 'string', default: String(DEFAULT_THRESHOLDS.maxFindings) },
      json: { type: 'boolean', default: false },
      html: { type: 'string' },
      quiet: { type: 'boolean', default: false },
    },
  });
  if (positionals.length !== 1) throw new UsageError('give one target: pod/NAME, deployment/NAME or statefulset/NAME');
  const target = positionals[0]!;
  const pathPrefix = values['path-prefix'];
  if (!pathPrefix.startsWith('/') || /[?#\s]/.test(pathPrefix)) throw new UsageError('--path-prefix must be a path such as /debug/pprof');
  const series = {
    everyMs: parseDuration(values.every),
    count: parseCount(values.count, 'count', 1),
    limits: { maxBytes: parseSize(values['max-bytes']) },
    thresholds: {
      minMapBytes: parseSize(values['min-map-bytes']),
      minGrowthBytesPerHour: parseSize(values['min-growth']),
      maxFindings: parseCount(values.top, 'top', 1),
    },
  };
  const timeoutMs = parseDuration(values.timeout);
  const ctx = loadUserKubeconfig(values);
  const pods = await resolvePods(ctx, { target, container: values.container, port: values.port, pathPrefix });
  const http = await kubeHttp(ctx.kc);
  const abort = new AbortController();
  const stop = (): void => abort.abort();
  process.once('SIGINT', stop);
  // A workload answers per pod (even with one pod); a pod answers exactly as mapleak analyze does.
  const several = target.includes('/') && !/^(pod|pods|po)\//i.test(target);
  const reporters = pods.map((pod) => new ProgressReporter(process.stderr, { quiet: values.quiet, prefix: several ? `${pod.name}: ` : '', forcePlain: pods.length > 1 }));
  let results: { pod: PodToCapture; report?: Report; error?: string }[];
  try {
    // Every pod is captured on its own schedule; one that fails never stops the others.
    results = await Promise.all(
      pods.map(async (pod, i) => {
        try {
          const report = await analyzeLive({
            ...series,
            client: apiServerProxyClient(http, pod, timeoutMs),
            scope: `${pod.namespace}/${pod.uid}`,
            signal: abort.signal,
            onEvent: reporters[i]!.onEvent,
          });
          return { pod, report };
        } catch (err) {
          return { pod, error: captureFailure(err, pod) };
        }
      }),
    );
  } finally {
    reporters.forEach((r) => r.finish());
    process.off('SIGINT', stop);
    http.agent.destroy();
  }

  for (const r of results) if (r.error) process.stderr.write(`kubectl-mapleak: ${printable(r.error, Number.POSITIVE_INFINITY)}\n`);
  if (values.html) await writeHtml(values.html, `kubectl mapleak analyze ${target} -n ${ctx.namespace}`, results);
  if (values.json) {
    const doc = several
      ? { targets: results.map((r) => ({ pod: { namespace: r.pod.namespace, name: r.pod.name }, ...(r.report ? { report: r.report } : { error: r.error }) })) }
      : results[0]?.report;
    if (doc) process.stdout.write(`${formatJson(doc)}\n`);
  } else {
    const blocks = results.filter((r) => r.report).map((r) => (several ? `== pod ${r.pod.namespace}/${r.pod.name}\n` : '') + formatReport(r.report!));
    if (blocks.length > 0) process.stdout.write(`${blocks.join('\n\n')}\n`);
  }
  return results.some((r) => r.error) ? 1 : 0;
}

/** A pod's capture failure, for a person; a 403 from the pod proxy is RBAC, said as such. */
function captureFailure(err: unknown, pod: PodToCapture): string {
  const where = `pod ${pod.namespace}/${pod.name}`;
  if (err instanceof CaptureError && err.status === 403) {
    return `${where}: forbidden: your RBAC does not allow get on pods/proxy in namespace ${pod.namespace}, which analyze captures through (check: kubectl auth can-i get pods/proxy -n ${pod.namespace})`;
  }
  if (err instanceof CaptureError && err.status === 503) {
    return `${where}: nothing answers on port ${pod.port} (is net/http/pprof served there? --port, --path-prefix): ${err.message}`;
  }
  if (err instanceof CaptureError && err.status === 404) {
    return `${where}: no pprof at ${pod.pathPrefix} on port ${pod.port} (import _ "net/http/pprof"? --port, --path-prefix)`;
  }
  if (err instanceof CaptureError || err instanceof ProfileError) return `${where}: ${err.message.split('\n')[0]}`;
  throw err;
}

async function writeHtml(file: string, title: string, results: { pod: PodToCapture; report?: Report; error?: string }[]): Promise<void> {
  const [{ renderHtmlReport }, { loadReportAssets }] = await Promise.all([import('../report/html.js'), import('../report/assets.js')]);
  const { html } = renderHtmlReport(
    {
      title,
      summary: results.filter((r) => r.error).map((r) => r.error!),
      generatedAt: new Date(),
      sections: results.filter((r) => r.report).map((r) => ({ heading: `pod ${r.pod.namespace}/${r.pod.name}`, analysis: r.report! })),
    },
    await loadReportAssets(),
  );
  await writeFile(file, html).catch((err: unknown) => {
    throw new UsageError(`--html ${file}: cannot write (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  });
}

async function getCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { ...kubeOptions, 'all-namespaces': { type: 'boolean', short: 'A', default: false } } });
  if (positionals.length > 0) throw new UsageError('get takes no NAME; use describe NAME');
  const ctx = loadUserKubeconfig(values);
  const all = values['all-namespaces'];
  const probes = await listProbes(ctx, all);
  process.stdout.write(`${formatProbeList(probes, new Date(), all)}\n`);
  return 0;
}

async function describeCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: kubeOptions });
  if (positionals.length !== 1) throw new UsageError('describe takes one probe NAME');
  const ctx = loadUserKubeconfig(values);
  const probe = await readProbe(ctx, positionals[0]!);
  process.stdout.write(`${formatProbeDescription(probe, new Date())}\n`);
  return 0;
}

async function incidentsCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: kubeOptions });
  if (positionals.length !== 1) throw new UsageError('incidents takes one probe NAME');
  const ctx = loadUserKubeconfig(values);
  const probe = await readProbe(ctx, positionals[0]!);
  process.stdout.write(`${formatIncidents(probe, new Date())}\n`);
  return 0;
}

async function listProbes(ctx: KubeContext, all: boolean): Promise<MapLeakProbe[]> {
  const custom = ctx.kc.makeApiClient(CustomObjectsApi);
  const list = all
    ? custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })
    : custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace: ctx.namespace });
  const result = (await list.catch((err: unknown) => Promise.reject(explainApiError(err, `list ${PLURAL}.${GROUP}`, all ? undefined : ctx.namespace)))) as { items: MapLeakProbe[] };
  return result.items.sort((a, b) => a.metadata.namespace.localeCompare(b.metadata.namespace) || a.metadata.name.localeCompare(b.metadata.name));
}

async function readProbe(ctx: KubeContext, name: string): Promise<MapLeakProbe> {
  const custom = ctx.kc.makeApiClient(CustomObjectsApi);
  return (await custom
    .getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace: ctx.namespace, name })
    .catch((err: unknown) => Promise.reject(explainApiError(err, `get ${PLURAL}.${GROUP}`, ctx.namespace)))) as MapLeakProbe;
}

async function profileCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...kubeOptions,
      url: { type: 'string' },
      capture: { type: 'string', default: 'latest' },
      pod: { type: 'string' },
      incident: { type: 'string' },
      output: { type: 'string', short: 'o' },
      token: { type: 'string' },
      timeout: { type: 'string', default: '30s' },
      'max-bytes': { type: 'string', default: String(DEFAULT_MAX_PROFILE_BYTES) },
    },
  });
  if (positionals.length !== 1) throw new UsageError('profile takes one probe NAME');
  const url = values.url ?? process.env.MAPLEAK_URL;
  if (!url) throw new UsageError('--url OPERATOR_URL is required (or MAPLEAK_URL), e.g. http://127.0.0.1:8080 after a port-forward');
  if (!/^https?:\/\//.test(url)) throw new UsageError('--url must be an http:// or https:// URL');
  if (!values.output) throw new UsageError('-o FILE is required (profiles are binary)');
  if (values.capture !== 'latest' && !/^[0-9a-f]{8,64}$/.test(values.capture)) throw new UsageError('--capture takes latest or a capture id (hex)');
  const incident = values.incident === undefined ? undefined : parseCount(values.incident, 'incident', 1);
  if (incident !== undefined && values.pod !== undefined) throw new UsageError('--incident and --pod do not go together (an incident is one pod\'s)');
  const ctx = loadUserKubeconfig(values);
  const token = values.token ?? process.env.MAPLEAK_TOKEN ?? (await userBearerToken(ctx.kc));
  if (!token) throw new PluginError('your kubeconfig user sends no bearer token (client certificates cannot be passed on); pass --token, e.g. $(kubectl create token NAME)');
  const api = { url, token, timeoutMs: parseDuration(values.timeout), maxBytes: parseSize(values['max-bytes']) };
  const name = positionals[0]!;
  const capture =
    incident === undefined
      ? pickCapture(await readProbeView(api, ctx.namespace, name), values.capture, values.pod)
      : pickIncidentCapture(await readIncidents(api, ctx.namespace, name), incident, values.capture);
  const profile = await downloadProfile(api, ctx.namespace, name, capture.id);
  await writeFile(values.output, profile).catch((err: unknown) => {
    throw new PluginError(`-o ${values.output}: cannot write (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  });
  process.stderr.write(`wrote ${values.output}: capture ${capture.id} of pod ${capture.pod} at ${capture.time}, ${profile.length} bytes\n`);
  return 0;
}

runCommand({ name: 'kubectl-mapleak', help: 'kubectl mapleak --help' }, main, [PluginError, ProfileError, CaptureError]);

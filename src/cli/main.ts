#!/usr/bin/env -S node --max-semi-space-size=4
// A one-shot analysis keeps most of what it allocates: 4 MiB semi-spaces
// (Node's default grows to 16) cut peak RSS 12-20% on npm run bench's single
// profiles at no CPU cost, and leave the 12-capture window within 2% (measured
// since the decoder stopped making an object per sample; before that, the
// window paid 13%). The image starts node itself: the operator keeps the default.
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import type { Report } from '../analysis/report.js';
import { DEFAULT_THRESHOLDS, type Thresholds } from '../analysis/series.js';
import { CaptureError } from '../capture/errors.js';
import { DEFAULT_MAX_PROFILE_BYTES } from '../pprof/decode.js';
import { ProfileError } from '../pprof/errors.js';
import { analyzeFiles, analyzeUrl } from './analyze.js';
import { formatJson, formatReport } from './format.js';
import { runCommand } from './run.js';
import { ProgressReporter } from './progress.js';
import { parseCount, parseDuration, parseSize, UsageError } from './units.js';

const USAGE = `Usage:
  mapleak analyze [--gctrace FILE] [--json] [--html FILE] PROFILE...
  mapleak analyze --url http://HOST:PORT [--every 10s] [--count 6] [--save DIR] [--json] [--html FILE]
  mapleak operator [--role all|controller|worker] [--kubeconfig FILE] [--redis-url URL]
                   [--port 8080] [--concurrency 4] [--no-leader-elect] [--resync-interval 60s]

PROFILE files: .pb.gz/.pb (proto), .txt (debug=1; a sibling .sym file with
/debug/pprof/symbol output restores the hidden runtime frames). Files that
share a name stem (x.pb.gz, x.txt, x.sym) are one capture.

Options:
  --json                 print exactly one JSON object
  --html FILE            also write the report as one self-contained HTML page
                         (a chart per site, opens with no network access)
  --gctrace FILE         GODEBUG=gctrace=1 output of the same process
  --url URL              capture a live net/http/pprof target (never forces a GC);
                         a bare host means HOST/debug/pprof, any other path is
                         the prefix the handlers are mounted under
  --every DURATION       time between live captures (default 10s)
  --count N              live captures to take (default 6)
  --save DIR             keep each live capture as DIR/capture-NNN.{pb.gz,txt,sym}
  --timeout DURATION     per request (default 10s)
  --header 'NAME: VALUE' send this header to the target (repeatable), e.g.
                         'Authorization: Bearer TOKEN'; never printed
  --cacert FILE          trust this CA (PEM) for an https:// --url
  --insecure             do not verify the target's TLS certificate
  --max-bytes SIZE       largest profile accepted, compressed or inflated (default 64Mi)
  --min-map-bytes SIZE   smallest map memory worth reporting (default 1Mi)
  --min-growth SIZE      smallest growth per hour that counts as growing (default 1Mi)
  --top N                at most N findings (default 20)
`;

const OPERATOR_USAGE = `Usage:
  mapleak operator [flags]

Runs the MapLeakProbe operator (controller and/or worker) until SIGTERM or SIGINT.
Each flag falls back to the environment variable shown.

Flags:
  --role all|controller|worker  MAPLEAK_ROLE (default all)
  --kubeconfig FILE             KUBECONFIG (default ~/.kube/config, then in-cluster)
  --redis-url URL               REDIS_URL (default redis://127.0.0.1:6379); password in REDIS_PASSWORD
  --redis-sentinels H:P,...     REDIS_SENTINELS: Redis Sentinel instead, with --redis-sentinel-master NAME
                                (REDIS_SENTINEL_MASTER); sentinels' password in REDIS_SENTINEL_PASSWORD
  --redis-cluster-nodes H:P,... REDIS_CLUSTER_NODES: Redis Cluster seed nodes instead
  --redis-tls                   REDIS_TLS=true: TLS to sentinels/master or cluster nodes (standalone: rediss://)
  --port N                      MAPLEAK_PORT (default 8080; 0: any free port)
  --concurrency N               MAPLEAK_CONCURRENCY: probes a worker captures at once (default 4)
  --target-concurrency N        MAPLEAK_TARGET_CONCURRENCY: pods at once per probe (default 4)
  --max-active-rounds-per-namespace N  rounds one namespace runs at once over all workers
                                (default: half of --concurrency, rounded up)
  --no-leader-elect             MAPLEAK_LEADER_ELECT=false (default: elect through a Lease)
  --lease-namespace NS          POD_NAMESPACE (default default)
  --lease-name NAME             (default mapleakprobe-controller)
  --identity ID                 POD_NAME (default <hostname>-<pid>)
  --resync-interval DURATION    MAPLEAK_RESYNC_INTERVAL (default 60s)
  --auth-cache-ttl DURATION     MAPLEAK_AUTH_CACHE_TTL (default 30s)
  --auth-max-reviews N          MAPLEAK_AUTH_MAX_REVIEWS (default 8)
  --shutdown-timeout DURATION   MAPLEAK_SHUTDOWN_TIMEOUT (default 20s): after SIGTERM/SIGINT, stop
                                gracefully within this, then force-close and exit (0 graceful,
                                1 forced); a second signal exits at once (128 + signal)
`;

// Decoding a large profile makes many short-lived objects: a larger young
// generation saves most scavenges (measured by npm run bench).
v8.setFlagsFromString('--max-semi-space-size=64');

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === 'operator') {
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(OPERATOR_USAGE);
      return 0;
    }
    // Loaded only here: the Kubernetes, BullMQ and express stacks cost
    // `analyze` a quarter of a second to import (measured by npm run bench).
    const { runOperatorCommand } = await import('./operator.js');
    return runOperatorCommand(rest);
  }
  if (command !== 'analyze') throw new UsageError(`unknown command "${command}"`);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }

  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      json: { type: 'boolean', default: false },
      html: { type: 'string' },
      gctrace: { type: 'string' },
      url: { type: 'string' },
      every: { type: 'string', default: '10s' },
      count: { type: 'string', default: '6' },
      save: { type: 'string' },
      timeout: { type: 'string', default: '10s' },
      'max-bytes': { type: 'string', default: String(DEFAULT_MAX_PROFILE_BYTES) },
      'min-map-bytes': { type: 'string', default: String(DEFAULT_THRESHOLDS.minMapBytes) },
      'min-growth': { type: 'string', default: String(DEFAULT_THRESHOLDS.minGrowthBytesPerHour) },
      top: { type: 'string', default: String(DEFAULT_THRESHOLDS.maxFindings) },
      quiet: { type: 'boolean', default: false },
      header: { type: 'string', multiple: true, default: [] },
      cacert: { type: 'string' },
      insecure: { type: 'boolean', default: false },
    },
  });
  const limits = { maxBytes: parseSize(values['max-bytes']) };
  const thresholds: Thresholds = {
    minMapBytes: parseSize(values['min-map-bytes']),
    minGrowthBytesPerHour: parseSize(values['min-growth']),
    maxFindings: parseCount(values.top, 'top', 1),
  };

  let report;
  if (values.url) {
    if (positionals.length > 0) throw new UsageError('give either --url or PROFILE files, not both');
    const abort = new AbortController();
    const stop = (): void => abort.abort();
    const progress = new ProgressReporter(process.stderr, { quiet: values.quiet });
    process.once('SIGINT', stop);
    try {
      report = await analyzeUrl({
        url: values.url,
        everyMs: parseDuration(values.every),
        count: parseCount(values.count, 'count', 1),
        timeoutMs: parseDuration(values.timeout),
        headers: parseHeaders(values.header),
        tls: { ...(values.cacert ? { ca: await readCaFile(values.cacert) } : {}), insecure: values.insecure },
        gctrace: values.gctrace,
        saveDir: values.save,
        limits,
        thresholds,
        signal: abort.signal,
        onEvent: progress.onEvent,
      });
    } finally {
      progress.finish();
      process.off('SIGINT', stop);
    }
  } else {
    if (positionals.length === 0) throw new UsageError('no PROFILE files given (or use --url)');
    report = await analyzeFiles({ files: positionals, gctrace: values.gctrace, limits, thresholds });
  }
  if (values.html) await writeHtmlReport(values.html, report, values.url ? `mapleak analyze ${values.url}` : `mapleak analyze (${positionals.length} files)`);
  process.stdout.write(values.json ? `${formatJson(report)}\n` : `${formatReport(report)}\n`);
  return 0;
}

runCommand({ name: 'mapleak', help: 'mapleak --help' }, main, [ProfileError, CaptureError]);

/** `--header 'Name: value'`: a token name and a value without line breaks. */
export function parseHeaders(lines: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trim() : '';
    const value = colon > 0 ? line.slice(colon + 1).trim() : '';
    // The value is a credential more often than not: never echo it.
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw new UsageError('--header takes NAME: VALUE with a valid header name');
    if (/[\r\n\0]/.test(value)) throw new UsageError(`--header ${name}: the value has a line break`);
    headers[name.toLowerCase()] = value;
  }
  return headers;
}

/** `--html FILE`: the report as one self-contained page (loaded only when asked for). */
export async function writeHtmlReport(file: string, report: Report, title: string): Promise<void> {
  const [{ renderHtmlReport }, { loadReportAssets }] = await Promise.all([import('../report/html.js'), import('../report/assets.js')]);
  const { html } = renderHtmlReport({ title, generatedAt: new Date(), sections: [{ heading: 'Findings', analysis: report }] }, await loadReportAssets());
  await writeFile(file, html).catch((err: unknown) => {
    throw new UsageError(`--html ${file}: cannot write (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  });
}

async function readCaFile(path: string): Promise<Buffer> {
  const ca = await readFile(path).catch(() => undefined);
  if (!ca || !ca.includes('-----BEGIN CERTIFICATE-----')) throw new UsageError(`--cacert ${path}: not a readable PEM certificate file`);
  return ca;
}

import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { attributeProfile } from '../analysis/attribute.js';
import { parseGcTrace, summarizeGcTrace, type GcSummary } from '../analysis/gctrace.js';
import { buildReport, type Report } from '../analysis/report.js';
import { analyzeSeries, type Thresholds, type TimedSnapshot } from '../analysis/series.js';
// Types only: the capture stack (node:http, node:https, TLS) loads when a live series starts, not for files.
import type { HeapCapture, PprofClient } from '../capture/capture.js';
import type { TargetTls } from '../capture/direct.js';
import type { DecodeLimits } from '../pprof/decode.js';
import { ProfileError } from '../pprof/errors.js';
import { PROFILE_MESSAGES } from '../pprof/messages.js';
import { groupCaptureFiles, loadCaptures } from './files.js';

export interface AnalyzeFilesOptions {
  files: string[];
  gctrace?: string;
  limits: DecodeLimits;
  thresholds: Thresholds;
}

export async function analyzeFiles(options: AnalyzeFilesOptions): Promise<Report> {
  const snapshots: TimedSnapshot[] = [];
  for await (const capture of loadCaptures(groupCaptureFiles(options.files), options.limits)) {
    snapshots.push({ ...attributeProfile(capture.profile), time: capture.time });
  }
  const gc = options.gctrace ? await readGcTrace(options.gctrace, options.limits.maxBytes) : undefined;
  return buildReport(analyzeSeries(snapshots, options.thresholds), gc, []);
}

/** What a live series reports while it runs: progress is drawn from these, never mixed into the report. */
export type LiveEvent =
  | { type: 'captured'; capture: number; count: number; records: number; evidence: string; read: string; bytes: number; milliseconds: number; totalBytes: number }
  | { type: 'failed'; capture: number; count: number; message: string }
  /** A capture's warning, the first time it is seen (e.g. the symbol endpoint failed). */
  | { type: 'warning'; message: string }
  /** Between captures: the next one is due at `at` (ms since the epoch). */
  | { type: 'waiting'; done: number; count: number; at: number; totalBytes: number };

export interface LiveSeriesOptions {
  client: PprofClient;
  /** Whose process this is (symbol knowledge is keyed by it): a URL, or namespace/podUid. */
  scope: string;
  everyMs: number;
  count: number;
  gctrace?: string;
  saveDir?: string;
  limits: DecodeLimits;
  thresholds: Thresholds;
  onEvent?: (event: LiveEvent) => void;
  /** Ends the series early (SIGINT): analyse what was captured. */
  signal?: AbortSignal;
}

export interface AnalyzeUrlOptions extends Omit<LiveSeriesOptions, 'client' | 'scope'> {
  /** Sent with every request to the target (credentials: never logged). */
  headers?: Record<string, string>;
  tls?: TargetTls;
  url: string;
  timeoutMs: number;
}

/** Captures a live target `count` times, `every` apart, and analyses the series. Never forces a GC. */
export async function analyzeUrl(options: AnalyzeUrlOptions): Promise<Report> {
  const { directPprofClient } = await import('../capture/direct.js');
  const client = directPprofClient(pprofBase(options.url), options.timeoutMs, { headers: options.headers, tls: options.tls });
  return analyzeLive({ ...options, client, scope: options.url });
}

/** A series of live captures through any pprof client (directly, or the API server's pod proxy), analysed. */
export async function analyzeLive(options: LiveSeriesOptions): Promise<Report> {
  const [{ captureHeap }, { BinaryKnowledgeCache }] = await Promise.all([import('../capture/capture.js'), import('../capture/binary-knowledge.js')]);
  const cache = new BinaryKnowledgeCache();
  const snapshots: TimedSnapshot[] = [];
  const warnings = new Set<string>();
  const emit = options.onEvent ?? ((): void => undefined);
  const started = Date.now();
  let totalBytes = 0;
  for (let i = 0; i < options.count && !options.signal?.aborted; i++) {
    if (i > 0) {
      const at = started + i * options.everyMs;
      emit({ type: 'waiting', done: i, count: options.count, at, totalBytes });
      await sleepUntil(at, options.signal);
    }
    if (options.signal?.aborted) break;
    let capture: HeapCapture;
    try {
      capture = await captureHeap(options.client, { limits: options.limits, knowledge: cache, scope: options.scope });
    } catch (err) {
      // The first failure says the target is wrong; a later one is a blip.
      if (snapshots.length === 0) throw err;
      // A profile error's own message may quote the target's bytes: its fixed words instead.
      const message = err instanceof ProfileError ? PROFILE_MESSAGES[err.code] : (err as Error).message;
      warnings.add(`capture ${i + 1}: ${message}`);
      emit({ type: 'failed', capture: i + 1, count: options.count, message });
      continue;
    }
    for (const warning of capture.warnings) {
      if (!warnings.has(warning)) emit({ type: 'warning', message: warning });
      warnings.add(warning);
    }
    if (options.saveDir) await saveCapture(options.saveDir, i + 1, capture);
    const snapshot = attributeProfile(capture.profile);
    snapshots.push({ ...snapshot, time: capture.time });
    totalBytes += capture.cost.bytes;
    emit({
      type: 'captured',
      capture: i + 1,
      count: options.count,
      records: capture.profile.records.length,
      evidence: snapshot.evidence,
      read: capture.cost.debug1 ? 'proto + debug=1' : 'proto',
      bytes: capture.cost.bytes,
      milliseconds: capture.cost.milliseconds,
      totalBytes,
    });
  }
  if (snapshots.length === 0) throw new ProfileError('Empty', 'no capture succeeded');
  const gc = options.gctrace ? await readGcTrace(options.gctrace, options.limits.maxBytes) : undefined;
  return buildReport(analyzeSeries(snapshots, options.thresholds), gc, [...warnings]);
}

/** Accepts http://host:port, .../debug/pprof or .../debug/pprof/heap. */
/**
 * Where pprof is served: a bare host means net/http/pprof's /debug/pprof;
 * any other path is the prefix a service mounted the handlers under.
 */
export function pprofBase(url: string): string {
  const trimmed = url.replace(/\/+$/, '').replace(/\/heap$/, '');
  let path = '';
  try {
    path = new URL(trimmed).pathname;
  } catch {
    return trimmed; // fetching reports the bad URL
  }
  return path === '' || path === '/' ? `${trimmed}/debug/pprof` : trimmed;
}

async function saveCapture(dir: string, n: number, capture: HeapCapture): Promise<void> {
  await mkdir(dir, { recursive: true });
  const stem = join(dir, `capture-${String(n).padStart(3, '0')}`);
  await writeFile(`${stem}.pb.gz`, capture.proto);
  // debug=1 and its symbols only when this capture read them: later captures of the binary need the proto alone.
  if (capture.debug1 === undefined) return;
  await writeFile(`${stem}.txt`, capture.debug1);
  const symbols = [...capture.symbols].map(([pc, name]) => `0x${pc.toString(16)} ${name}`);
  await writeFile(`${stem}.sym`, [`num_symbols: ${symbols.length}`, ...symbols, ''].join('\n'));
}

async function readGcTrace(path: string, maxBytes: number): Promise<GcSummary> {
  const size = (await stat(path).catch(() => undefined))?.size;
  if (size === undefined) throw new ProfileError('Empty', `${path}: cannot read gctrace file`);
  if (size > maxBytes) throw new ProfileError('TooLarge', `${path}: gctrace file is larger than ${maxBytes} bytes`);
  return summarizeGcTrace(parseGcTrace(await readFile(path, 'utf8')));
}

function sleepUntil(deadline: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

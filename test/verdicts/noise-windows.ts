import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { attributeProfile } from '../../src/analysis/attribute.js';
import { analyzeSeries, DEFAULT_THRESHOLDS, type Finding, type TimedSnapshot } from '../../src/analysis/series.js';
import { groupCaptureFiles, loadCaptures } from '../../src/cli/files.js';
import { DEFAULT_MAX_PROFILE_BYTES } from '../../src/pprof/decode.js';
import { siteLines } from '../support/go-targets.js';
import { repoPath } from '../support/paths.js';

/**
 * Short windows over streams recorded at the DEFAULT sampling rate
 * (test/verdicts/record-streams.ts): captures every 2 s of the leaky and
 * services targets, current go line, Go 1.26 (swiss) and 1.19 (classic).
 */
export const STREAMS_DIR = repoPath('test', 'verdicts', 'testdata', 'streams');
export const WINDOW_COUNT = 20;
/** The first capture short windows may start at: 10 s into a stream captured every 2 s. */
const SHORT_WINDOWS_FROM = 5;

export type StreamName = `${'leaky' | 'services'}-go${'1.19' | '1.26'}`;

export async function loadStream(name: StreamName): Promise<TimedSnapshot[]> {
  const dir = join(STREAMS_DIR, name);
  const files = readdirSync(dir).map((f) => join(dir, f));
  const snapshots: TimedSnapshot[] = [];
  for await (const capture of loadCaptures(groupCaptureFiles(files), { maxBytes: DEFAULT_MAX_PROFILE_BYTES })) {
    snapshots.push({ ...attributeProfile(capture.profile), time: capture.time });
  }
  return snapshots.sort((a, b) => a.time.getTime() - b.time.getTime());
}

export interface Window {
  /** Index of the first capture in the stream. */
  start: number;
  /** Captures in the window. */
  length: number;
  /** Every `stride`-th capture of the stream. */
  stride: number;
}

/**
 * WINDOW_COUNT windows starting anywhere in the stream (at once, after a few
 * seconds, late), as if a user had run `mapleak analyze --count N` at that
 * moment. `spaced`: 5 to 10 captures 6 s apart (every third capture of the
 * stream, about the operator's shortest interval), 24 to 54 s long.
 * `short`: 3 to 10 captures 2 s or 4 s apart, 4 to 36 s long, where the
 * settled part of a window often holds only two or three GC cycles; from
 * 10 s on (in the first seconds the targets fill their caches: a cache
 * filling up to its bound IS growing in a 4 s window).
 */
export function windowsOf(captures: number, kind: 'spaced' | 'short' = 'spaced'): Window[] {
  return Array.from({ length: WINDOW_COUNT }, (_, i) => {
    const length = kind === 'spaced' ? 5 + (i % 6) : 3 + (i % 8);
    const stride = kind === 'spaced' ? 3 : i % 3 === 2 ? 2 : 1;
    const span = (length - 1) * stride + 1;
    const first = kind === 'spaced' ? 0 : SHORT_WINDOWS_FROM;
    const start = first + Math.round((i * (captures - first - span)) / (WINDOW_COUNT - 1));
    return { start, length, stride };
  });
}

export function captureWindow(snapshots: readonly TimedSnapshot[], w: Window): TimedSnapshot[] {
  return Array.from({ length: w.length }, (_, i) => snapshots[w.start + i * w.stride] as TimedSnapshot);
}

export interface SiteRef {
  site: string;
  kind: 'map' | 'other';
  /** The marker is the finding's own line, the user's line feeding a library's map, or (line 0) a function's. */
  by: 'site' | 'caller' | 'function';
}

export function patternsAt(findings: readonly Finding[], target: 'leaky' | 'services', ref: SiteRef): string {
  const lines = siteLines(target);
  const line = lines.get(ref.site);
  if (!line) throw new Error(`SITE ${ref.site} not in ${target}`);
  const file = new RegExp(`/${target}(-[\\w-]+)?/main\\.go$`);
  const at = findings.filter((f) => {
    if (f.kind !== ref.kind) return false;
    // Growth spread over a function's lines: its function finding, or a finding of one of its lines.
    if (ref.by === 'function') return file.test(f.site.file) && (f.site.line === line || (f.scope === 'function' && (f.lines ?? []).includes(line)));
    const frame = ref.by === 'caller' ? f.caller : f.site;
    return frame !== undefined && frame.line === line && file.test(frame.file);
  });
  if (at.length === 0) return 'missing';
  return [...new Set(at.map((f) => f.pattern))].sort().join('+');
}

/** Per window, the pattern(s) each site got. */
export function verdictsOver(
  snapshots: readonly TimedSnapshot[],
  target: 'leaky' | 'services',
  refs: readonly SiteRef[],
  windows: 'spaced' | 'short' = 'spaced',
): Map<string, string[]> {
  const out = new Map<string, string[]>(refs.map((r) => [`${r.kind} ${r.site}`, []]));
  for (const w of windowsOf(snapshots.length, windows)) {
    const analysis = analyzeSeries(captureWindow(snapshots, w), { ...DEFAULT_THRESHOLDS, maxFindings: 500 });
    for (const r of refs) out.get(`${r.kind} ${r.site}`)?.push(patternsAt(analysis.findings, target, r));
  }
  return out;
}

export function countPatterns(verdicts: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const v of verdicts) counts[v] = (counts[v] ?? 0) + 1;
  return counts;
}

export const LEAKY_GROWING: SiteRef[] = [
  { site: 'map-growing-sessions', kind: 'map', by: 'site' },
  { site: 'map-growing-json', kind: 'map', by: 'site' },
  { site: 'other-growing-buffers', kind: 'other', by: 'site' },
  { site: 'other-growing-session-values', kind: 'other', by: 'site' },
];
export const LEAKY_STEADY: SiteRef[] = [
  { site: 'map-stable-cache', kind: 'map', by: 'site' },
  // The cache's values, replaced all the time: the memory resampled every cycle.
  { site: 'map-stable-cache', kind: 'other', by: 'site' },
  { site: 'map-retained-blobs', kind: 'map', by: 'site' },
  { site: 'map-retained-items', kind: 'map', by: 'site' },
  { site: 'map-churn-histogram', kind: 'map', by: 'site' },
];
export const SERVICES_GROWING: SiteRef[] = [
  { site: 'map-growing-labels', kind: 'map', by: 'caller' },
  { site: 'map-growing-limiters', kind: 'map', by: 'site' },
  { site: 'other-growing-journal', kind: 'other', by: 'function' },
];
export const SERVICES_STEADY: SiteRef[] = [
  { site: 'map-bounded-lru', kind: 'map', by: 'caller' },
  { site: 'map-drained-ttl', kind: 'map', by: 'caller' },
  { site: 'map-churn-scrape', kind: 'map', by: 'caller' },
  { site: 'map-churn-json', kind: 'map', by: 'site' },
  { site: 'map-static-routes', kind: 'map', by: 'site' },
  { site: 'map-drained-routes', kind: 'map', by: 'site' },
  { site: 'map-inline-static', kind: 'map', by: 'site' },
  { site: 'map-inline-drained', kind: 'map', by: 'site' },
];

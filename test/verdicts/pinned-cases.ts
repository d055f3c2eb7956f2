/**
 * The engine's whole output on fixed inputs, for pinned-output.test.ts:
 * the recorded streams (test/verdicts/testdata/streams, as the CLI reads
 * them with debug=1 and symbols, and proto alone, where size signatures
 * decide) and the small bench-shaped profiles (testdata/bench-shaped, bench/heapgen
 * built with Go 1.26 and Go 1.19). Per case: the `analyze --json` report
 * with default thresholds, the report with every site that has any map
 * memory or growth, and each capture's attribution (usages sorted by key).
 *
 * The expected files were written once by the engine as it was before the
 * attribution and series speed-up (main at 54727dc):
 *
 *   npm run build && node dist/test/verdicts/pinned-cases.js --write
 */
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { attributeProfile, type AttributedSnapshot } from '../../src/analysis/attribute.js';
import { buildReport, type Report } from '../../src/analysis/report.js';
import { analyzeSeries, DEFAULT_THRESHOLDS, type Thresholds, type TimedSnapshot } from '../../src/analysis/series.js';
import { groupCaptureFiles, loadCaptures } from '../../src/cli/files.js';
import { DEFAULT_MAX_PROFILE_BYTES, decodeHeapProfile } from '../../src/pprof/decode.js';
import { repoPath } from '../support/paths.js';

const TESTDATA = repoPath('test', 'verdicts', 'testdata');
export const PINNED_DIR = join(TESTDATA, 'pinned');

/** Every site the engine classifies, not only those worth reporting. */
const EVERY_SITE: Thresholds = { minMapBytes: 0, minGrowthBytesPerHour: DEFAULT_THRESHOLDS.minGrowthBytesPerHour, maxFindings: 1_000_000 };

export interface PinnedCase {
  name: string;
  dir: string;
  /** `debug1`: with the .txt and .sym files beside the protos (hidden frames restored); `proto`: the .pb.gz alone. */
  read: 'debug1' | 'proto';
}

export const PINNED_CASES: PinnedCase[] = [
  ...['leaky-go1.26', 'leaky-go1.19', 'services-go1.26', 'services-go1.19'].flatMap((stream): PinnedCase[] => [
    { name: `${stream}-debug1`, dir: join(TESTDATA, 'streams', stream), read: 'debug1' },
    { name: `${stream}-proto`, dir: join(TESTDATA, 'streams', stream), read: 'proto' },
  ]),
  { name: 'bench-shaped-swiss', dir: join(TESTDATA, 'bench-shaped', 'swiss'), read: 'proto' },
  { name: 'bench-shaped-classic', dir: join(TESTDATA, 'bench-shaped', 'classic'), read: 'proto' },
];

/** Windows over a case's captures: one capture, two, three (the warm-up rules change at each), every third, all. */
function windows(count: number): { label: string; pick: (all: TimedSnapshot[]) => TimedSnapshot[] }[] {
  const list = [
    { label: 'first 1', pick: (all: TimedSnapshot[]) => all.slice(0, 1) },
    { label: 'first 2', pick: (all: TimedSnapshot[]) => all.slice(0, 2) },
    { label: 'last 3', pick: (all: TimedSnapshot[]) => all.slice(-3) },
    { label: 'every third', pick: (all: TimedSnapshot[]) => all.filter((_, i) => i % 3 === 0) },
    { label: 'all', pick: (all: TimedSnapshot[]) => all },
  ];
  return count >= 4 ? list : list.filter((w) => w.label !== 'every third');
}

export interface PinnedOutput {
  /** `analyze --json` of every capture, default thresholds. */
  report: Report;
  /** Per window: the analysis with every site. */
  everySite: Record<string, Report>;
  /** Per capture: its attribution, in a form independent of usage order. */
  attributions: unknown[];
}

async function snapshotsOf(pinned: PinnedCase): Promise<TimedSnapshot[]> {
  const files = readdirSync(pinned.dir)
    .filter((f) => pinned.read === 'debug1' || f.endsWith('.pb.gz'))
    .sort()
    .map((f) => join(pinned.dir, f));
  const snapshots: TimedSnapshot[] = [];
  if (pinned.read === 'debug1') {
    for await (const capture of loadCaptures(groupCaptureFiles(files), { maxBytes: DEFAULT_MAX_PROFILE_BYTES })) {
      snapshots.push({ ...attributeProfile(capture.profile), time: capture.time });
    }
  } else {
    for (const file of files) {
      const profile = decodeHeapProfile(readFileSync(file), { maxBytes: DEFAULT_MAX_PROFILE_BYTES });
      snapshots.push({ ...attributeProfile(profile), time: profile.time as Date });
    }
  }
  return snapshots.sort((a, b) => a.time.getTime() - b.time.getTime());
}

function attributionView(snapshot: AttributedSnapshot): unknown {
  return {
    mapImpl: snapshot.mapImpl,
    evidence: snapshot.evidence,
    totals: snapshot.totals,
    memProfileRate: snapshot.memProfileRate,
    usages: [...snapshot.usages].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)),
    allocBytesByFunction: [...snapshot.allocBytesByFunction].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)),
  };
}

/** The engine's output on one case, as plain JSON values. */
export async function pinnedOutput(pinned: PinnedCase): Promise<PinnedOutput> {
  const snapshots = await snapshotsOf(pinned);
  const everySite: Record<string, Report> = {};
  for (const { label, pick } of windows(snapshots.length)) everySite[label] = buildReport(analyzeSeries(pick(snapshots), EVERY_SITE), undefined, []);
  const output: PinnedOutput = {
    report: buildReport(analyzeSeries(snapshots, DEFAULT_THRESHOLDS), undefined, []),
    everySite,
    attributions: snapshots.map(attributionView),
  };
  return JSON.parse(JSON.stringify(output)) as PinnedOutput;
}

export const reportPath = (pinned: PinnedCase): string => join(PINNED_DIR, `${pinned.name}.report.json`);
export const fullPath = (pinned: PinnedCase): string => join(PINNED_DIR, `${pinned.name}.full.json.gz`);

export function expectedOutput(pinned: PinnedCase): PinnedOutput {
  const full = JSON.parse(gunzipSync(readFileSync(fullPath(pinned))).toString('utf8')) as Omit<PinnedOutput, 'report'>;
  return { report: JSON.parse(readFileSync(reportPath(pinned), 'utf8')) as Report, ...full };
}

async function write(): Promise<void> {
  mkdirSync(PINNED_DIR, { recursive: true });
  for (const pinned of PINNED_CASES) {
    const { report, ...full } = await pinnedOutput(pinned);
    writeFileSync(reportPath(pinned), `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(fullPath(pinned), gzipSync(JSON.stringify(full), { level: 9 }));
    console.log(`${pinned.name}: ${report.findings.length} findings reported, ${Object.values(full.everySite).map((r) => r.findings.length).join('/')} sites per window`);
  }
}

if (process.argv.includes('--write')) await write();

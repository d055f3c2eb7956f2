/**
 * `npm run bench`: wall time and peak RSS of `mapleak analyze` against
 * `go tool pprof -top` on the same heap profiles, shaped like those of
 * large services, as ratios of medians over alternating runs.
 *
 * The profiles come from bench/heapgen, a Go program whose thousands of
 * allocating functions are generated (bench/generate.ts); they are made
 * once per generator version and cached under .cache/bench.
 *
 * BENCH_RUNS (default 5) sets the runs per measurement; BENCH_BASELINE (a
 * built checkout of an earlier commit) adds its `mapleak analyze` to the
 * same alternating runs, as "before".
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { decodeHeapProfile } from '../src/pprof/index.js';
import { CLI, REPO_ROOT } from '../test/support/paths.js';
import { buildGenerator, FUNCS, GO, profiles } from './inputs.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
/** A checkout built before the change (BENCH_BASELINE=/path/to/repo), measured in the same alternating runs. */
const BASELINE = process.env.BENCH_BASELINE;
const DECODE_ONLY = join(REPO_ROOT, 'dist', 'bench', 'decode-only.js');
const SCAN_FLOOR = join(REPO_ROOT, 'dist', 'bench', 'scan-floor.js');

interface Measurement {
  seconds: number;
  /** User + system CPU: steadier than wall time on a shared machine. */
  cpuSeconds: number;
  peakRssBytes: number;
}

/** GNU time reports wall time and the child's peak RSS. */
function measure(command: string, args: readonly string[]): Measurement {
  const result = spawnSync('/usr/bin/time', ['-f', '%e %M %U %S', command, ...args], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`${command} failed: ${result.stderr.slice(-2000)}`);
  const last = result.stderr.trim().split('\n').pop() ?? '';
  const [seconds, kib, user, system] = last.split(' ').map(Number);
  if (![seconds, kib, user, system].every(Number.isFinite)) throw new Error(`cannot read /usr/bin/time output: ${last}`);
  return { seconds: seconds as number, cpuSeconds: (user as number) + (system as number), peakRssBytes: (kib as number) * 1024 };
}

const median = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

type Command = readonly [string, readonly string[]];

/** `node <flags> <cli>` as the installed `mapleak` runs it: with the flags of its `#!/usr/bin/env -S node ...` line. */
function asInstalled(cli: string, args: readonly string[]): Command {
  const shebang = readFileSync(cli, 'utf8').split('\n', 1)[0] ?? '';
  const flags = /^#!\/usr\/bin\/env -S node (.*)$/.exec(shebang)?.[1]?.split(' ').filter(Boolean) ?? [];
  return [process.execPath, [...flags, cli, ...args]];
}

/** Medians of alternating runs of several commands (the order flips every run, so none always runs on a warmer machine). */
function compare(commands: Record<string, Command>, runs = RUNS): Record<string, { seconds: number; cpu: number; rss: number }> {
  const results = new Map<string, Measurement[]>(Object.keys(commands).map((name) => [name, []]));
  const entries = Object.entries(commands);
  for (const [, [command, args]] of entries) measure(command, args); // warm the page cache
  for (let i = 0; i < runs; i++) {
    for (const [name, [command, args]] of i % 2 === 0 ? entries : [...entries].reverse()) results.get(name)?.push(measure(command, args));
  }
  return Object.fromEntries(
    [...results].map(([name, ms]) => [
      name,
      { seconds: median(ms.map((m) => m.seconds)), cpu: median(ms.map((m) => m.cpuSeconds)), rss: median(ms.map((m) => m.peakRssBytes)) },
    ]),
  );
}

function describe(files: string[]): { samples: number; functions: number; kib: number } {
  let samples = 0;
  const functions = new Set<string>();
  let bytes = 0;
  for (const file of files) {
    const data = readFileSync(file);
    bytes += data.length;
    const profile = decodeHeapProfile(data);
    samples += profile.records.length;
    for (const record of profile.records) if (record.stack[0]) functions.add(record.stack[0].function);
  }
  return { samples, functions: functions.size, kib: bytes / 1024 };
}

const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(0);
const TIME_GOAL = 0.25;
const RSS_GOAL = 0.5;

function main(): void {
  if (!existsSync('/usr/bin/time')) throw new Error('GNU time is needed: apt-get install time');
  const started = Date.now();
  const generator = buildGenerator();
  const window = profiles(generator, 'window', ['-funcs', String(FUNCS), '-captures', '12', '-interval', '1s']);
  const service = profiles(generator, 'service', ['-funcs', '6000', '-rate', '131072', '-captures', '3', '-interval', '1ms']);
  const scaling = [1, 2, 4].map((factor) => ({
    factor,
    files: profiles(generator, `sites-${factor}x`, ['-funcs', String((FUNCS / 4) * factor), '-captures', '1']).slice(-1),
  }));
  const works = [
    { name: '(a) one large profile', files: window.slice(-1) },
    { name: '(b) a window of 12 captures', files: window },
    { name: '(c) a service profile at a sparser rate', files: service.slice(-1) },
  ];

  // Node's own start-up, measured in the same run: the floor under every figure of ours.
  const startup = compare({ node: [process.execPath, ['-e', '0']], help: asInstalled(CLI, ['--help']) });
  const nodeFloor = startup.node!;
  const rows: string[] = [];
  const goals: string[] = [];
  const figures = (m: { seconds: number; cpu: number; rss: number }): string => `${m.seconds.toFixed(2)} s (cpu ${m.cpu.toFixed(2)} s), ${mib(m.rss)} MiB`;
  for (const work of works) {
    const shape = describe(work.files);
    const r = compare({
      mapleak: asInstalled(CLI, ['analyze', '--json', ...work.files]),
      pprof: [GO, ['tool', 'pprof', '-top', ...work.files]],
      decode: [process.execPath, [DECODE_ONLY, ...work.files]],
      floor: [process.execPath, [SCAN_FLOOR, ...work.files]],
      ...(BASELINE ? { before: asInstalled(join(BASELINE, 'dist', 'src', 'cli', 'main.js'), ['analyze', '--json', ...work.files]) } : {}),
    });
    const [ours, peer, decode, floor] = [r.mapleak!, r.pprof!, r.decode!, r.floor!];
    const timeRatio = ours.seconds / peer.seconds;
    const cpuRatio = ours.cpu / peer.cpu;
    const rssRatio = ours.rss / peer.rss;
    const before = r.before ? `${figures(r.before)}: **${(r.before.seconds / peer.seconds).toFixed(2)}×** time, **${(r.before.rss / peer.rss).toFixed(2)}×** RSS | ` : '';
    rows.push(
      `| ${work.name} | ${work.files.length} | ${shape.samples} | ${shape.functions} | ${shape.kib.toFixed(0)} | ${before}` +
        `${figures(ours)} | ${figures(peer)} | **${timeRatio.toFixed(2)}×** (cpu ${cpuRatio.toFixed(2)}×) | **${rssRatio.toFixed(2)}×** | ${figures(decode)} | ${figures(floor)} | ${figures(nodeFloor)} |`,
    );
    // A goal under the scan floor cannot be met by any Node reader of these bytes.
    const reach = (ratio: number, goal: number, floorRatio: number): string =>
      ratio <= goal ? 'met' : floorRatio > goal ? 'NOT met, below the scan floor' : 'NOT met';
    goals.push(
      `${work.name}: time ≤ ${TIME_GOAL}× ${reach(timeRatio, TIME_GOAL, floor.seconds / peer.seconds)} (${timeRatio.toFixed(2)}×; decode only ${(decode.seconds / peer.seconds).toFixed(2)}×, scan floor ${(floor.seconds / peer.seconds).toFixed(2)}×, node start-up ${(nodeFloor.seconds / peer.seconds).toFixed(2)}×), ` +
        `peak RSS ≤ ${RSS_GOAL}× ${reach(rssRatio, RSS_GOAL, floor.rss / peer.rss)} (${rssRatio.toFixed(2)}×; decode only ${(decode.rss / peer.rss).toFixed(2)}×, scan floor ${(floor.rss / peer.rss).toFixed(2)}×, node start-up ${(nodeFloor.rss / peer.rss).toFixed(2)}×)`,
    );
  }

  console.log(`\n${RUNS} alternating runs each, medians; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} on ${availableParallelism()} cores`);
  console.log('(decode only: the same files read, gunzipped and decoded, nothing else; scan floor: read, gunzipped and every varint stepped over, nothing built: the least any Node reader does; node start-up: `node -e 0`, the floor under all)\n');
  console.log(`| work | files | samples | leaf functions | KiB | ${BASELINE ? `before (${BASELINE}) | ` : ''}mapleak analyze --json | go tool pprof -top | time ratio | peak RSS ratio | decode only | scan floor | node start-up |`);
  console.log(`|---|---:|---:|---:|---:|${BASELINE ? '---:|' : ''}---:|---:|---:|---:|---:|---:|---:|`);
  console.log(rows.join('\n'));
  console.log(`\n\`mapleak --help\` ${figures(startup.help!)}\n`);
  console.log(goals.map((g) => `goal ${g}`).join('\n'));

  const times = scaling.map(({ factor, files }) => {
    const shape = describe(files);
    const r = compare({ mapleak: asInstalled(CLI, ['analyze', '--json', ...files]) });
    return { factor, samples: shape.samples, functions: shape.functions, seconds: r.mapleak!.seconds, cpu: r.mapleak!.cpu };
  });
  console.log('\nscaling with the number of allocation sites (one profile each; "minus start-up" takes `node -e 0` off):\n');
  console.log('| sites | samples | leaf functions | wall | cpu | wall minus start-up | cpu minus start-up | wall per 1× | cpu per 1× |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const first = times[0] as (typeof times)[0];
  const baseWall = Math.max(0.001, first.seconds - nodeFloor.seconds);
  const baseCpu = Math.max(0.001, first.cpu - nodeFloor.cpu);
  for (const t of times) {
    const wall = t.seconds - nodeFloor.seconds;
    const cpu = t.cpu - nodeFloor.cpu;
    console.log(
      `| ${t.factor}× | ${t.samples} | ${t.functions} | ${t.seconds.toFixed(2)} s | ${t.cpu.toFixed(2)} s | ${wall.toFixed(2)} s | ${cpu.toFixed(2)} s | ${(wall / baseWall / t.factor).toFixed(2)} | ${(cpu / baseCpu / t.factor).toFixed(2)} |`,
    );
  }
  console.log(`\n(linear: "per 1×" stays near 1.00)\nbench took ${((Date.now() - started) / 1000).toFixed(0)} s`);
  const size = statSync(service.slice(-1)[0] as string).size;
  if (size < 100 * 1024 || size > 400 * 1024) console.log(`note: the service profile is ${(size / 1024).toFixed(0)} KiB, not about 200 KiB`);
}

main();

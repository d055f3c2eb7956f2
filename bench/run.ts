/**
 * `npm run bench`: time and peak memory of `mapleak analyze` against
 * `go tool pprof -top` on the same large, real heap profile, as ratios of
 * medians over several alternating runs.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeHeapProfile } from '../src/pprof/index.js';
import { CACHE_DIR, CLI, repoPath } from '../test/support/paths.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const GO = process.env.GO ?? 'go';
const benchDir = join(CACHE_DIR, 'bench');

interface Measurement {
  seconds: number;
  peakRssBytes: number;
}

function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, ...options });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.error?.message ?? result.stderr}`);
  return result.stdout;
}

function generateProfile(): string {
  mkdirSync(benchDir, { recursive: true });
  const profile = join(benchDir, 'heap-large.pb.gz');
  if (existsSync(profile)) return profile;
  const binary = join(benchDir, 'heapgen');
  run(GO, ['build', '-o', binary, '.'], { cwd: repoPath('bench', 'heapgen'), env: { ...process.env, GOTOOLCHAIN: 'local' } });
  run(binary, ['-out', profile]);
  return profile;
}

/** GNU time reports wall time and the child's peak RSS. */
function measure(command: string, args: string[]): Measurement {
  const result = spawnSync('/usr/bin/time', ['-f', '%e %M', command, ...args], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`${command} failed: ${result.stderr}`);
  const last = result.stderr.trim().split('\n').pop() ?? '';
  const [seconds, kib] = last.split(' ').map(Number);
  if (!Number.isFinite(seconds) || !Number.isFinite(kib)) throw new Error(`cannot read /usr/bin/time output: ${last}`);
  return { seconds: seconds as number, peakRssBytes: (kib as number) * 1024 };
}

const median = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

function main(): void {
  if (!existsSync('/usr/bin/time')) throw new Error('GNU time is needed: apt-get install time');
  const profile = generateProfile();
  const decoded = decodeHeapProfile(readFileSync(profile));
  const stacks = new Set(decoded.records.map((r) => r.stack.map((f) => `${f.function}:${f.line}`).join('|'))).size;
  console.log(`profile: ${profile}`);
  console.log(`  ${decoded.records.length} samples, ${stacks} distinct stacks, ${(readFileSync(profile).length / 1024).toFixed(0)} KiB gzipped`);
  if (decoded.records.length < 50_000) throw new Error('the benchmark profile needs 50k+ samples');

  const tools = {
    'mapleak analyze --json': [process.execPath, [CLI, 'analyze', '--json', profile]] as const,
    'go tool pprof -top': [GO, ['tool', 'pprof', '-top', profile]] as const,
  };
  const results = new Map<string, Measurement[]>(Object.keys(tools).map((name) => [name, []]));
  for (const [command, args] of Object.values(tools)) measure(command, [...args]); // warm caches
  for (let i = 0; i < RUNS; i++) {
    // Alternate the order so neither tool always runs on a warmer machine.
    const order = i % 2 === 0 ? Object.entries(tools) : Object.entries(tools).reverse();
    for (const [name, [command, args]] of order) results.get(name)?.push(measure(command, [...args]));
  }

  const rows = [...results].map(([name, ms]) => ({
    name,
    seconds: median(ms.map((m) => m.seconds)),
    rss: median(ms.map((m) => m.peakRssBytes)),
  }));
  const [ours, peer] = rows as [(typeof rows)[0], (typeof rows)[0]];
  console.log(`\n${RUNS} runs each, medians:\n`);
  console.log('| tool | time (s) | peak RSS (MiB) |');
  console.log('|---|---:|---:|');
  for (const row of rows) console.log(`| ${row.name} | ${row.seconds.toFixed(3)} | ${(row.rss / 1024 / 1024).toFixed(1)} |`);
  const timeRatio = ours.seconds / peer.seconds;
  console.log(`| **ratio mapleak / pprof** | **${timeRatio.toFixed(2)}×** | **${(ours.rss / peer.rss).toFixed(2)}×** |`);
  console.log(`\ngoal: time at most 0.5× go tool pprof -top: ${timeRatio <= 0.5 ? 'met' : 'NOT met'}`);
}

main();

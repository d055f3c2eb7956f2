/**
 * `npm run bench:capture`: what one capture costs the target, for a small
 * heap (test/targets/leaky) and a 100k-record heap (test/targets/bigheap,
 * every allocation sampled). Each target is captured 10 times, 2 s apart,
 * twice: reading debug=1 on every capture (how captures worked before) and
 * with the default policy (debug=1 only while the binary shows records it
 * has not seen). Per capture: bytes the target served, time it took to
 * serve them, and the CPU time the target spent (from /proc), as medians.
 */
import { readFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { captureHeap, type Debug1Policy } from '../src/capture/capture.js';
import { directPprofClient } from '../src/capture/direct.js';
import { BinaryKnowledgeCache } from '../src/capture/binary-knowledge.js';
import { buildGoProgram } from '../test/cluster/go-build.js';
import { startTarget } from '../test/support/go-targets.js';

const CAPTURES = Number(process.env.BENCH_CAPTURES ?? 10);
const EVERY_MS = 2000;
const CLOCK_TICKS = 100; // USER_HZ on Linux

interface Target {
  name: string;
  dir: string;
  args: string[];
}

const TARGETS: Target[] = [
  { name: 'small heap (leaky, default sampling)', dir: 'test/targets/leaky', args: [] },
  { name: '100k-record heap (bigheap, MemProfileRate=1)', dir: 'test/targets/bigheap', args: ['-records', '100000'] },
];

interface PerCapture {
  bytes: number;
  serveMs: number;
  targetCpuMs: number;
  debug1: boolean;
}

function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after "pid (comm) ".
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

async function series(target: Target, mode: Debug1Policy['mode']): Promise<PerCapture[]> {
  const binary = await buildGoProgram(target.dir);
  const running = await startTarget(binary, mkdtempSync(join(tmpdir(), 'mapleak-cost-')), target.args);
  try {
    await sleep(3000);
    const cache = new BinaryKnowledgeCache();
    const client = directPprofClient(`${running.url}/debug/pprof`, 60_000);
    const out: PerCapture[] = [];
    for (let i = 0; i < CAPTURES; i++) {
      const before = cpuMs(running.pid);
      const capture = await captureHeap(client, { limits: { maxBytes: 64 * 1024 * 1024 }, knowledge: cache, scope: 'bench', debug1: { mode } });
      out.push({ bytes: capture.cost.bytes, serveMs: capture.cost.milliseconds, targetCpuMs: cpuMs(running.pid) - before, debug1: capture.cost.debug1 });
      await sleep(EVERY_MS);
    }
    return out;
  } finally {
    await running.stop();
  }
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};
const mb = (bytes: number): string => (bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${(bytes / 1e3).toFixed(1)} KB`);

const rows: string[] = [];
for (const target of TARGETS) {
  for (const mode of ['always', 'auto'] as const) {
    const captures = await series(target, mode);
    const first = captures[0] as PerCapture;
    const rest = captures.slice(1);
    rows.push(
      `| ${target.name} | ${mode === 'always' ? 'debug=1 every capture (before)' : 'debug=1 when unseen (after)'} | ${mb(first.bytes)}, ${Math.round(first.serveMs)} ms | ` +
        `${mb(median(rest.map((c) => c.bytes)))} | ${Math.round(median(rest.map((c) => c.serveMs)))} ms | ${Math.round(median(rest.map((c) => c.targetCpuMs)))} ms | ${rest.filter((c) => c.debug1).length} of ${rest.length} |`,
    );
  }
}
console.log(`\nWhat one capture costs the target (${CAPTURES} captures, ${EVERY_MS / 1000} s apart; medians of captures 2..${CAPTURES})\n`);
console.log('| target | policy | first capture: served, time | served per capture | serving time | target CPU | later captures reading debug=1 |');
console.log('|---|---|---|---|---|---|---|');
for (const row of rows) console.log(row);

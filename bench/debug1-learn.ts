/**
 * `node dist/bench/debug1-learn.js` (after `npm run build`): what one
 * capture that reads and learns from a 30 MiB debug=1 costs the event loop.
 * The target is test/targets/debug1flood with -replay (Go 1.26): its own
 * records with their `#` lines, repeated with object sizes of their own,
 * ~52,000 records of ~600 bytes, each teaching a hidden-frame entry once
 * /symbol names its runtime PCs (the shape of a large service's answer,
 * parsing into about half its text).
 *
 * Two ways, alternating capture by capture, each with a fresh knowledge
 * cache (so each reads debug=1 and learns): `threaded` (the worker's decode
 * gate: the thread parses, keeps the parse and learns; the loop gets the
 * symbol questions and the learned table) and `on-loop` (no decoders, the
 * CLI's path: parse and learning on the loop). Per capture: the loop's
 * active time (eventLoopUtilization), its longest block of its own work
 * (main-thread CPU between two turns of a 5 ms timer), its longest delay,
 * and the main heap's growth (peak sampled every 5 ms, and kept after a GC
 * with the capture let go: the learned table itself). Medians of BENCH_CAPTURES (default 5) per way.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { BinaryKnowledgeCache } from '../src/capture/binary-knowledge.js';
import { ByteBudget } from '../src/capture/budget.js';
import { captureHeap, type HeapCapture } from '../src/capture/capture.js';
import { directPprofClient } from '../src/capture/direct.js';
import { DecodeGate } from '../src/worker/decode-gate.js';
import { buildGoProgram } from '../test/cluster/go-build.js';
import { startTarget } from '../test/support/go-targets.js';

const CAPTURES = Number(process.env.BENCH_CAPTURES ?? 5);
const MiB = 1024 * 1024;
const LIMITS = { maxBytes: 8 * MiB, maxInflatedBytes: 64 * MiB, maxRatio: 50 };
type Way = 'threaded' | 'on-loop';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function threadCpuMs(): number {
  const fields = readFileSync('/proc/thread-self/stat', 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

interface Figures {
  loopActiveMs: number;
  longestBlockMs: number;
  maxDelayMs: number;
  heapPeakMiB: number;
  heapKeptMiB: number;
  entries: number;
}

async function capture(way: Way, url: string, gate: DecodeGate): Promise<Figures> {
  const knowledge = new BinaryKnowledgeCache();
  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  let heapPeak = heapBefore;
  let longestBlock = 0;
  let lastCpu = threadCpuMs();
  const ticks = setInterval(() => {
    const cpu = threadCpuMs();
    longestBlock = Math.max(longestBlock, cpu - lastCpu);
    lastCpu = cpu;
    heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
  }, 5);
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const elu = performance.eventLoopUtilization();
  let result: HeapCapture | undefined = await captureHeap(directPprofClient(url, 60_000), {
    limits: LIMITS,
    knowledge,
    scope: 'bench',
    budget: new ByteBudget(96 * MiB),
    debug1: { mode: 'always', maxBytes: 32 * MiB, timeoutMs: 60_000 },
    ...(way === 'threaded' ? { decoders: gate.decoders(LIMITS) } : {}),
  });
  const loop = performance.eventLoopUtilization(elu);
  await new Promise((resolve) => setTimeout(resolve, 20));
  clearInterval(ticks);
  delay.disable();
  longestBlock = Math.max(longestBlock, threadCpuMs() - lastCpu);
  if (result.warnings.length > 0) throw new Error(`${way}: ${result.warnings.join('; ')}`);
  const entries = knowledge.binary(`bench\u0000${result.profile.buildId ?? ''}`, 'bench').hiddenFrames.size;
  result = undefined; // the CLI's capture keeps the text (HeapCapture.debug1): not what the loop keeps of learning
  gc();
  const heapKept = process.memoryUsage().heapUsed - heapBefore;
  return { loopActiveMs: loop.active, longestBlockMs: longestBlock, maxDelayMs: delay.max / 1e6, heapPeakMiB: (heapPeak - heapBefore) / MiB, heapKeptMiB: heapKept / MiB, entries };
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

async function main(): Promise<void> {
  const binary = await buildGoProgram('test/targets/debug1flood', { toolchain: '1.26', goLine: 'current' });
  const target = await startTarget(binary, mkdtempSync(join(tmpdir(), 'mapleak-d1learn-')), ['-replay', '-mib', '30']);
  const gate = new DecodeGate({ maxDecodeMs: 60_000, maxHeapMiB: 512 });
  const url = `${target.url}/debug/pprof`;
  try {
    // One of each first: the thread starts, the code is compiled.
    await capture('threaded', url, gate);
    await capture('on-loop', url, gate);
    const figures: Record<Way, Figures[]> = { threaded: [], 'on-loop': [] };
    for (let i = 0; i < CAPTURES; i++) {
      for (const way of ['threaded', 'on-loop'] as const) figures[way].push(await capture(way, url, gate));
    }
    console.log(`# 30 MiB debug=1 (debug1flood -replay), ${CAPTURES} captures per way, alternating; load ${loadavg()[0]?.toFixed(1)}`);
    console.log('| way | loop active ms | longest loop block ms | max loop delay ms | main heap peak MiB | main heap kept MiB | entries learned |');
    console.log('|---|---|---|---|---|---|---|');
    const medians = {} as Record<Way, Record<keyof Figures, number>>;
    for (const way of ['threaded', 'on-loop'] as const) {
      const of = (key: keyof Figures): number => median(figures[way].map((f) => f[key]));
      medians[way] = { loopActiveMs: of('loopActiveMs'), longestBlockMs: of('longestBlockMs'), maxDelayMs: of('maxDelayMs'), heapPeakMiB: of('heapPeakMiB'), heapKeptMiB: of('heapKeptMiB'), entries: of('entries') };
      const m = medians[way];
      console.log(`| ${way} | ${m.loopActiveMs.toFixed(0)} | ${m.longestBlockMs.toFixed(0)} | ${m.maxDelayMs.toFixed(0)} | ${m.heapPeakMiB.toFixed(1)} | ${m.heapKeptMiB.toFixed(1)} | ${m.entries} |`);
    }
    console.log(`threaded / on-loop: loop active ${(medians.threaded.loopActiveMs / medians['on-loop'].loopActiveMs).toFixed(2)}, longest block ${(medians.threaded.longestBlockMs / medians['on-loop'].longestBlockMs).toFixed(2)}, heap peak ${(medians.threaded.heapPeakMiB / medians['on-loop'].heapPeakMiB).toFixed(2)}`);
  } finally {
    await gate.close();
    await target.stop();
  }
}

await main();

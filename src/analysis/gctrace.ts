/** One `GODEBUG=gctrace=1` line. */
export interface GcCycle {
  cycle: number;
  /** Seconds since the process started. */
  atSeconds: number;
  /** GC CPU share since start, percent. */
  cpuPercent: number;
  heapStartBytes: number;
  heapEndBytes: number;
  /** Live heap marked by this cycle (the third `->` figure): the leak signal. */
  liveHeapBytes: number;
  goalBytes: number;
  /** runtime.GC() (e.g. /debug/pprof/heap?gc=1): kept out of trends. */
  forced: boolean;
}

export interface GcTrace {
  cycles: GcCycle[];
  /** Lines that looked like gctrace but could not be read. */
  skippedLines: number;
}

const MIB = 1024 * 1024;
const GC_LINE =
  /gc (\d+) @(\d+(?:\.\d+)?)s (\d+)%[^:]*:.*?(\d+(?:\.\d+)?)->(\d+(?:\.\d+)?)->(\d+(?:\.\d+)?) MB, (\d+(?:\.\d+)?) MB goal/;

/**
 * Tolerant reader for Go 1.19–1.27 gctrace output, wherever the lines sit
 * (raw stderr, CRI log lines, timestamped kubectl logs). Other output is
 * ignored; lines that start like gctrace but do not parse are counted.
 */
export function parseGcTrace(text: string): GcTrace {
  const cycles: GcCycle[] = [];
  let skippedLines = 0;
  for (const line of text.split('\n')) {
    const start = line.search(/gc \d+ @/);
    if (start < 0) continue;
    const match = GC_LINE.exec(line.slice(start));
    if (!match) {
      skippedLines++;
      continue;
    }
    cycles.push({
      cycle: Number(match[1]),
      atSeconds: Number(match[2]),
      cpuPercent: Number(match[3]),
      heapStartBytes: Number(match[4]) * MIB,
      heapEndBytes: Number(match[5]) * MIB,
      liveHeapBytes: Number(match[6]) * MIB,
      goalBytes: Number(match[7]) * MIB,
      forced: /\(forced\)\s*$/.test(line),
    });
  }
  return { cycles, skippedLines };
}

export interface GcSummary {
  cycles: number;
  forcedCycles: number;
  skippedLines: number;
  liveHeapBytes: number;
  liveHeapGrowthBytesPerHour: number;
  gcCpuPercent: number;
}

/** Live-heap trend over unforced cycles; a process restart (cycle numbers going back) starts a new trend. */
export function summarizeGcTrace(trace: GcTrace): GcSummary {
  let run: GcCycle[] = [];
  for (const cycle of trace.cycles) {
    const previous = run[run.length - 1];
    if (previous && cycle.cycle <= previous.cycle) run = [];
    run.push(cycle);
  }
  const unforced = run.filter((c) => !c.forced);
  const last = unforced[unforced.length - 1];
  const slopePerSecond = linearSlope(
    unforced.map((c) => c.atSeconds),
    unforced.map((c) => c.liveHeapBytes),
  );
  return {
    cycles: trace.cycles.length,
    forcedCycles: trace.cycles.filter((c) => c.forced).length,
    skippedLines: trace.skippedLines,
    liveHeapBytes: last?.liveHeapBytes ?? 0,
    liveHeapGrowthBytesPerHour: Math.round(slopePerSecond * 3600),
    gcCpuPercent: run[run.length - 1]?.cpuPercent ?? 0,
  };
}

/** Least-squares slope of y over x; 0 with fewer than two distinct x. */
export function linearSlope(xs: readonly number[], ys: readonly number[]): number {
  const n = Math.min(xs.length, ys.length);
  if (n < 2) return 0;
  let sumX = 0;
  let sumY = 0;
  for (let i = 0; i < n; i++) {
    sumX += xs[i] as number;
    sumY += ys[i] as number;
  }
  const meanX = sumX / n;
  const meanY = sumY / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    const dx = (xs[i] as number) - meanX;
    num += dx * ((ys[i] as number) - meanY);
    den += dx * dx;
  }
  return den === 0 ? 0 : num / den;
}

/**
 * debug=1 is learned from in the decode thread (src/worker/decode-thread.ts):
 * the parse stays there, the event loop gets only the symbol questions and,
 * once /symbol has answered, the learned hidden-frame table. Through the
 * real capture path (captureHeap over HTTP, the worker's in-flight budget,
 * the gate's real thread) against real Go programs: test/targets/debug1flood
 * with -replay (its own records with their `#` lines, repeated with object
 * sizes of their own: 30 MiB is ~50,000 records, each teaching an entry once
 * /symbol names its runtime PCs) and test/targets/leaky.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { serialize } from 'node:v8';
import type { Worker } from 'node:worker_threads';
import { BinaryKnowledgeCache, ByteBudget, CaptureError, captureHeap, directPprofClient, type CaptureDecoders, type CaptureOptions, type HeapCapture, type PprofClient } from '../../src/capture/index.js';
import { parseDebug1Heap, symbolQuestions, unnamedPcs } from '../../src/pprof/debug1.js';
import { MAX_SYMBOL_QUERY } from '../../src/pprof/symbols.js';
import { PROFILE_MESSAGES } from '../../src/pprof/messages.js';
import { DecodeGate } from '../../src/worker/decode-gate.js';
import { buildTarget, startTarget, type RunningTarget } from '../support/go-targets.js';

const MiB = 1024 * 1024;
const LIMITS = { maxBytes: 8 * MiB, maxInflatedBytes: 64 * MiB, maxRatio: 50 };
const DEBUG1 = { mode: 'always' as const, maxBytes: 32 * MiB, timeoutMs: 20_000 };

/** What the thread sends the event loop, reply by reply: `sizes()` gives each one's structured clone bytes (measured when asked, not on the loop while it works). */
function watchReplies(gate: DecodeGate): { sizes: () => number[] } {
  // The gate's thread is private: the test listens beside the gate, on the same messages.
  const thread = (gate as unknown as { thread?: Worker }).thread;
  assert.ok(thread, 'the gate has started its thread');
  const replies: unknown[] = [];
  thread.on('message', (reply: unknown) => replies.push(reply));
  return { sizes: () => replies.map((reply) => serialize(reply).length) };
}

/** CPU time this thread has used (ms): /proc/thread-self/stat, in clock ticks of 10 ms (USER_HZ). */
function threadCpuMs(): number {
  const fields = readFileSync('/proc/thread-self/stat', 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * The event loop while work runs in the thread: its delay (perf_hooks), and
 * its longest block of its own work, the CPU time the main thread used
 * between two turns of a 5 ms timer. On a shared machine the delay also
 * counts the time the loop waited for a core; the block does not.
 */
class LoopWatch {
  private readonly delay = monitorEventLoopDelay({ resolution: 10 });
  private longestBlock = 0;

  async during<T>(work: () => Promise<T>): Promise<T> {
    this.delay.enable();
    let last = threadCpuMs();
    const ticks = setInterval(() => {
      const now = threadCpuMs();
      this.longestBlock = Math.max(this.longestBlock, now - last);
      last = now;
    }, 5);
    try {
      return await work();
    } finally {
      // One more turn, so that a stall at the very end is sampled too.
      await new Promise((resolve) => setTimeout(resolve, 20));
      clearInterval(ticks);
      this.longestBlock = Math.max(this.longestBlock, threadCpuMs() - last);
      this.delay.disable();
    }
  }

  get maxDelayMs(): number {
    return this.delay.max / 1e6;
  }

  get longestBlockMs(): number {
    return this.longestBlock;
  }
}

/** The gate's decoders, with the loop watched while the thread parses a debug=1 and while it learns from it (from each request to its result on the loop: the reply's deserialisation and the merge included). */
function watchedInThread(decoders: CaptureDecoders): { decoders: CaptureDecoders; parse: LoopWatch; learn: LoopWatch } {
  const parse = new LoopWatch();
  const learn = new LoopWatch();
  return {
    decoders: {
      ...decoders,
      debug1: (bytes, known, maxQueries) =>
        parse.during(async () => {
          const lesson = await decoders.debug1(bytes, known, maxQueries);
          return { ...lesson, learn: (symbols, into, maxBytes) => learn.during(() => lesson.learn(symbols, into, maxBytes)) };
        }),
    },
    parse,
    learn,
  };
}

describe('debug=1 learned from in the decode thread', () => {
  let flood: RunningTarget;
  let larger: RunningTarget;
  let smaller: RunningTarget;
  let leaky: RunningTarget;
  let gate: DecodeGate;

  before(async () => {
    const [floodBinary, leakyBinary] = await Promise.all([buildTarget('debug1flood', '1.26'), buildTarget('leaky', '1.26')]);
    const dir = (name: string): string => join(tmpdir(), `mlp-d1learn-${process.pid}-${name}`);
    [flood, larger, smaller, leaky] = await Promise.all([
      startTarget(floodBinary, dir('flood'), ['-replay', '-mib', '30']),
      startTarget(floodBinary, dir('larger'), ['-replay', '-mib', '6']),
      startTarget(floodBinary, dir('smaller'), ['-replay', '-mib', '3']),
      startTarget(leakyBinary, dir('leaky')),
    ]);
    gate = new DecodeGate({ maxDecodeMs: 20_000, maxHeapMiB: 512 });
  });
  after(async () => {
    await Promise.all([flood?.stop(), larger?.stop(), smaller?.stop(), leaky?.stop(), gate?.close()]);
  });

  /** A gate whose thread keeps the larger target's parse alone but not with the smaller one's (measured from their answers, whatever the build's file paths). */
  const boundedGate = async (): Promise<DecodeGate> => {
    const parsedBytes = async (target: RunningTarget): Promise<number> =>
      parseDebug1Heap(await directPprofClient(`${target.url}/debug/pprof`, 20_000).get('/heap?debug=1', DEBUG1.maxBytes)).parsedBytes;
    const [largerParse, smallerParse] = await Promise.all([parsedBytes(larger), parsedBytes(smaller)]);
    assert.ok(largerParse > smallerParse);
    return new DecodeGate({ maxDecodeMs: 20_000, maxHeapMiB: 512, maxKeptDebug1Bytes: largerParse + smallerParse - 1 });
  };

  const options = (scope: string, knowledge: BinaryKnowledgeCache, budget: ByteBudget, decodeGate?: DecodeGate): CaptureOptions => ({
    limits: LIMITS,
    knowledge,
    scope,
    budget,
    debug1: DEBUG1,
    ...(decodeGate ? { decoders: decodeGate.decoders(LIMITS) } : {}),
  });

  test('a 30 MiB debug=1: only its questions and its table reach the loop, which never works 100 ms at a stretch meanwhile, and it teaches what learning on the loop teaches', async () => {
    // The thread is started (and its replies watched) before the capture.
    await gate.check('proto', await directPprofClient(`${leaky.url}/debug/pprof`, 20_000).get('/heap', LIMITS.maxBytes), LIMITS);
    const replyWatch = watchReplies(gate);
    const inThread = new BinaryKnowledgeCache();
    const budget = new ByteBudget(96 * MiB);
    const watched = watchedInThread(gate.decoders(LIMITS));
    const loopBefore = performance.eventLoopUtilization();
    const threaded = await captureHeap(directPprofClient(`${flood.url}/debug/pprof`, 20_000), { ...options('team-a/flood', inThread, budget), decoders: watched.decoders });
    const loop = performance.eventLoopUtilization(loopBefore);

    assert.deepEqual(threaded.warnings, []);
    assert.ok(threaded.cost.bytes > 30 * MiB, `${threaded.cost.bytes} bytes served`);
    assert.ok(threaded.symbols.size > 0, 'its runtime PCs were named');
    assert.equal(budget.inUse, 0);
    const replies = replyWatch.sizes();
    const crossed = replies.reduce((a, b) => a + b, 0);
    const { parse, learn } = watched;
    console.log(
      `30 MiB debug=1 in the thread: event loop busy ${loop.active.toFixed(0)} ms of the capture's ${(loop.idle + loop.active).toFixed(0)} ms; while the thread parsed: longest block ${parse.longestBlockMs} ms, max delay ${parse.maxDelayMs.toFixed(1)} ms; while it learned: ${learn.longestBlockMs} ms, ${learn.maxDelayMs.toFixed(1)} ms; ${replies.length} replies, ${(crossed / 1024).toFixed(0)} KiB crossed (largest ${(Math.max(...replies) / 1024).toFixed(0)} KiB)`,
    );
    assert.ok(parse.longestBlockMs < 100, `the event loop worked ${parse.longestBlockMs} ms at a stretch while the thread parsed`);
    assert.ok(learn.longestBlockMs < 100, `the event loop worked ${learn.longestBlockMs} ms at a stretch while the thread learned`);
    // The proto's decode, the questions and the learned table: a small fraction of the 30 MiB text (its parse would be ~15 MB).
    assert.ok(crossed < 4 * MiB, `${crossed} bytes crossed to the loop`);

    // The same answer learned from on the loop (the CLI's path: no decoders).
    const onLoop = new BinaryKnowledgeCache();
    const direct = await captureHeap(directPprofClient(`${flood.url}/debug/pprof`, 20_000), options('team-a/flood', onLoop, new ByteBudget(96 * MiB)));
    const learned = (cache: BinaryKnowledgeCache, capture: HeapCapture): [string, readonly string[]][] => [...cache.binary(`team-a/flood\u0000${capture.profile.buildId ?? ''}`, 'team-a/flood').hiddenFrames];
    const table = learned(inThread, threaded);
    assert.ok(table.length > 40_000, `${table.length} hidden-frame entries learned: every record of the answer teaches one`);
    assert.deepEqual(table, learned(onLoop, direct), 'the same entries, in the same order');
    assert.deepEqual(threaded.symbols, direct.symbols);
    assert.deepEqual(threaded.warnings, direct.warnings);
    assert.equal(inThread.bytes(), onLoop.bytes(), 'counted alike in the knowledge cache');
  });

  test("a tenant's debug=1 of 300,000 distinct unnamed PCs: the thread sends only those the capture's symbol requests ask (and those its binary knows), as the loop's parse would", async () => {
    // Written by the test, as a hostile target would: 20,000 records of 16 PCs, 15 unnamed, padded by one long `#` line of a PC they share (so it parses into less than its text).
    const lines = ['heap profile: 1: 1 [1: 1] @ heap/1048576'];
    for (let i = 0; i < 20_000; i++) {
      const pcs = Array.from({ length: 15 }, (_, j) => `0x${(0x500000 + i * 15 + j).toString(16)}`);
      lines.push(`1: 8 [1: 8] @ ${pcs.join(' ')} 0x401001`, `#\t0x401000\tmain.${'padding'.repeat(40)}+0x0\t/src/main.go:1`, '');
    }
    const text = Buffer.from(lines.join('\n'));
    const onLoop = parseDebug1Heap(text.toString('utf8'));
    const known = new Map([[0x500000 - 1 + 7, 'main.known'], [0x500000 - 1 + 70_000, 'main.knownToo']]);
    const lesson = await gate.parseDebug1(Buffer.from(text), LIMITS, known, 64);
    lesson.release();
    const expected = symbolQuestions(onLoop, (pc) => known.has(pc), 64);
    assert.deepEqual(lesson.questions, expected);
    assert.equal(lesson.questions.queries.length, 64);
    assert.ok(lesson.questions.totalQueries > 64 * 10, `${lesson.questions.totalQueries} queries for all of them`);
    assert.ok(lesson.questions.pcs.length <= 64 * (MAX_SYMBOL_QUERY / 4) + known.size, `${lesson.questions.pcs.length} PCs sent of ${unnamedPcs(onLoop).length}`);
    assert.ok(lesson.questions.pcs.includes(0x500000 - 1 + 70_000), 'a known PC past the asked ones is sent: its name is the capture\'s');
  });

  test("a kept parse dropped for the thread's bound fails that capture's learning as TooLarge; the others learn", async () => {
    // The bound lets the larger parse in alone, not with the smaller one: the larger, kept first, is dropped for it.
    const bounded = await boundedGate();
    try {
      const budget = new ByteBudget(96 * MiB);
      const knowledge = new BinaryKnowledgeCache();
      // The larger capture waits at its first /symbol request (its parse kept in the thread) until the others are done.
      let atSymbols!: () => void;
      const reachedSymbols = new Promise<void>((resolve) => (atSymbols = resolve));
      let letGo!: () => void;
      const released = new Promise<void>((resolve) => (letGo = resolve));
      const real = directPprofClient(`${larger.url}/debug/pprof`, 20_000);
      const held: PprofClient = {
        description: real.description,
        get: async (path, maxBytes, timeoutMs, answerBudget) => {
          if (path.startsWith('/symbol')) {
            atSymbols();
            await released;
          }
          return real.get(path, maxBytes, timeoutMs, answerBudget);
        },
      };
      const first = captureHeap(held, options('team-a/larger', knowledge, budget, bounded));
      await reachedSymbols;
      const [second, honest] = await Promise.all([
        captureHeap(directPprofClient(`${smaller.url}/debug/pprof`, 20_000), options('team-b/smaller', knowledge, budget, bounded)),
        captureHeap(directPprofClient(`${leaky.url}/debug/pprof`, 20_000), options('team-c/leaky', knowledge, budget, bounded)),
      ]);
      letGo();
      const dropped = await first;

      const tableOf = (scope: string, capture: HeapCapture): number => knowledge.binary(`${scope}\u0000${capture.profile.buildId ?? ''}`, scope).hiddenFrames.size;
      assert.deepEqual(dropped.warnings, [`debug=1 heap profile: ${PROFILE_MESSAGES.TooLarge}`]);
      assert.ok(dropped.profile.records.length > 0, "the proto's records are the capture's evidence");
      assert.ok(dropped.symbols.size > 0, 'its /symbol was asked and answered');
      assert.equal(tableOf('team-a/larger', dropped), 0, 'it learned nothing');
      assert.equal(knowledge.target('team-a/larger').symbolsRefusedUntil, undefined, "the worker's bound is not the target's doing: /symbol is not rested");
      for (const [scope, capture] of [['team-b/smaller', second], ['team-c/leaky', honest]] as const) {
        assert.deepEqual(capture.warnings, [], scope);
        assert.ok(tableOf(scope, capture) > 0, `${scope} learned its hidden frames`);
      }
      assert.equal(budget.inUse, 0);
    } finally {
      await bounded.close();
    }
  });

  test('a parse whose capture ends before it learns (its /symbol failed) is let go in the thread: it takes no room from the next', async () => {
    const bounded = await boundedGate();
    try {
      const real = directPprofClient(`${larger.url}/debug/pprof`, 20_000);
      const failing: PprofClient = {
        description: real.description,
        get: async (path, maxBytes, timeoutMs, answerBudget) => {
          if (path.startsWith('/symbol')) throw new CaptureError('Timeout', 'symbol endpoint: no answer (test)');
          return real.get(path, maxBytes, timeoutMs, answerBudget);
        },
      };
      const budget = new ByteBudget(96 * MiB);
      const failed = await captureHeap(failing, options('team-a/larger', new BinaryKnowledgeCache(), budget, bounded));
      assert.deepEqual(failed.warnings, ['symbol endpoint: symbol endpoint: no answer (test)']);
      // Kept still, it and this second parse of the same size would pass the bound, and this one would be refused.
      const knowledge = new BinaryKnowledgeCache();
      const again = await captureHeap(real, options('team-a/larger', knowledge, budget, bounded));
      assert.deepEqual(again.warnings, []);
      assert.ok(knowledge.binary(`team-a/larger\u0000${again.profile.buildId ?? ''}`, 'team-a/larger').hiddenFrames.size > 0, 'it learned');
      assert.equal(budget.inUse, 0);
    } finally {
      await bounded.close();
    }
  });
});

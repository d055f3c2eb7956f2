/**
 * A debug=1 is bounded by what it parses into (review 4, finding G), through
 * the real capture path: captureHeap over HTTP with the operator's decode
 * gate (a real worker thread) and in-flight budget, against real Go
 * programs (test/targets/debug1flood: 30 MiB of one-PC records; and
 * test/targets/leaky, whose debug=1 is the runtime's own).
 */
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BinaryKnowledgeCache, ByteBudget, captureHeap, directPprofClient, type PprofClient } from '../../src/capture/index.js';
import { PROFILE_MESSAGES } from '../../src/pprof/messages.js';
import { DecodeGate } from '../../src/worker/decode-gate.js';
import { buildTarget, startTarget, type RunningTarget } from '../support/go-targets.js';

const MiB = 1024 * 1024;
const LIMITS = { maxBytes: 8 * MiB, maxInflatedBytes: 64 * MiB, maxRatio: 50 };
const DEBUG1 = { mode: 'always' as const, maxBytes: 32 * MiB, timeoutMs: 20_000 };

describe('debug=1: what it parses into, through the decode gate', () => {
  let flood: RunningTarget;
  let leaky: RunningTarget;
  const gate = new DecodeGate({ maxDecodeMs: 20_000, maxHeapMiB: 512 });

  before(async () => {
    const [floodBinary, leakyBinary] = await Promise.all([buildTarget('debug1flood', '1.26'), buildTarget('leaky', '1.26')]);
    [flood, leaky] = await Promise.all([
      startTarget(floodBinary, join(tmpdir(), `mlp-d1parse-${process.pid}-flood`), ['-mib', '30']),
      startTarget(leakyBinary, join(tmpdir(), `mlp-d1parse-${process.pid}-leaky`)),
    ]);
  });
  after(async () => {
    await Promise.all([flood?.stop(), leaky?.stop(), gate.close()]);
  });

  test('30 MiB of one-PC records: debug=1 is left out with a warning, the capture keeps its proto and gives its budget back', async () => {
    const budget = new ByteBudget(96 * MiB);
    const result = await captureHeap(directPprofClient(`${flood.url}/debug/pprof`, 20_000), {
      limits: LIMITS,
      knowledge: new BinaryKnowledgeCache(),
      scope: 'team-a/flood',
      budget,
      debug1: DEBUG1,
      decoders: gate.decoders(LIMITS),
    });
    assert.ok(result.cost.debug1, 'debug=1 was read');
    assert.ok(result.cost.bytes > 30 * MiB, `${result.cost.bytes} bytes served`);
    assert.deepEqual(result.warnings, [`debug=1 heap profile: ${PROFILE_MESSAGES.TooLarge}`]);
    assert.equal(result.symbols.size, 0);
    assert.ok(result.profile.records.length > 0, "the proto's records are the evidence");
    assert.equal(budget.inUse, 0);
  });

  test("Go's own debug=1 parses, and its parse keeps budget bytes until its hidden frames are learned", async () => {
    const budget = new ByteBudget(96 * MiB);
    const real = directPprofClient(`${leaky.url}/debug/pprof`, 20_000);
    const heldAtSymbols: number[] = [];
    let heldBeforeDebug1 = -1;
    const client: PprofClient = {
      description: real.description,
      get: async (path, maxBytes, timeoutMs, answerBudget) => {
        if (path === '/heap?debug=1') heldBeforeDebug1 = budget.inUse;
        if (path.startsWith('/symbol')) heldAtSymbols.push(budget.inUse);
        return real.get(path, maxBytes, timeoutMs, answerBudget);
      },
    };
    const result = await captureHeap(client, { limits: LIMITS, knowledge: new BinaryKnowledgeCache(), scope: 'team-b/leaky', budget, debug1: DEBUG1, decoders: gate.decoders(LIMITS) });
    assert.deepEqual(result.warnings, []);
    assert.ok(result.symbols.size > 0, 'the hidden runtime frames were named');
    assert.ok(heldAtSymbols.length > 0, 'symbols were asked');
    // The text's bytes are given back once parsed, all but what the parse holds (tens of KB for this heap, never more than its text); the proto's stay held.
    assert.ok(heldBeforeDebug1 > 0, 'the proto holds budget bytes');
    for (const held of heldAtSymbols) assert.ok(held > heldBeforeDebug1 && held - heldBeforeDebug1 < 1 * MiB, `${held - heldBeforeDebug1} bytes held for the parse while asking /symbol`);
    assert.equal(budget.inUse, 0);
  });
});

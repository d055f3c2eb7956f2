/** The pure bounds under the capture path: symbol answers, the in-flight byte budget, the knowledge cache's shares. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BinaryKnowledgeCache, ByteBudget, CaptureError } from '../../src/capture/index.js';
import { knowledgeBytes } from '../../src/capture/binary-knowledge.js';
import { MAX_SYMBOL_NAME_BYTES, parseSymbolResponse, queriedPcs, symbolQueries } from '../../src/pprof/symbols.js';

describe('symbol answers', () => {
  test('only asked PCs are kept; a name is cut at 1 KiB on a character boundary', () => {
    const asked = queriedPcs(symbolQueries([0x401000, 0x402000])[0] ?? '');
    const long = `main.${'é'.repeat(2000)}`;
    const table = parseSymbolResponse(`num_symbols: 1\n0x401000 main.main\n0x402000 ${long}\n0x999000 main.notAsked\n`, asked);
    assert.deepEqual([...table.keys()], [0x401000, 0x402000]);
    const cut = table.get(0x402000) ?? '';
    assert.ok(Buffer.byteLength(cut) <= MAX_SYMBOL_NAME_BYTES && Buffer.byteLength(cut) >= MAX_SYMBOL_NAME_BYTES - 1);
    assert.ok(!cut.includes('\ufffd'), 'no split character');
    assert.ok(long.startsWith(cut));
  });

  test('without asked PCs every named PC is read (saved .sym files), and a non-answer is an error', () => {
    assert.equal(parseSymbolResponse(Buffer.from('num_symbols: 1\n0x1 a\n0x2 b\n')).size, 2);
    assert.throws(() => parseSymbolResponse('<html>'), /num_symbols/);
  });
});

describe('ByteBudget', () => {
  test('waiters are served in order as bytes come back; one past its deadline fails Busy', async () => {
    const budget = new ByteBudget(100);
    assert.ok(budget.tryTake(80));
    const order: string[] = [];
    const first = budget.take(50, Date.now() + 5000, 'first').then(() => order.push('first'));
    const second = budget.take(10, Date.now() + 5000, 'second').then(() => order.push('second'));
    // FIFO: the small one does not overtake the waiting large one.
    assert.equal(budget.tryTake(10), false);
    const late = budget.take(60, Date.now() + 50, 'late');
    await assert.rejects(late, (err: unknown) => err instanceof CaptureError && err.code === 'Busy');
    budget.give(80);
    await Promise.all([first, second]);
    assert.deepEqual(order, ['first', 'second']);
    assert.equal(budget.inUse, 60);
    assert.ok(budget.peak <= 100);
  });

  test('shared fairly between tenants: one tenant\'s waiting large answer never holds up another\'s small one, and none holds more than its share while others ask', async () => {
    const budget = new ByteBudget(100);
    assert.ok(budget.tryTake(60, 'team-a'));
    const order: string[] = [];
    // team-a waits for 60 more: they do not fit.
    const big = budget.take(60, Date.now() + 5000, 'big', 'team-a').then(() => order.push('a:60'));
    // team-b holds nothing: its small answer passes the waiting large one (strict FIFO made it wait).
    assert.equal(budget.tryTake(10, 'team-b'), true);
    // team-b's next one fits the free bytes (30) and its share (50 of 100 between two tenants): taken too.
    assert.equal(budget.tryTake(25, 'team-b'), true);
    // Past its share (35 + 20 > 50): it waits, behind nobody of its own.
    const over = budget.take(20, Date.now() + 5000, 'over', 'team-b').then(() => order.push('b:20'));
    // Within a tenant, first come first served: team-a's small one waits behind its own large one.
    assert.equal(budget.tryTake(1, 'team-a'), false);
    budget.give(60, 'team-a');
    await big;
    assert.deepEqual(order, ['a:60'], 'team-a holds nothing: its answer is served as soon as it fits');
    budget.give(35, 'team-b');
    await over;
    assert.deepEqual(order, ['a:60', 'b:20']);
    assert.equal(budget.heldByTenant('team-a'), 60);
    assert.equal(budget.heldByTenant('team-b'), 20);
    assert.ok(budget.peak <= 100);
  });

  test('more than the whole budget is TooLarge at once', async () => {
    await assert.rejects(new ByteBudget(10).take(11, Date.now() + 1000, 'x'), (err: unknown) => err instanceof CaptureError && err.code === 'TooLarge');
  });
});

describe('BinaryKnowledgeCache', () => {
  const learn = (cache: BinaryKnowledgeCache, key: string, tenant: string, names: number, nameLength = 1000): void => {
    const knowledge = cache.binary(key, tenant);
    for (let i = 0; i < names; i++) knowledge.symbols.set(i, `${key}.${'x'.repeat(nameLength)}${i}`);
    cache.learned(key);
  };

  test('a tenant over its share loses only its own least recently used binaries', () => {
    const cache = new BinaryKnowledgeCache({ maxBytes: 10_000_000, maxBytesPerTenant: 3_000_000 });
    learn(cache, 'b1', 'team-b', 500);
    const neighbour = cache.bytes('team-b');
    for (let i = 0; i < 20; i++) learn(cache, `a${i}`, 'team-a', 1000);
    assert.ok(cache.bytes('team-a') <= 3_000_000);
    assert.ok(cache.has('a19') && !cache.has('a0'), 'the newest stays, the oldest went');
    assert.equal(cache.bytes('team-b'), neighbour);
  });

  test('over the whole budget the tenant holding the most loses first', () => {
    const cache = new BinaryKnowledgeCache({ maxBytes: 5_000_000, maxBytesPerTenant: 3_000_000 });
    learn(cache, 'b1', 'team-b', 1000);
    learn(cache, 'a1', 'team-a', 1400);
    learn(cache, 'a2', 'team-a', 1400);
    learn(cache, 'c1', 'team-c', 1400);
    assert.ok(cache.bytes() <= 5_000_000);
    assert.ok(cache.has('b1') && cache.has('c1'), 'the smaller holders keep theirs');
    assert.ok(!cache.has('a1'));
  });

  test('past the number of binaries, the tenant with the most binaries loses its oldest', () => {
    const cache = new BinaryKnowledgeCache({ maxBinaries: 4 });
    learn(cache, 'b1', 'team-b', 10);
    for (let i = 0; i < 10; i++) learn(cache, `a${i}`, 'team-a', 10);
    assert.ok(cache.has('b1'), "pods without a build id (one binary each) cannot push out another tenant's");
    assert.ok(cache.has('a9') && !cache.has('a0'));
  });

  test('one binary larger than a share is emptied, keeping when it was last asked', () => {
    const cache = new BinaryKnowledgeCache({ maxBytes: 10_000_000, maxBytesPerTenant: 500_000 });
    const knowledge = cache.binary('big', 'team-a');
    knowledge.lastDebug1At = 123;
    learn(cache, 'big', 'team-a', 1000);
    assert.equal(knowledge.symbols.size, 0);
    assert.equal(knowledge.lastDebug1At, 123);
    assert.equal(cache.bytes('team-a'), 0);
  });

  test('estimated bytes count names, record keys and frames', () => {
    const bytes = knowledgeBytes({ symbols: new Map([[1, 'a'.repeat(100)]]), hiddenFrames: new Map([['k'.repeat(50), ['runtime.mallocgc', 'runtime.makemap']]]) });
    assert.ok(bytes > 100 + 50 + 31 && bytes < 1000);
  });
});

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { Function as PprofFunction, Label, Line, Location, Mapping, Profile, Sample, StringTable, ValueType } from 'pprof-format';
import { decodeHeapProfile, decodeProtoHeap, ProfileError, type Frame, type HeapProfile, type HeapRecord } from '../../src/pprof/index.js';
import { repoPath } from '../support/paths.js';

/**
 * The proto decoder against a reference: the records a general protobuf
 * reader (pprof-format) gives, turned into HeapRecords by the rules the
 * decoder documents. Unknown locations add no frames and address 0, unknown
 * functions are '?', a later entry with the same id wins, the object size is
 * the `bytes` label or else bytes / objects.
 */
const num = (v: number | bigint | undefined): number => Number(v ?? 0);

function referenceDecode(raw: Uint8Array): HeapProfile {
  const p = Profile.decode(raw);
  const strings = p.stringTable.strings;
  const str = (i: number | bigint | undefined): string => strings[num(i)] ?? '';
  const functions = new Map(p.function.map((f) => [num(f.id), f]));
  const locations = new Map(p.location.map((l) => [num(l.id), l]));
  const typeIndex = new Map(p.sampleType.map((t, i) => [str(t.type), i] as const));
  const col = (name: string): number => typeIndex.get(name) ?? -1;
  const [inuseObjects, inuseSpace, allocObjects, allocSpace] = ['inuse_objects', 'inuse_space', 'alloc_objects', 'alloc_space'].map(col) as [number, number, number, number];
  const bytesKey = strings.indexOf('bytes');
  const records = p.sample.map((sample): HeapRecord => {
    const values = sample.value.map(num);
    const at = (c: number): number => (c < 0 ? 0 : (values[c] ?? 0));
    const sizes = sample.label.filter((l) => bytesKey >= 0 && num(l.key) === bytesKey).map((l) => num(l.num));
    const objects = at(allocObjects) || at(inuseObjects);
    const ids = sample.locationId.map(num);
    return {
      stack: ids.flatMap((id) =>
        (locations.get(id)?.line ?? []).map((line): Frame => {
          const fn = functions.get(num(line.functionId));
          return { function: fn ? str(fn.name) : '?', file: fn ? str(fn.filename) : '', line: num(line.line) };
        }),
      ),
      addresses: ids.map((id) => num(locations.get(id)?.address)),
      hiddenFrames: 'absent',
      objectSize: sizes.length > 0 ? (sizes.at(-1) as number) : objects > 0 ? Math.round((at(allocSpace) || at(inuseSpace)) / objects) : 0,
      inuseObjects: at(inuseObjects),
      inuseBytes: at(inuseSpace),
      allocObjects: at(allocObjects),
      allocBytes: at(allocSpace),
    };
  });
  const buildId = p.mapping[0] && num(p.mapping[0].buildId) > 0 ? str(p.mapping[0].buildId) || undefined : undefined;
  const timeNanos = num(p.timeNanos);
  return { format: 'proto', time: timeNanos > 0 ? new Date(Math.floor(timeNanos / 1e6)) : undefined, memProfileRate: num(p.period) || 512 * 1024, buildId, records };
}

/** Records of one location sequence share one stack array and one address array (attribution works once per stack). */
function assertSharedStacks(raw: Uint8Array, profile: HeapProfile): void {
  const byIds = new Map<string, HeapRecord>();
  Profile.decode(raw).sample.forEach((sample, i) => {
    const key = sample.locationId.map(num).join(',');
    const record = profile.records[i] as HeapRecord;
    const first = byIds.get(key);
    if (!first) byIds.set(key, record);
    else assert.ok(first.stack === record.stack && first.addresses === record.addresses, `sample ${i} shares the stack of its location ids`);
  });
}

function expectSame(raw: Uint8Array, what: string): HeapProfile {
  const ours = decodeProtoHeap(raw);
  assert.deepEqual(ours, referenceDecode(raw), what);
  assertSharedStacks(raw, ours);
  return ours;
}

function isProfileError(err: unknown): boolean {
  assert.ok(err instanceof ProfileError, `a ProfileError, not ${String(err)}`);
  assert.ok(!err.message.includes('\n'));
  return true;
}

/** Every recorded capture in the repository: the go1.19 and go1.26 fixtures and the verdict streams (classic and swiss maps, a service with real libraries). */
function recordedCaptures(): string[] {
  const dirs = [
    ...['go1.19', 'go1.26'].map((v) => repoPath('test', 'pprof', 'testdata', v)),
    ...readdirSync(repoPath('test', 'verdicts', 'testdata', 'streams')).map((d) => repoPath('test', 'verdicts', 'testdata', 'streams', d)),
  ];
  return dirs.flatMap((dir) => readdirSync(dir).filter((f) => f.endsWith('.pb.gz')).map((f) => `${dir}/${f}`));
}

/** Hand-made protobuf bytes, for what no well-behaved writer produces. */
function varint(value: bigint | number): number[] {
  let v = BigInt(value);
  const out: number[] = [];
  do {
    const low = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? low | 0x80 : low);
  } while (v > 0n);
  return out;
}
const field = (number: number, wire: number): number[] => varint((number << 3) | wire);
const bytesField = (number: number, body: number[]): number[] => [...field(number, 2), ...varint(body.length), ...body];
const stringTable = (...strings: string[]): number[] => strings.flatMap((s) => bytesField(6, [...Buffer.from(s)]));
const heapTypes = (): number[] => [...bytesField(1, [...field(1, 0), 1]), ...bytesField(1, [...field(1, 0), 2])];
/** A profile with in-use columns (strings 1, 2) and the given samples, locations and functions. */
const heapBytes = (...parts: number[][]): Uint8Array => new Uint8Array([...heapTypes(), ...parts.flat(), ...stringTable('', 'inuse_objects', 'inuse_space', 'bytes', 'main.f', 'main.go')]);

describe('the proto decoder reads what a general protobuf reader reads', () => {
  test('on every recorded capture of the Go 1.19 and 1.26 targets and the services target', () => {
    const files = recordedCaptures();
    assert.ok(files.length >= 100, `${files.length} captures`);
    for (const file of files) {
      const profile = expectSame(gunzipSync(readFileSync(file)), file);
      assert.ok(profile.records.length > 0, file);
    }
  });

  test('on a large profile of many shapes: inlined frames, deep and shared stacks, big sizes, sparse ids, repeated ids', () => {
    const strings = new StringTable();
    const functions: PprofFunction[] = [];
    const locations: Location[] = [];
    for (let i = 1; i <= 3000; i++) {
      // Every tenth function has an id far from the rest (a writer other than Go's), which no array can be indexed by.
      const id = i % 10 === 0 ? 2n ** 40n + BigInt(i) : BigInt(i);
      functions.push(new PprofFunction({ id, name: strings.dedup(`example.com/svc/pkg${i % 31}.fn${i}`), filename: strings.dedup(`/src/ünïcode/pkg${i % 31}/f.go`) }));
      const lines = Array.from({ length: 1 + (i % 3) }, (_, k) => new Line({ functionId: k === 0 ? id : BigInt(1 + ((i + k) % 2999)), line: (i * 7 + k) % 5000 }));
      locations.push(new Location({ id: i, address: 0x400000 + i * 0x40 + (i % 5 === 0 ? 2 ** 47 : 0), line: lines }));
    }
    // A later location with an id seen before replaces it.
    locations.push(new Location({ id: 17, address: 0x7777, line: [new Line({ functionId: 3, line: 1 })] }));
    const bytes = strings.dedup('bytes');
    const samples = Array.from({ length: 20_000 }, (_, s) => {
      const depth = 1 + (s % 37);
      const locationId = Array.from({ length: depth }, (_, k) => 1 + ((s * 13 + k * 101) % 1500));
      const size = 8 << s % 20;
      const objects = s % 11;
      return new Sample({ locationId, value: [objects * 3, objects * 3 * size, objects, objects * size], label: s % 4 === 0 ? [] : [new Label({ key: bytes, num: size })] });
    });
    const raw = new Profile({
      sampleType: ['alloc_objects', 'alloc_space', 'inuse_objects', 'inuse_space'].map((t) => new ValueType({ type: strings.dedup(t), unit: strings.dedup(t.endsWith('space') ? 'bytes' : 'count') })),
      sample: samples,
      mapping: [new Mapping({ id: 1, buildId: strings.dedup('b1d0') })],
      location: locations,
      function: functions,
      stringTable: strings,
      timeNanos: 1_764_000_000_123_456_789n,
      period: 524288,
    }).encode();
    const profile = expectSame(raw, 'synthetic');
    assert.equal(profile.records.length, 20_000);
    assert.equal(profile.buildId, 'b1d0');
  });
});

describe('hostile proto bytes: a clear ProfileError or the same records as the reference, never a crash or an unbounded allocation', () => {
  const location = (id: bigint | number, fn: bigint | number, address = 0x1000): number[] =>
    bytesField(4, [...field(1, 0), ...varint(id), ...field(3, 0), ...varint(address), ...bytesField(4, [...field(1, 0), ...varint(fn), ...field(2, 0), 7])]);
  const fn = (id: bigint | number): number[] => bytesField(5, [...field(1, 0), ...varint(id), ...field(2, 0), 4, ...field(4, 0), 5]);
  const sample = (ids: (bigint | number)[], values: (bigint | number)[], size?: number): number[] =>
    bytesField(2, [...bytesField(1, ids.flatMap(varint)), ...bytesField(2, values.flatMap(varint)), ...(size === undefined ? [] : bytesField(3, [...field(1, 0), 3, ...field(3, 0), ...varint(size)]))]);

  test('a profile cut short anywhere', () => {
    const raw = gunzipSync(readFileSync(repoPath('test', 'pprof', 'testdata', 'go1.26', 'heap-008.pb.gz')));
    let errors = 0;
    for (let cut = 0; cut < raw.length; cut += Math.max(1, Math.floor(raw.length / 400))) {
      const part = raw.subarray(0, cut);
      try {
        // Cut between two messages, it is a shorter profile: then it reads as the reference reads it.
        assert.deepEqual(decodeProtoHeap(part), referenceDecode(part));
      } catch (err) {
        if (err instanceof assert.AssertionError) throw err;
        isProfileError(err);
        errors++;
      }
    }
    assert.ok(errors > 300, `${errors} cuts refused`);
  });

  test('bytes changed at random in a real profile', () => {
    const raw = gunzipSync(readFileSync(repoPath('test', 'pprof', 'testdata', 'go1.19', 'heap-008.pb.gz')));
    let seed = 12345;
    const random = (n: number): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
    for (let round = 0; round < 500; round++) {
      const copy = new Uint8Array(raw);
      for (let k = 0; k < 1 + random(8); k++) copy[random(copy.length)] = random(256);
      try {
        decodeProtoHeap(copy);
      } catch (err) {
        isProfileError(err);
      }
    }
  });

  test('an overlong varint, a varint or a field past the end, an unknown wire type', () => {
    assert.throws(() => decodeProtoHeap(new Uint8Array([...field(9, 0), ...Array(10).fill(0x80), 0x01])), (err) => isProfileError(err) && /longer than 10 bytes/.test((err as Error).message));
    assert.throws(() => decodeProtoHeap(new Uint8Array([...field(9, 0), 0x80, 0x80])), (err) => isProfileError(err) && /varint runs past the end/.test((err as Error).message));
    assert.throws(() => decodeProtoHeap(new Uint8Array([...field(2, 2), ...varint(2n ** 40n), 1, 2, 3])), (err) => isProfileError(err) && /past the end/.test((err as Error).message));
    assert.throws(() => decodeProtoHeap(new Uint8Array([...field(7, 3)])), (err) => isProfileError(err) && /wire type 3/.test((err as Error).message));
    // Location ids and values as fixed32 are no heap profile's.
    assert.throws(() => decodeProtoHeap(heapBytes(bytesField(2, [...field(1, 5), 1, 0, 0, 0]))), (err) => isProfileError(err) && /wire type 5/.test((err as Error).message));
    // A packed run whose last varint crosses into the next field.
    assert.throws(() => decodeProtoHeap(heapBytes(bytesField(2, [...field(1, 2), 1, 0x81, 0x01]))), (err) => isProfileError(err) && /overruns/.test((err as Error).message));
  });

  test('location and function ids out of any dense range, and ids no table has', () => {
    const huge = 2n ** 52n + 3n;
    const raw = heapBytes(location(huge, 2n ** 60n), fn(2n ** 60n), location(1, 99), sample([huge, 1, 424242], [2, 8192], 4096), sample([1, huge], [1, 64]));
    const profile = expectSame(raw, 'sparse and missing ids');
    assert.deepEqual(profile.records[0]?.stack, [
      { function: 'main.f', file: 'main.go', line: 7 },
      { function: '?', file: '', line: 7 },
    ]);
    assert.deepEqual(profile.records[0]?.addresses, [0x1000, 0x1000, 0]);
    assert.equal(profile.records[1]?.objectSize, 64);
  });

  test('huge counts and sizes stay numbers; a million empty samples cost their records only', () => {
    const raw = heapBytes(location(1, 1), fn(1), sample([1], [2n ** 62n + 2n ** 40n, 2n ** 63n - 1n], 2 ** 40), sample([1], [1, 2n ** 53n]));
    const profile = expectSame(raw, 'huge values');
    assert.equal(profile.records[0]?.inuseObjects, 2 ** 62 + 2 ** 40);
    assert.equal(profile.records[0]?.inuseBytes, 2 ** 63);
    assert.equal(profile.records[1]?.objectSize, 2 ** 53);
    const empty = new Uint8Array([...heapTypes(), ...Array.from({ length: 1_000_000 }, () => [0x12, 0x00]).flat(), ...stringTable('', 'inuse_objects', 'inuse_space')]);
    const many = decodeProtoHeap(empty);
    assert.equal(many.records.length, 1_000_000);
    assert.ok(many.records.every((r) => r.stack === many.records[0]?.stack && r.stack.length === 0));
  });

  test('a stack of 100,000 frames', () => {
    const ids = Array.from({ length: 100_000 }, (_, i) => 1 + (i % 2));
    const profile = expectSame(heapBytes(location(1, 1), location(2, 1, 0x2000), fn(1), sample(ids, [1, 16])), 'deep stack');
    assert.equal(profile.records[0]?.stack.length, 100_000);
  });

  test('strings that are not UTF-8 read as TextDecoder reads them', () => {
    const raw = new Uint8Array([...heapTypes(), ...location(1, 1), ...bytesField(5, [...field(1, 0), 1, ...field(2, 0), 3]), ...sample([1], [1, 8]), ...stringTable('', 'inuse_objects', 'inuse_space'), ...bytesField(6, [0x6d, 0xff, 0xc3, 0x28, 0x61])]);
    const profile = expectSame(raw, 'bad UTF-8');
    assert.equal(profile.records[0]?.stack[0]?.function, new TextDecoder().decode(new Uint8Array([0x6d, 0xff, 0xc3, 0x28, 0x61])));
  });

  test('gzipped or not, through decodeHeapProfile, the same', () => {
    const gz = readFileSync(repoPath('test', 'pprof', 'testdata', 'go1.26', 'heap-001.pb.gz'));
    assert.deepEqual(decodeHeapProfile(gz), referenceDecode(gunzipSync(gz)));
  });
});

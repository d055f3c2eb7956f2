import { Profile } from 'pprof-format';
import { ProfileError } from './errors.js';
import type { Frame, HeapProfile, HeapRecord } from './types.js';

type Numeric = number | bigint;
const toNumber = (value: Numeric): number => (typeof value === 'bigint' ? Number(value) : value);

/** Decodes an inflated proto heap profile (as served by /debug/pprof/heap). */
export function decodeProtoHeap(bytes: Uint8Array): HeapProfile {
  let profile: Profile;
  try {
    profile = Profile.decode(bytes);
  } catch (err) {
    throw new ProfileError('NotAProfile', `not a pprof protobuf: ${(err as Error).message}`);
  }
  const strings = profile.stringTable.strings;
  const str = (index: Numeric): string => strings[toNumber(index)] ?? '';

  const typeIndex = new Map<string, number>();
  profile.sampleType.forEach((sampleType, i) => typeIndex.set(str(sampleType.type), i));
  if (typeIndex.size === 0 || strings.length < 2) {
    throw new ProfileError('NotAProfile', 'not a pprof protobuf: no sample types');
  }
  const column = (name: string): number => {
    const index = typeIndex.get(name);
    if (index === undefined) {
      const found = [...typeIndex.keys()].join(', ');
      throw new ProfileError('NotAHeapProfile', `not a heap profile: no ${name} sample type (has: ${found})`);
    }
    return index;
  };
  const inuseObjects = column('inuse_objects');
  const inuseSpace = column('inuse_space');
  const allocObjects = column('alloc_objects');
  const allocSpace = column('alloc_space');

  const functions = new Map<number, { name: string; file: string }>();
  for (const fn of profile.function) {
    functions.set(toNumber(fn.id), { name: str(fn.name), file: str(fn.filename) });
  }
  const locations = new Map<number, Frame[]>();
  const addressOf = new Map<number, number>();
  for (const location of profile.location) {
    addressOf.set(toNumber(location.id), toNumber(location.address));
    // pprof lists inlined frames innermost first, matching leaf-first stacks.
    const frames = location.line.map((line): Frame => {
      const fn = functions.get(toNumber(line.functionId));
      return { function: fn?.name ?? '?', file: fn?.file ?? '', line: toNumber(line.line) };
    });
    locations.set(toNumber(location.id), frames);
  }

  const bytesKey = strings.indexOf('bytes');
  const records: HeapRecord[] = [];
  // Samples of one stack differ only by object size: share one stack array,
  // so later stages can work once per stack instead of once per sample.
  const stacks = new Map<string, { stack: Frame[]; addresses: number[] }>();
  for (const sample of profile.sample) {
    const value = (i: number): number => toNumber(sample.value[i] ?? 0);
    const stackKey = sample.locationId.join(',');
    let shared = stacks.get(stackKey);
    if (!shared) {
      shared = { stack: [], addresses: sample.locationId.map((id) => addressOf.get(toNumber(id)) ?? 0) };
      for (const id of sample.locationId) for (const frame of locations.get(toNumber(id)) ?? []) shared.stack.push(frame);
      stacks.set(stackKey, shared);
    }
    const { stack, addresses } = shared;
    const sizeLabel = bytesKey < 0 ? undefined : sample.label.find((l) => toNumber(l.key) === bytesKey);
    const objects = value(allocObjects) || value(inuseObjects);
    const objectSize = sizeLabel
      ? toNumber(sizeLabel.num)
      : objects > 0
        ? Math.round((value(allocSpace) || value(inuseSpace)) / objects)
        : 0;
    records.push({
      stack,
      hiddenFrames: 'absent',
      addresses,
      objectSize,
      inuseObjects: value(inuseObjects),
      inuseBytes: value(inuseSpace),
      allocObjects: value(allocObjects),
      allocBytes: value(allocSpace),
    });
  }

  const timeNanos = toNumber(profile.timeNanos);
  const mainMapping = profile.mapping[0];
  const buildId = mainMapping ? str(mainMapping.buildId) || undefined : undefined;
  return {
    format: 'proto',
    time: timeNanos > 0 ? new Date(Math.floor(timeNanos / 1e6)) : undefined,
    memProfileRate: toNumber(profile.period) || 512 * 1024,
    buildId,
    records,
  };
}

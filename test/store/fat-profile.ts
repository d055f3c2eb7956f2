import { gzipSync } from 'node:zlib';
import { Function as PprofFunction, Label, Line, Location, Profile, Sample, StringTable, ValueType } from 'pprof-format';

/**
 * A hostile tenant's heap profile (review 3, finding 1): a valid gzipped
 * proto of `functions` sites, each its own function with a name of about
 * `nameLength` characters, each claiming `objectsPerSite` objects of 8 KiB
 * in use and allocated. 60,000 × 400 × 10 is 0.9 MB compressed, and was a
 * 92 MB stored summary before the caps.
 *
 * `padBytes` (review 4, finding 2) adds one string of that length that no
 * frame uses: strings are decoded only when a frame names them, so the pad
 * costs the worker nothing to decode and the store its whole length; with
 * `gzip: false` no inflation ratio applies to it either.
 */
export function fatProfile(options: { functions: number; nameLength: number; objectsPerSite: number; padBytes?: number; gzip?: boolean }): Buffer {
  const strings = new StringTable();
  const pad = 'x'.repeat(options.nameLength);
  const file = strings.dedup('/src/main.go');
  const functions: PprofFunction[] = [];
  const locations: Location[] = [];
  const samples: Sample[] = [];
  const bytesLabel = strings.dedup('bytes');
  for (let i = 1; i <= options.functions; i++) {
    functions.push(new PprofFunction({ id: i, name: strings.dedup(`main.f${pad}${i}`), filename: file }));
    locations.push(new Location({ id: i, address: 0x400000 + i * 16, line: [new Line({ functionId: i, line: 10 })] }));
    const n = options.objectsPerSite;
    samples.push(new Sample({ locationId: [i], value: [n, n * 8192, n, n * 8192], label: [new Label({ key: bytesLabel, num: 8192 })] }));
  }
  if (options.padBytes) strings.dedup('p'.repeat(options.padBytes));
  return encodeHeap(strings, functions, locations, samples, options.gzip !== false);
}

/**
 * A hostile heap profile of one library line fed by `callers` distinct
 * callers of the main module (each its own function), each claiming
 * `objectsPerCaller` objects of 8 KiB, caller i a little more than caller
 * i - 1: a usage per caller, each above the 64 KiB filter.
 */
export function manyCallersProfile(options: { callers: number; objectsPerCaller: number; callerName?: (i: number) => string }): Buffer {
  const strings = new StringTable();
  const library = strings.dedup('/go/pkg/mod/github.com/acme/cache@v1.0.0/cache.go');
  const main = strings.dedup('/src/main.go');
  const bytesLabel = strings.dedup('bytes');
  const functions: PprofFunction[] = [new PprofFunction({ id: 1, name: strings.dedup('github.com/acme/cache.(*Cache).Set'), filename: library })];
  const locations: Location[] = [new Location({ id: 1, address: 0x400010, line: [new Line({ functionId: 1, line: 61 })] })];
  const samples: Sample[] = [];
  for (let i = 1; i <= options.callers; i++) {
    functions.push(new PprofFunction({ id: i + 1, name: strings.dedup(options.callerName?.(i) ?? `main.caller${i}`), filename: main }));
    locations.push(new Location({ id: i + 1, address: 0x500000 + i * 16, line: [new Line({ functionId: i + 1, line: 10 })] }));
    const n = options.objectsPerCaller + i;
    samples.push(new Sample({ locationId: [1, i + 1], value: [n, n * 8192, n, n * 8192], label: [new Label({ key: bytesLabel, num: 8192 })] }));
  }
  return encodeHeap(strings, functions, locations, samples, true);
}

/** A heap profile (the four sample types Go writes, its default rate, stamped now) of these tables, gzipped as Go serves it or not. */
function encodeHeap(strings: StringTable, functions: PprofFunction[], locations: Location[], samples: Sample[], gzip: boolean): Buffer {
  const profile = new Profile({
    stringTable: strings,
    sampleType: ['alloc_objects', 'alloc_space', 'inuse_objects', 'inuse_space'].map((t) => new ValueType({ type: strings.dedup(t), unit: strings.dedup(t.endsWith('space') ? 'bytes' : 'count') })),
    sample: samples,
    location: locations,
    function: functions,
    period: 524288,
    timeNanos: BigInt(Date.now()) * 1_000_000n,
  });
  const encoded = profile.encode();
  return gzip ? gzipSync(encoded, { level: 1 }) : Buffer.from(encoded);
}

import { Function as PprofFunction, Line, Location, Profile, Sample, StringTable, ValueType } from 'pprof-format';

/**
 * A tenant's fat but cheap heap profile (review 4, finding 2): a valid,
 * plain (not gzipped, so no ratio cap applies) proto of `sites` sites with
 * names of about `nameLength` characters, each claiming 80 KiB in use (so
 * the summary keeps them), plus one string of `padBytes` that no frame
 * uses: strings are decoded only when a frame names them, so the pad costs
 * the worker nothing to decode and the store its whole length.
 */
export function paddedProfile(options: { sites: number; nameLength: number; padBytes: number }): Buffer {
  const strings = new StringTable();
  const pad = 'x'.repeat(options.nameLength);
  const file = strings.dedup('/src/main.go');
  const functions: PprofFunction[] = [];
  const locations: Location[] = [];
  const samples: Sample[] = [];
  for (let i = 1; i <= options.sites; i++) {
    functions.push(new PprofFunction({ id: i, name: strings.dedup(`main.site${pad}${i}`), filename: file }));
    locations.push(new Location({ id: i, address: 0x400000 + i * 16, line: [new Line({ functionId: i, line: 10 })] }));
    samples.push(new Sample({ locationId: [i], value: [10, 10 * 8192, 10, 10 * 8192] }));
  }
  strings.dedup('p'.repeat(options.padBytes));
  const profile = new Profile({
    stringTable: strings,
    sampleType: ['alloc_objects', 'alloc_space', 'inuse_objects', 'inuse_space'].map((t) => new ValueType({ type: strings.dedup(t), unit: strings.dedup(t.endsWith('space') ? 'bytes' : 'count') })),
    sample: samples,
    location: locations,
    function: functions,
    period: 524288,
    timeNanos: BigInt(Date.now()) * 1_000_000n,
  });
  return Buffer.from(profile.encode());
}

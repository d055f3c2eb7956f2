/** The floor of `mapleak analyze` for `npm run bench`: read, gunzip and decode each file, nothing else. */
import { readFileSync } from 'node:fs';
import { decodeHeapProfile } from '../src/pprof/decode.js';

let records = 0;
for (const file of process.argv.slice(2)) records += decodeHeapProfile(readFileSync(file)).records.length;
console.log(records);

/** The floor of `mapleak analyze` for `npm run bench`: read, gunzip and decode each file as the CLI does (into columns), nothing else. */
import { readFileSync } from 'node:fs';
import { decodeHeapColumns } from '../src/pprof/decode.js';

let records = 0;
for (const file of process.argv.slice(2)) records += decodeHeapColumns(readFileSync(file)).stackOf.length;
console.log(records);

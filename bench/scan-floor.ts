/**
 * The least any JavaScript reader of these files can do, for `npm run bench`:
 * read each file, gunzip it with the native zlib, and step over every varint
 * of the inflated bytes, building nothing. No decoder in Node does less, so
 * a goal below this floor (plus node's start-up) is out of reach for a Node
 * CLI, whatever the decoder and the engine.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

let varints = 0;
let checksum = 0; // used, so the walk cannot be optimised away
for (const file of process.argv.slice(2)) {
  const bytes = gunzipSync(readFileSync(file));
  for (let pos = 0; pos < bytes.length; ) {
    let value = 0;
    let shift = 0;
    let byte: number;
    do {
      byte = bytes[pos++] as number;
      value |= (byte & 0x7f) << shift;
      shift += 7;
    } while (byte & 0x80 && shift < 35);
    checksum ^= value;
    varints++;
  }
}
console.log(varints, checksum);

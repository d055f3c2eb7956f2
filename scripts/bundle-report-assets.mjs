// Copies uPlot (script, stylesheet, licence) next to the compiled report
// module, so an HTML report inlines it and opens with no network access.
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const uplotDir = dirname(dirname(require.resolve('uplot')));
const vendor = 'dist/src/report/vendor';
mkdirSync(vendor, { recursive: true });
for (const [from, to] of [
  ['dist/uPlot.iife.min.js', 'uPlot.iife.min.js'],
  ['dist/uPlot.min.css', 'uPlot.min.css'],
  ['LICENSE', 'uPlot.LICENSE'],
]) {
  copyFileSync(join(uplotDir, from), join(vendor, to));
}

import { readFile } from 'node:fs/promises';
import type { ReportAssets } from './html.js';

let cached: Promise<ReportAssets> | undefined;

/** uPlot as copied next to this module by the build (scripts/bundle-report-assets.mjs). */
export function loadReportAssets(): Promise<ReportAssets> {
  cached ??= (async () => {
    const read = (name: string): Promise<string> => readFile(new URL(`./vendor/${name}`, import.meta.url), 'utf8');
    const [uplotJs, uplotCss] = await Promise.all([read('uPlot.iife.min.js'), read('uPlot.min.css')]);
    return { uplotJs, uplotCss };
  })().catch((err: unknown) => {
    cached = undefined;
    throw new Error(`report assets missing (run npm run build): ${(err as Error).message}`);
  });
  return cached;
}

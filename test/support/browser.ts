import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** Debian's chromium (scripts/setup.sh installs it); playwright cannot download browsers here. */
export const CHROMIUM = process.env.MAPLEAK_CHROMIUM ?? '/usr/bin/chromium';

export function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: run bash scripts/setup.sh (installs Debian's chromium)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export interface ChartShape {
  id: string;
  /** Per series (x axis left out): its label and how many points it has (non-null values). */
  series: { label: string; points: number }[];
  width: number;
}

/** What the page's uPlot instances hold, read in the page. */
export const readCharts = `(() => (window.mapleakCharts || []).map((u) => ({
  id: u.root.parentElement ? u.root.parentElement.id : '',
  width: u.width,
  series: u.series.slice(1).map((s, i) => ({ label: s.label, points: u.data[i + 1].filter((v) => v !== null && v !== undefined).length })),
})))()`;

import { printable } from '../api/bounded.js';
import type { LiveEvent } from './analyze.js';
import { formatBytes } from './units.js';

/** Where progress goes: stderr, never stdout (stdout carries the report or the JSON). */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

/**
 * Draws a live series' progress. On a terminal: one status line rewritten in
 * place (captures done, next in N s, bytes fetched); elsewhere: one plain
 * line per capture. Warnings and failures always get a line of their own,
 * after the status line is cleared, so nothing runs into what follows.
 */
export class ProgressReporter {
  private statusShown = false;
  private ticker: NodeJS.Timeout | undefined;
  private readonly live: boolean;

  constructor(
    private readonly stream: ProgressStream,
    private readonly options: { quiet?: boolean; prefix?: string; now?: () => number; forcePlain?: boolean } = {},
  ) {
    this.live = !options.forcePlain && stream.isTTY === true;
  }

  readonly onEvent = (event: LiveEvent): void => {
    if (this.options.quiet) return;
    this.stopTicker();
    const prefix = this.options.prefix ?? '';
    switch (event.type) {
      case 'warning':
        return this.line(`${prefix}warning: ${event.message}`);
      case 'failed':
        return this.line(`${prefix}capture ${event.capture}/${event.count} failed: ${event.message}`);
      case 'captured': {
        const detail = `${event.records} records, evidence ${event.evidence}; read ${event.read}, ${formatBytes(event.bytes)} in ${Math.round(event.milliseconds)} ms`;
        if (this.live) return this.status(`${prefix}capture ${event.capture}/${event.count} done (${detail}); ${formatBytes(event.totalBytes)} fetched`);
        return this.line(`${prefix}capture ${event.capture}/${event.count}: ${detail}`);
      }
      case 'waiting': {
        if (!this.live) return;
        const now = this.options.now ?? Date.now;
        const draw = (): void => {
          const seconds = Math.max(0, Math.ceil((event.at - now()) / 1000));
          this.status(`${prefix}${event.done}/${event.count} captures done, ${formatBytes(event.totalBytes)} fetched; next in ${seconds}s`);
        };
        draw();
        this.ticker = setInterval(draw, 1000);
        this.ticker.unref();
        return;
      }
    }
  };

  /** Clears the status line (call before printing the report). */
  finish(): void {
    this.stopTicker();
    if (this.statusShown) this.stream.write('\r\x1b[K');
    this.statusShown = false;
  }

  // Warnings and failures can carry a target's text: one printable line each, the only escape ours.
  private status(text: string): void {
    this.stream.write(`\r\x1b[K${printable(text, Number.POSITIVE_INFINITY)}`);
    this.statusShown = true;
  }

  private line(text: string): void {
    if (this.statusShown) this.stream.write('\r\x1b[K');
    this.statusShown = false;
    this.stream.write(`${printable(text, Number.POSITIVE_INFINITY)}\n`);
  }

  private stopTicker(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = undefined;
  }
}

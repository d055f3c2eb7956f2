/**
 * The control of `npm run bench:round`: an idle sibling process that only
 * measures its own event-loop delay (perf_hooks.monitorEventLoopDelay),
 * round by round as the bench asks. It does no work, so what it sees is
 * the machine not running it (other processes, the other engineers' tests),
 * not stalls of its own: the bench prints it beside the round's figures.
 *
 * Messages: 'start' begins a round's histogram; 'stop' answers { maxMs, p99Ms }.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

let histogram: IntervalHistogram | undefined;
process.on('message', (message: string) => {
  if (message === 'start') {
    histogram = monitorEventLoopDelay({ resolution: 5 });
    histogram.enable();
  } else if (message === 'stop' && histogram) {
    histogram.disable();
    process.send?.({ maxMs: histogram.max / 1e6, p99Ms: histogram.percentile(99) / 1e6 });
    histogram = undefined;
  }
});
process.on('disconnect', () => process.exit(0));

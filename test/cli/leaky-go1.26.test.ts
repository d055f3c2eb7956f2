import { leakyEndToEnd } from '../support/leaky-e2e.js';

// go.mod says go 1.26, as real services do: net/http/pprof's patterns are GET-only.
leakyEndToEnd('1.26', { goLine: 'current' });

import { leakyEndToEnd } from '../support/leaky-e2e.js';

// Classic maps; the go line is current (a Go 1.19 toolchain builds it all the same).
leakyEndToEnd('1.19', { goLine: 'current' });

import { leakyEndToEnd } from '../support/leaky-e2e.js';

// go.mod says go 1.19: the Go 1.26 toolchain keeps the pre-1.22 mux (POST would work too).
leakyEndToEnd('1.26', { goLine: 'old', offline: false });

import { leakyEndToEnd } from '../support/leaky-e2e.js';

// pprof mounted on the service's own mux under another prefix; nothing at /debug/pprof/.
leakyEndToEnd('1.26', { goLine: 'current', pprofPrefix: '/internal/pprof/', offline: false });

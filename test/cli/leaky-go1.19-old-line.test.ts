import { leakyEndToEnd } from '../support/leaky-e2e.js';

leakyEndToEnd('1.19', { goLine: 'old', offline: false });

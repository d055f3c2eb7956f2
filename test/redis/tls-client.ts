// A child process for test/redis/tls.test.ts: connects the way the operator
// does (settings from the environment, redisConnection), with
// NODE_EXTRA_CA_CERTS read by Node at start as in the chart's pods; writes and
// reads a key and prints one JSON line: the topology status, or the error.
import { parseRedisConfig, redisConnection, redisTopologyStatus } from '../../src/queue/connection.js';

const config = parseRedisConfig({}, process.env);
const client = redisConnection(config, 'store');
let lastError = '';
client.on('error', (err: Error) => (lastError = err.message));
const waitMs = Number(process.env.TLS_CLIENT_WAIT_MS ?? 8000);
const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer in ${waitMs} ms: ${lastError}`)), waitMs).unref());
try {
  await Promise.race([client.set('{tls}:probe', 'over tls'), timeout]);
  const value = await Promise.race([client.get('{tls}:probe'), timeout]);
  console.log(JSON.stringify({ value, status: redisTopologyStatus(config, client) }));
} catch (err) {
  console.log(JSON.stringify({ error: (err as Error).message }));
} finally {
  client.disconnect();
}

// `npm run demo:cli`: builds the leaking Go target, runs it on loopback and
// lets `mapleak analyze --url` watch it live, then stops it.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const binary = join(root, '.cache', 'demo', 'leaky');
mkdirSync(join(root, '.cache', 'demo'), { recursive: true });
console.log('demo: building test/targets/leaky (a Go program that leaks map memory on purpose)');
const build = spawnSync('go', ['build', '-o', binary, '.'], { cwd: join(root, 'test', 'targets', 'leaky'), stdio: 'inherit', env: { ...process.env, GOTOOLCHAIN: 'local' } });
if (build.status !== 0) process.exit(1);

const target = spawn(binary, ['-addr', '127.0.0.1:0', '-max-lifetime', '5m'], { stdio: ['ignore', 'pipe', 'ignore'] });
const url = await new Promise((resolve, reject) => {
  target.stdout.on('data', (chunk) => {
    const match = /listening on (\S+)/.exec(chunk.toString());
    if (match) resolve(`http://${match[1]}`);
  });
  target.once('exit', () => reject(new Error('the demo target exited')));
});
console.log(`demo: target serves pprof at ${url}; capturing 6 times, 3s apart\n`);
await new Promise((resolve) => setTimeout(resolve, 3000));
const analyze = spawn(process.execPath, [join(root, 'dist', 'src', 'cli', 'main.js'), 'analyze', '--url', url, '--every', '3s', '--count', '6'], { stdio: 'inherit' });
const code = await new Promise((resolve) => analyze.once('exit', resolve));
target.kill();
console.log(`\ndemo: done. Try it on your own service: mapleak analyze --url http://HOST:PORT [--json]`);
process.exit(code ?? 1);

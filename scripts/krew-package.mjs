// `npm run krew:package`: the archive krew installs (the built plugin with its
// production dependencies; Node.js comes from the user's PATH) and the krew
// manifest's version, uri and sha256 for it.
//
//   node scripts/krew-package.mjs [--base-uri https://.../releases/download/vX]
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const root = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const { values } = parseArgs({ options: { 'base-uri': { type: 'string', default: `https://github.com/mapleakprobe/mapleakprobe/releases/download/v${version}` } } });
if (!existsSync(join(root, 'dist', 'src', 'plugin', 'main.js'))) {
  console.error('krew-package: run npm run build first');
  process.exit(1);
}
const out = join(root, '.cache', 'krew');
const stage = join(out, 'kubectl-mapleak');
rmSync(out, { recursive: true, force: true });
mkdirSync(stage, { recursive: true });
for (const path of ['package.json', 'package-lock.json', 'LICENSE', 'bin', join('dist', 'src'), 'crds']) {
  if (existsSync(join(root, path))) cpSync(join(root, path), join(stage, path), { recursive: true });
}
const run = (command, args, cwd) => {
  const result = spawnSync(command, args, { cwd, stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed`);
};
run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], stage);
const archive = join(out, `kubectl-mapleak-v${version}.tar.gz`);
run('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-czf', archive, 'kubectl-mapleak'], out);
const sha256 = createHash('sha256').update(readFileSync(archive)).digest('hex');
const manifestPath = join(root, 'plugins', 'krew', 'mapleak.yaml');
const manifest = readFileSync(manifestPath, 'utf8')
  .replace(/^( {2}version: ).*$/m, `$1v${version}`)
  .replace(/^( {6}uri: ).*$/m, `$1${values['base-uri']}/kubectl-mapleak-v${version}.tar.gz`)
  .replace(/^( {6}sha256: ).*$/m, `$1${sha256}`);
writeFileSync(join(out, 'mapleak.yaml'), manifest);
console.log(`krew-package: ${archive}\nkrew-package: sha256 ${sha256}\nkrew-package: manifest ${join(out, 'mapleak.yaml')} (copy it over plugins/krew/mapleak.yaml for a release)`);

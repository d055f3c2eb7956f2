// The Dockerfile built by a real builder: Debian's buildah (`apt-get install
// buildah`; the test is skipped without it), offline. The base images cannot
// be pulled here, so the test first commits local stand-ins under the exact
// names the Dockerfile uses, made from this Debian 12 machine's own files:
// node:<N>-bookworm-slim gets /usr/local/bin/node, npm, /bin/sh and
// /usr/bin/env; distroless nodejs<N>-debian12:nonroot gets /nodejs/bin/node,
// user 65532 and no shell. Then `buildah bud --pull=never` builds the real
// Dockerfile with the real .dockerignore (RUN in chroot isolation, the
// machine's npm cache mounted), and the test checks the image config that
// buildah wrote and the files of the final image, and runs the image's
// ENTRYPOINT + CMD from its root filesystem (read-only, tmpfs /tmp, uid/gid
// 65532, the image's environment only) against a real API server and Redis.
// What the stand-ins cannot show: that the real bases behave the same (Node
// <N> itself, glibc, distroless's layout), see README "Container image".
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stopCluster, type Cluster } from '../cluster/cluster.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { freePort } from '../support/operator-process.js';
import { startClusterWithCrd } from '../support/probes.js';
import { repoPath } from '../support/paths.js';
import { checkOperatorProcess, IMAGE_UID } from './container.js';
import { parseDockerfile } from './dockerfile.js';

const BUILDAH = '/usr/bin/buildah';
const CLUSTER = 'image-oci';
const TAG = 'localhost/mapleakprobe:test';
const skip = process.getuid?.() !== 0 ? 'needs root' : !existsSync(BUILDAH) ? 'buildah is not installed (apt-get install buildah)' : false;

interface ImageConfig {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
  Labels?: Record<string, string>;
}

/** The stand-in base images, committed under the names the Dockerfile pulls. */
function standInScript(nodeImage: string, distrolessImage: string): string {
  return `set -euo pipefail
libs() { ldd "$@" | grep -o '/lib[^ ]*' | sort -u; }
c=$(buildah_ from scratch); m=$(buildah_ mount "$c")
mkdir -p "$m/usr/local/bin" "$m/usr/local/lib/node_modules" "$m/usr/bin" "$m/bin" "$m/lib/x86_64-linux-gnu" "$m/lib64" "$m/tmp" "$m/root" "$m/etc"
chmod 1777 "$m/tmp"
cp "$(readlink -f "$(command -v node)")" "$m/usr/local/bin/node"
cp -a "$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")" "$m/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$m/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$m/usr/local/bin/npx"
cp /usr/bin/dash "$m/bin/sh"; cp /usr/bin/env "$m/usr/bin/env"
for lib in $(libs "$(command -v node)" /usr/bin/dash /usr/bin/env); do cp -L "$lib" "$m$lib"; done
printf 'root:x:0:0:root:/root:/bin/sh\\n' > "$m/etc/passwd"; printf 'root:x:0:\\n' > "$m/etc/group"
buildah_ umount "$c" >/dev/null
buildah_ config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env npm_config_prefer_offline=true --env npm_config_update_notifier=false --cmd node "$c"
buildah_ commit -q "$c" "${nodeImage}" >/dev/null; buildah_ rm "$c" >/dev/null

c=$(buildah_ from scratch); m=$(buildah_ mount "$c")
mkdir -p "$m/nodejs/bin" "$m/lib/x86_64-linux-gnu" "$m/lib64" "$m/tmp" "$m/etc" "$m/home/nonroot"
chmod 1777 "$m/tmp"
cp "$(readlink -f "$(command -v node)")" "$m/nodejs/bin/node"
for lib in $(libs "$(command -v node)"); do cp -L "$lib" "$m$lib"; done
printf 'root:x:0:0:root:/root:/sbin/nologin\\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\\n' > "$m/etc/passwd"
buildah_ umount "$c" >/dev/null
buildah_ config --user 65532 --workingdir /home/nonroot --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --entrypoint '["/nodejs/bin/node"]' "$c"
buildah_ commit -q "$c" "${distrolessImage}" >/dev/null; buildah_ rm "$c" >/dev/null
`;
}

describe('the Dockerfile built by buildah on stand-in base images', { skip }, () => {
  let storage: string;
  let buildah: (args: string[], timeoutMs?: number) => string;
  let config: ImageConfig;
  let container: string | undefined;
  let rootfs: string;
  let cluster: Cluster | undefined;
  let clusterTried = false;
  let redis: RedisServer | undefined;

  before(() => {
    storage = mkdtempSync(join(tmpdir(), 'mapleak-buildah-'));
    const driver = process.env.BUILDAH_STORAGE_DRIVER ?? 'overlay';
    const global = ['--storage-driver', driver, '--root', join(storage, 'root'), '--runroot', join(storage, 'run')];
    buildah = (args, timeoutMs = 60_000) => {
      const result = spawnSync(BUILDAH, [...global, ...args], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
      assert.equal(result.status, 0, `buildah ${args.join(' ')} failed:\n${result.stdout.slice(-4000)}\n${result.stderr.slice(-4000)}`);
      return result.stdout;
    };
    const dockerfile = parseDockerfile(readFileSync(repoPath('Dockerfile'), 'utf8'));
    const node = dockerfile.stages[0]?.base ?? '';
    const distroless = dockerfile.stages.at(-1)?.base ?? '';
    const script = standInScript(node.includes('/') ? node : `docker.io/library/${node}`, distroless);
    const result = spawnSync('bash', ['-c', `buildah_() { ${BUILDAH} ${global.join(' ')} "$@"; }\n${script}`], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(result.status, 0, `stand-in base images:\n${result.stderr}`);
  });

  after(async () => {
    await redis?.stop();
    if (clusterTried) await stopCluster(CLUSTER);
    if (container) spawnSync(BUILDAH, ['--storage-driver', process.env.BUILDAH_STORAGE_DRIVER ?? 'overlay', '--root', join(storage, 'root'), '--runroot', join(storage, 'run'), 'rm', container]);
    if (storage) {
      // Layers of overlay storage can be mount points; buildah unmounts them when it removes the images.
      spawnSync(BUILDAH, ['--storage-driver', process.env.BUILDAH_STORAGE_DRIVER ?? 'overlay', '--root', join(storage, 'root'), '--runroot', join(storage, 'run'), 'rmi', '--all', '--force']);
      rmSync(storage, { recursive: true, force: true, maxRetries: 3 });
    }
  });

  test('buildah bud --pull=never builds the Dockerfile (all three stages, .dockerignore applied)', { timeout: 300_000 }, (t) => {
    const started = Date.now();
    buildah(['bud', '--pull=never', '--isolation', 'chroot', '--layers=false', '-v', `${join(homedir(), '.npm')}:/root/.npm`, '-t', TAG, '-f', repoPath('Dockerfile'), repoPath()], 300_000);
    t.diagnostic(`built in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    const inspect = JSON.parse(buildah(['inspect', '--type', 'image', TAG])) as { OCIv1: { config: ImageConfig } };
    config = inspect.OCIv1.config;
  });

  test('image config as buildah wrote it: user, entrypoint, cmd, env, port, labels', () => {
    assert.equal(config.User, `${IMAGE_UID}:${IMAGE_UID}`);
    assert.deepEqual(config.Entrypoint, ['/nodejs/bin/node', '/app/dist/src/cli/main.js']);
    assert.deepEqual(config.Cmd, ['operator']);
    assert.equal(config.WorkingDir, '/app');
    assert.deepEqual(Object.keys(config.ExposedPorts ?? {}), ['8080/tcp']);
    assert.ok(config.Env?.includes('NODE_ENV=production'));
    const pkg = JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { version: string; license: string };
    assert.equal(config.Labels?.['org.opencontainers.image.version'], pkg.version);
    assert.equal(config.Labels?.['org.opencontainers.image.licenses'], pkg.license);
    assert.ok(config.Labels?.['org.opencontainers.image.title']);
  });

  test('image files: /app holds dist/src, production node_modules and package.json, all root-owned and read-only to 65532', () => {
    container = buildah(['from', '--pull-never', TAG]).trim();
    rootfs = buildah(['mount', container]).trim();
    const app = join(rootfs, 'app');
    assert.deepEqual(readdirSync(app).sort(), ['dist', 'node_modules', 'package.json']);
    assert.deepEqual(readdirSync(join(app, 'dist')), ['src']);
    const lock = JSON.parse(readFileSync(repoPath('package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.entries(lock.packages).filter(([path, entry]) => path.startsWith('node_modules/') && entry.dev === true).map(([path]) => path);
    assert.deepEqual(devOnly.filter((path) => existsSync(join(app, path))), [], 'no dev-only package');
    assert.ok(!existsSync(join(app, 'node_modules', 'typescript')));
    const writable = execFileSync('find', [app, '(', '-user', String(IMAGE_UID), '-o', '-perm', '/022', ')', '-not', '-type', 'l'], { encoding: 'utf8' }).trim();
    assert.equal(writable, '', 'nothing in /app belongs to 65532 or is group/world-writable');
    assert.equal(existsSync(join(rootfs, 'bin', 'sh')), false, 'no shell in the runtime image');
    assert.equal(existsSync(join(rootfs, 'usr', 'local', 'bin', 'npm')), false, 'no npm in the runtime image');
  });

  /** ENTRYPOINT + CMD (or args) in the image's root filesystem: read-only, tmpfs /tmp, uid/gid 65532, image env only. */
  const inImage = (args: string[], setup = ''): { command: string; argv: string[]; env: NodeJS.ProcessEnv } => {
    const [uid, gid] = (config.User ?? '').split(':');
    const script = [
      'set -e',
      'mount --bind "$ROOTFS" "$ROOTFS"',
      'mount -o remount,bind,ro "$ROOTFS"',
      'mount -t tmpfs -o mode=1777,size=64m tmpfs "$ROOTFS/tmp"',
      setup,
      `exec env -u ROOTFS -u KUBECONFIG_SOURCE chroot --userspec=${uid}:${gid} --groups= "$ROOTFS" "$@"`,
    ].join('\n');
    const env = Object.fromEntries((config.Env ?? []).map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]));
    return { command: 'unshare', argv: ['--mount', '--propagation', 'private', 'sh', '-c', script, 'container', ...(config.Entrypoint ?? []), ...args], env: { ...env, ROOTFS: rootfs } };
  };

  test('`docker run IMAGE --help`: the entrypoint works from the image root filesystem as 65532', () => {
    const { command, argv, env } = inImage(['--help']);
    const result = spawnSync(command, argv, { encoding: 'utf8', env, timeout: 30_000 });
    assert.equal(result.status, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /^Usage:\n\s+mapleak analyze/);
  });

  test('`docker run IMAGE` (CMD operator) against a real API server and Redis: healthy, ready, exit 0 on SIGTERM', { timeout: 150_000 }, async (t) => {
    clusterTried = true;
    ({ cluster } = await startClusterWithCrd(CLUSTER));
    redis = await startRedis();
    const port = await freePort();
    // The kubeconfig is placed in the container's /tmp, readable by 65532, like a mounted Secret.
    const kubeconfig = join(storage, 'kubeconfig');
    execFileSync('cp', [cluster.kubeconfigPath, kubeconfig]);
    chmodSync(kubeconfig, 0o644);
    const { command, argv, env } = inImage(
      [...(config.Cmd ?? []), '--kubeconfig', '/tmp/kubeconfig', '--redis-url', redis.url, '--port', String(port), '--identity', 'image-oci-test'],
      'cp "$KUBECONFIG_SOURCE" "$ROOTFS/tmp/kubeconfig"; chmod 0444 "$ROOTFS/tmp/kubeconfig"',
    );
    await checkOperatorProcess(t, command, argv, { ...env, KUBECONFIG_SOURCE: kubeconfig, LOG_LEVEL: 'info' }, port);
  });
});

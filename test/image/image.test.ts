// The container image, checked without a container engine (none on this
// machine, and base images cannot be pulled). The test reads the Dockerfile
// and replays it: the build context is the repository filtered by
// .dockerignore, every stage's COPY and RUN steps run in a folder of their
// own (RUN with the host's npm and Node), and the runtime stage is assembled
// exactly as its COPY lines say. Then the entrypoint starts as the image's
// user (65532:65532) with a read-only root filesystem and a fresh tmpfs on
// /tmp (a mount namespace of its own), with the image's environment only:
// `--help`, and `operator` against a real local API server and Redis, until
// SIGTERM. What this cannot show: the base image layers themselves (Node 24,
// distroless's /nodejs/bin/node, glibc); the replay runs the host's Node.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, posix } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stopCluster, type Cluster } from '../cluster/cluster.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { freePort } from '../support/operator-process.js';
import { startClusterWithCrd } from '../support/probes.js';
import { repoPath } from '../support/paths.js';
import { checkOperatorProcess } from './container.js';
import { copyContext, copyInto, dockerignore, execForm, parseCopy, parseDockerfile, parsePairs, substitute, type Stage } from './dockerfile.js';

const CLUSTER = 'image';
const dockerfile = parseDockerfile(readFileSync(repoPath('Dockerfile'), 'utf8'));
const ignore = dockerignore(readFileSync(repoPath('.dockerignore'), 'utf8'));
const pkg = JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { version: string; engines: { node: string }; dependencies: Record<string, string>; devDependencies: Record<string, string> };
const final = dockerfile.stages.at(-1) as Stage;

const all = (stage: Stage, op: string): string[] => stage.instructions.filter((i) => i.op === op).map((i) => i.args);
const one = (stage: Stage, op: string): string => {
  const found = all(stage, op);
  assert.equal(found.length, 1, `one ${op} in stage ${stage.name}`);
  return found[0] ?? '';
};
const envOf = (stage: Stage): Record<string, string> => Object.assign({}, ...all(stage, 'ENV').map(parsePairs)) as Record<string, string>;

describe('Dockerfile', () => {
  test('multi-stage: build with dev dependencies, production dependencies, runtime', () => {
    assert.deepEqual(dockerfile.stages.map((s) => s.name), ['build', 'deps', 'runtime']);
    const [build, deps] = dockerfile.stages as [Stage, Stage, Stage];
    assert.ok(all(build, 'RUN').some((run) => /^npm ci\b/.test(run) && !run.includes('--omit=dev')), 'build stage: npm ci with dev dependencies');
    assert.ok(all(build, 'RUN').includes('npm run build'));
    assert.ok(all(deps, 'RUN').some((run) => /^npm ci\b.*--omit=dev/.test(run)), 'deps stage: npm ci --omit=dev');
    assert.deepEqual(all(final, 'RUN'), [], 'runtime stage runs nothing (distroless has no shell, and no npm)');
    // The base image's user is 65532: a WORKDIR that creates /app would give it to that user. COPY first.
    const ops = final.instructions.map((i) => i.op);
    assert.ok(ops.indexOf('WORKDIR') > ops.lastIndexOf('COPY'), 'runtime WORKDIR comes after the COPYs that create it');
    for (const copy of all(final, 'COPY').map(parseCopy)) assert.ok(copy.from === 'build' || copy.from === 'deps', `runtime copies only from the build stages: ${JSON.stringify(copy)}`);
  });

  test('Node: a current LTS major, ≥ 20, that package.json engines allows; the same in every stage', () => {
    const major = Number(dockerfile.args.NODE_MAJOR);
    assert.ok(Number.isInteger(major) && major >= 20 && major % 2 === 0, `NODE_MAJOR ${dockerfile.args.NODE_MAJOR} is an LTS line (even, ≥ 20)`);
    const minimum = Number(/^>=\s*(\d+)/.exec(pkg.engines.node)?.[1]);
    assert.ok(major >= minimum, `engines ${pkg.engines.node} allows Node ${major}`);
    const [build, deps] = dockerfile.stages as [Stage, Stage, Stage];
    assert.equal(build.base, `node:${major}-bookworm-slim`);
    assert.equal(deps.base, `node:${major}-bookworm-slim`);
    assert.equal(final.base, `gcr.io/distroless/nodejs${major}-debian12:nonroot`);
  });

  test('runtime: numeric non-root user, production env, entrypoint, port, OCI labels', () => {
    const user = one(final, 'USER');
    assert.match(user, /^\d+:\d+$/, 'numeric uid:gid (runAsNonRoot can verify it)');
    const [uid, gid] = user.split(':').map(Number);
    assert.ok(uid !== 0 && gid !== 0, 'not root');
    assert.equal(uid, 65532);
    const env = envOf(final);
    assert.equal(env.NODE_ENV, 'production');
    assert.deepEqual(execForm(one(final, 'ENTRYPOINT')), ['/nodejs/bin/node', '/app/dist/src/cli/main.js']);
    assert.deepEqual(execForm(one(final, 'CMD')), ['operator']);
    assert.equal(one(final, 'EXPOSE'), '8080');
    const labels = Object.assign({}, ...all(final, 'LABEL').map(parsePairs)) as Record<string, string>;
    for (const key of ['title', 'description', 'licenses', 'version']) assert.ok(labels[`org.opencontainers.image.${key}`], `label org.opencontainers.image.${key}`);
    assert.equal(labels['org.opencontainers.image.version'], pkg.version);
  });

  test('.dockerignore: Docker pattern semantics', () => {
    for (const path of ['node_modules', 'node_modules/x/index.js', 'src/node_modules/y', 'dist/src/cli/main.js', '.git/HEAD', '.cluster/dev/kubeconfig', '.cache/demo/leaky', 'test/cluster/cluster.ts', 'bench/run.ts', 'charts/x/Chart.yaml', 'manifests/rbac.yaml', 'README.md', 'src/a.log']) {
      assert.equal(ignore.ignored(path), true, `${path} is kept out`);
    }
    for (const path of ['package.json', 'package-lock.json', 'tsconfig.json', 'src/cli/main.ts', 'src/README.txt', 'srcx']) {
      assert.equal(ignore.ignored(path), false, `${path} is in the context`);
    }
    const sample = dockerignore('/a/*.txt\n!a/keep.txt\n**/tmp\nb?\n[cd]x\n');
    assert.equal(sample.ignored('a/x.txt'), true);
    assert.equal(sample.ignored('a/keep.txt'), false);
    assert.equal(sample.ignored('a/b/x.txt'), false, '* never crosses /');
    assert.equal(sample.ignored('x/y/tmp/z'), true);
    assert.equal(sample.ignored('b1'), true);
    assert.equal(sample.ignored('b12'), false);
    assert.equal(sample.ignored('cx/d'), true);
  });
});

describe('the image, replayed without a container engine', { skip: process.getuid?.() !== 0 ? 'needs root (setpriv, mount namespace, the local cluster)' : false }, () => {
  let work: string;
  let appRoot: string;
  let image: { env: Record<string, string>; workdir: string; entrypoint: string[]; cmd: string[]; user: string };
  const stageRoots = new Map<string, string>();
  let cluster: Cluster | undefined;
  let clusterTried = false;
  let redis: RedisServer | undefined;
  let failed = false;

  /** An image path (/app/...) inside a stage's folder. */
  const inStage = (stage: string, path: string): string => join(stageRoots.get(stage) ?? '', path);

  before(async () => {
    // Not under /tmp: the started process gets a fresh tmpfs there. Not in the checkout either: Node
    // would find the repository's package.json above /app. Parents must be traversable by uid 65532.
    work = mkdtempSync('/var/tmp/mapleak-image-');
    chmodSync(work, 0o755);
  });

  after(async () => {
    await redis?.stop();
    if (clusterTried) await stopCluster(CLUSTER, { keepState: failed });
    if (work && !failed) rmSync(work, { recursive: true, force: true, maxRetries: 3 });
  });

  test('build context: the repository filtered by .dockerignore', () => {
    const copied = copyContext(repoPath(), join(work, 'context'), ignore);
    const tops = [...new Set(copied.map((p) => p.split('/')[0]))].sort();
    assert.deepEqual(tops, ['package-lock.json', 'package.json', 'scripts', 'src', 'tsconfig.json'], 'only what the Dockerfile copies is sent to the builder');
  });

  test('every stage replayed: COPY and RUN (npm ci, npm run build)', { timeout: 240_000 }, (t) => {
    const started = Date.now();
    for (const stage of dockerfile.stages) {
      const root = join(work, 'stages', stage.name);
      mkdirSync(root, { recursive: true, mode: 0o755 });
      stageRoots.set(stage.name, root);
      let workdir = '/';
      const env: Record<string, string> = {};
      for (const instruction of stage.instructions) {
        const args = substitute(instruction.args, { ...dockerfile.args, ...env });
        const at = `Dockerfile line ${instruction.line}`;
        switch (instruction.op) {
          case 'WORKDIR':
            workdir = posix.resolve(workdir, args);
            mkdirSync(inStage(stage.name, workdir), { recursive: true });
            break;
          case 'ENV':
            Object.assign(env, parsePairs(args));
            break;
          case 'COPY': {
            const copy = parseCopy(args);
            const dest = posix.resolve(workdir, copy.dest);
            const destIsDir = copy.dest.endsWith('/') || copy.dest === '.' || copy.sources.length > 1;
            for (const source of copy.sources) {
              let from: string;
              if (copy.from === undefined) {
                assert.ok(!isAbsolute(source) && !source.split('/').includes('..'), `${at}: context paths stay in the context`);
                from = join(work, 'context', source);
                assert.ok(existsSync(from), `${at}: COPY ${source}: not in the build context (left out by .dockerignore?)`);
              } else {
                assert.ok(stageRoots.has(copy.from), `${at}: --from=${copy.from} names an earlier stage`);
                from = inStage(copy.from, source);
                assert.ok(existsSync(from), `${at}: COPY --from=${copy.from} ${source}: the stage did not produce it`);
              }
              copyInto(from, inStage(stage.name, dest), destIsDir);
            }
            break;
          }
          case 'RUN': {
            // Only npm steps are replayed on the host; anything else would act on this machine, not on an image.
            assert.match(args, /^npm (ci|run build)\b/, `${at}: RUN ${args} cannot be replayed safely`);
            const result = spawnSync('sh', ['-c', args], {
              cwd: inStage(stage.name, workdir),
              encoding: 'utf8',
              env: {
                PATH: process.env.PATH ?? '/usr/bin:/bin',
                HOME: join(work, 'home'),
                // The npm cache of this machine: offline-capable, like a BuildKit cache mount.
                npm_config_cache: process.env.npm_config_cache ?? join(homedir(), '.npm'),
                npm_config_prefer_offline: 'true',
                npm_config_update_notifier: 'false',
                ...env,
              },
              timeout: 180_000,
            });
            assert.equal(result.status, 0, `${at}: RUN ${args} failed:\n${result.stdout}\n${result.stderr}`);
            break;
          }
          case 'USER':
          case 'EXPOSE':
          case 'LABEL':
          case 'ENTRYPOINT':
          case 'CMD':
          case 'ARG':
            break;
          default:
            assert.fail(`${at}: ${instruction.op} not replayed`);
        }
      }
      if (stage === final) {
        image = { env, workdir, entrypoint: execForm(one(stage, 'ENTRYPOINT')) ?? [], cmd: execForm(one(stage, 'CMD')) ?? [], user: one(stage, 'USER') };
      }
    }
    appRoot = inStage(final.name, image.workdir);
    t.diagnostic(`stages replayed in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  });

  test('runtime contents: compiled CLI and production dependencies only', () => {
    assert.deepEqual(readdirSync(appRoot).sort(), ['dist', 'node_modules', 'package.json']);
    assert.deepEqual(readdirSync(join(appRoot, 'dist')), ['src'], 'no tests, benchmarks or sources');
    assert.ok(existsSync(join(appRoot, 'dist', 'src', 'cli', 'main.js')));
    assert.ok(existsSync(join(appRoot, 'dist', 'src', 'report', 'vendor', 'uPlot.iife.min.js')), 'the HTML report carries uPlot');
    assert.equal(JSON.parse(readFileSync(join(appRoot, 'package.json'), 'utf8')).type, 'module');
    const modules = join(appRoot, 'node_modules');
    for (const dependency of Object.keys(pkg.dependencies)) assert.ok(existsSync(join(modules, dependency, 'package.json')), `${dependency} is installed`);
    const lock = JSON.parse(readFileSync(repoPath('package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    // Every devDependency that only tooling needs. (@types/node is also a runtime dependency of
    // @kubernetes/client-node, so npm rightly keeps it with --omit=dev: type files only.)
    const devOnlyDirect = Object.keys(pkg.devDependencies).filter((name) => lock.packages[`node_modules/${name}`]?.dev === true);
    for (const required of ['typescript', 'eslint', 'typescript-eslint', '@eslint/js', '@types/express']) assert.ok(devOnlyDirect.includes(required), `${required} is a dev-only devDependency`);
    for (const dev of devOnlyDirect) assert.equal(existsSync(join(modules, dev)), false, `devDependency ${dev} is not in the runtime`);
    // Nothing the lockfile marks dev-only, direct or transitive.
    const devOnly = Object.entries(lock.packages).filter(([path, entry]) => path.startsWith('node_modules/') && entry.dev === true).map(([path]) => path);
    const present = devOnly.filter((path) => existsSync(join(appRoot, path)));
    assert.deepEqual(present, [], 'no dev-only package from package-lock.json');
    assert.equal(existsSync(join(modules, '.bin', 'npm')), false);
  });

  /** The entrypoint as the container would run it: uid/gid 65532, read-only root and app, tmpfs /tmp, image env only. */
  const containerArgs = (args: string[]): { command: string; argv: string[] } => {
    const [node, script] = image.entrypoint;
    assert.equal(node, '/nodejs/bin/node', 'the replay maps distroless node to the host node');
    assert.ok(script?.startsWith(`${image.workdir}/`), 'the entrypoint script lives in the workdir');
    const hostScript = inStage(final.name, script ?? '');
    const [uid, gid] = image.user.split(':');
    const env = Object.entries({ PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...image.env }).map(([k, v]) => `${k}=${v}`);
    const setup = [
      'set -e',
      'mount --bind / /',
      'mount -o remount,bind,ro /',
      `mount --bind "$APP" "$APP"`,
      `mount -o remount,bind,ro "$APP"`,
      'mount -t tmpfs -o mode=1777,size=64m tmpfs /tmp',
      'cd "$APP"',
      `exec setpriv --reuid=${uid} --regid=${gid} --clear-groups -- env -i "$@"`,
    ].join('\n');
    return { command: 'unshare', argv: ['--mount', '--propagation', 'private', 'sh', '-c', setup, 'container', ...env, process.execPath, hostScript, ...args] };
  };

  test('runtime is read-only: nothing in it writable, files owned by root', () => {
    execFileSync('chmod', ['-R', 'a-w', appRoot]);
    const writable = execFileSync('find', [appRoot, '-perm', '/222', '-not', '-type', 'l'], { encoding: 'utf8' }).trim();
    assert.equal(writable, '', 'no writable file or directory');
    assert.equal(statSync(join(appRoot, 'dist', 'src', 'cli', 'main.js')).uid, 0);
  });

  test('`mapleak --help` runs as 65532 with the image environment', () => {
    const { command, argv } = containerArgs(['--help']);
    const result = spawnSync(command, argv, { encoding: 'utf8', timeout: 30_000, env: { APP: appRoot, PATH: process.env.PATH } });
    assert.equal(result.status, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /^Usage:\n\s+mapleak analyze/);
    assert.match(result.stdout, /mapleak operator/);
  });

  test('`mapleak operator` (the default CMD) against a real API server and Redis: healthy, ready, clean exit on SIGTERM', { timeout: 150_000 }, async (t) => {
    clusterTried = true;
    ({ cluster } = await startClusterWithCrd(CLUSTER));
    redis = await startRedis();
    // Like a mounted Secret: a kubeconfig file uid 65532 can read.
    const secret = join(work, 'secret');
    mkdirSync(secret, { mode: 0o755 });
    copyFileSync(cluster.kubeconfigPath, join(secret, 'kubeconfig'));
    chmodSync(join(secret, 'kubeconfig'), 0o644);
    chmodSync(secret, 0o555);

    const port = await freePort();
    const { command, argv } = containerArgs([...image.cmd, '--kubeconfig', join(secret, 'kubeconfig'), '--redis-url', redis.url, '--port', String(port), '--lease-namespace', 'default', '--identity', 'image-test']);
    try {
      await checkOperatorProcess(t, command, argv, { APP: appRoot, PATH: process.env.PATH ?? '/usr/bin:/bin', LOG_LEVEL: 'info' }, port);
    } catch (error) {
      failed = true;
      throw error;
    }
  });
});

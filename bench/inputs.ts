/** The bench's inputs: heap profiles written by bench/heapgen, built and run once per generator version, cached under .cache/bench. */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CACHE_DIR, repoPath } from '../test/support/paths.js';
import { generateFuncs } from './generate.js';

export const GO = process.env.GO ?? (existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : 'go');
export const FUNCS = 7000;

export function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, ...options });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.error?.message ?? result.stderr}`);
  return result.stdout;
}

/** Builds heapgen with its generated functions, once per source. */
export function buildGenerator(): { binary: string; key: string } {
  const funcs = generateFuncs(FUNCS);
  const sources = ['go.mod', 'main.go'].map((f) => readFileSync(repoPath('bench', 'heapgen', f), 'utf8'));
  const key = createHash('sha256').update(funcs).update(sources.join('\0')).digest('hex').slice(0, 12);
  const dir = join(CACHE_DIR, 'bench', `heapgen-${key}`);
  const binary = join(dir, 'heapgen');
  if (existsSync(binary)) return { binary, key };
  console.log(`building bench/heapgen with ${FUNCS} generated functions (once)...`);
  const staging = `${dir}.${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  cpSync(repoPath('bench', 'heapgen'), staging, { recursive: true });
  writeFileSync(join(staging, 'funcs.go'), funcs);
  run(GO, ['build', '-o', 'heapgen', '.'], { cwd: staging, env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod' } });
  rmSync(dir, { recursive: true, force: true });
  renameSync(staging, dir);
  return { binary, key };
}

/** Runs heapgen once into a cached directory; returns its profiles in order. */
export function profiles(generator: { binary: string; key: string }, name: string, args: string[]): string[] {
  const dir = join(CACHE_DIR, 'bench', `${name}-${generator.key}`);
  const list = (): string[] => readdirSync(dir).filter((f) => f.endsWith('.pb.gz')).sort().map((f) => join(dir, f));
  if (existsSync(join(dir, 'done'))) return list();
  console.log(`generating ${name} (heapgen ${args.join(' ')})...`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  run(generator.binary, ['-out', dir, ...args]);
  writeFileSync(join(dir, 'done'), '');
  return list();
}


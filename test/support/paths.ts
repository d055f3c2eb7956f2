import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Tests run from dist/test/...; sources and fixtures live in the repo root. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
export const CACHE_DIR = join(REPO_ROOT, '.cache');

export function repoPath(...parts: string[]): string {
  return join(REPO_ROOT, ...parts);
}

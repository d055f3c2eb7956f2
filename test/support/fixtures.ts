import { readFileSync } from 'node:fs';
import { repoPath } from './paths.js';

export type FixtureVersion = 'go1.19' | 'go1.26';
export const FIXTURE_VERSIONS: FixtureVersion[] = ['go1.19', 'go1.26'];

/** Real captures of test/targets/leaky, saved by `mapleak analyze --save`. */
export function fixturePath(version: FixtureVersion, file: string): string {
  return repoPath('test', 'pprof', 'testdata', version, file);
}

export function readFixture(version: FixtureVersion, file: string): Buffer {
  return readFileSync(fixturePath(version, file));
}

/** The lines of the target's SITE markers when the fixtures were captured. */
export function fixtureSites(): Map<string, number> {
  const data = JSON.parse(readFileSync(repoPath('test', 'pprof', 'testdata', 'sites.json'), 'utf8')) as {
    sites: Record<string, number>;
  };
  return new Map(Object.entries(data.sites));
}

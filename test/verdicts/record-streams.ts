/**
 * Records the capture streams the sampling-noise tests read
 * (test/verdicts/testdata/streams/<target>-go<version>/): each target built
 * with a current go line, run at the DEFAULT MemProfileRate (512 KiB, what
 * users run), captured every INTERVAL_MS from the moment it listens, the way
 * `mapleak analyze --url` captures (proto always; debug=1 and symbols only
 * while the binary shows records not seen before). Every capture is kept
 * as the CLI saves it, so the tests read them through the offline loader.
 *
 *   npm run build && node dist/test/verdicts/record-streams.js [seconds]
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureHeap } from '../../src/capture/capture.js';
import { directPprofClient } from '../../src/capture/direct.js';
import { BinaryKnowledgeCache } from '../../src/capture/binary-knowledge.js';
import { DEFAULT_MAX_PROFILE_BYTES } from '../../src/pprof/decode.js';
import { buildTarget, startTarget, type GoVersion } from '../support/go-targets.js';
import { repoPath } from '../support/paths.js';

const STREAMS_DIR = repoPath('test', 'verdicts', 'testdata', 'streams');
const INTERVAL_MS = 2_000;

async function record(target: 'leaky' | 'services', version: GoVersion, seconds: number): Promise<void> {
  const out = join(STREAMS_DIR, `${target}-go${version}`);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), `mapleak-record-${target}-`));
  const running = await startTarget(await buildTarget(target, version), work);
  try {
    const client = directPprofClient(`${running.url}/debug/pprof`, 20_000);
    const knowledge = new BinaryKnowledgeCache();
    const started = Date.now();
    const count = Math.floor((seconds * 1000) / INTERVAL_MS) + 1;
    for (let i = 0; i < count; i++) {
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, started + i * INTERVAL_MS - Date.now())));
      const capture = await captureHeap(client, { limits: { maxBytes: DEFAULT_MAX_PROFILE_BYTES }, knowledge, scope: running.url });
      assert.deepEqual(capture.warnings, [], `${target} go${version}: capture ${i + 1} complete`);
      const stem = join(out, `capture-${String(i + 1).padStart(3, '0')}`);
      writeFileSync(`${stem}.pb.gz`, capture.proto);
      if (capture.debug1) {
        writeFileSync(`${stem}.txt`, capture.debug1);
        writeFileSync(`${stem}.sym`, [`num_symbols: ${capture.symbols.size}`, ...[...capture.symbols].map(([pc, name]) => `0x${pc.toString(16)} ${name}`), ''].join('\n'));
      }
    }
  } finally {
    await running.stop();
    rmSync(work, { recursive: true, force: true });
  }
  console.log(`${out}: ${readdirSync(out).length} files`);
}

const seconds = Number(process.argv[2] ?? 80);
await Promise.all((['leaky', 'services'] as const).flatMap((target) => (['1.26', '1.19'] as GoVersion[]).map((version) => record(target, version, seconds))));

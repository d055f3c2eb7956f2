import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from '../../src/api/types.js';
import { slimProbe } from '../../src/controller/controller.js';
import { SupervisedInformer, type RawObject } from '../../src/controller/supervised-informer.js';
import { jsonLogger } from '../../src/observability/log.js';
import { stopCluster } from '../cluster/cluster.js';
import { startClusterWithCrd } from '../support/probes.js';

/**
 * One tenant without a ResourceQuota creating many large probes must not
 * take the controller's memory: the CRD bounds the whole selector, and the
 * controller caches only what it reads of each probe.
 */
const NS = 'team-a';
const CLUSTER = 'hyg-probe-size';

/** The reviewer's probe: every selector field at its own maximum (158 kB), which the CRD accepted. */
function reviewersSelector(): Record<string, unknown> {
  const matchExpressions = Array.from({ length: 32 }, (_, i) => ({
    key: `k${String(i).padStart(2, '0')}.${'a'.repeat(250)}/${'b'.repeat(60)}`,
    operator: 'In',
    values: Array.from({ length: 64 }, (_, j) => `v${String(j).padStart(2, '0')}${'x'.repeat(60)}`),
  }));
  const matchLabels = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`l${String(i).padStart(2, '0')}.example/${'c'.repeat(60)}`, 'd'.repeat(63)]));
  return { matchLabels, matchExpressions };
}

/**
 * The largest selector the CRD admits now, in characters and in strings:
 * 64 labels of 60 characters, 32 expressions of a 16-character key and 8
 * values of 15 (256 values): 3840 + 4352 = 8192 characters.
 */
function largestAdmitted(extra = 0): Record<string, unknown> {
  const matchLabels = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`l${String(i).padStart(2, '0')}.ex/${'c'.repeat(26)}`, 'd'.repeat(27 + (i === 0 ? extra : 0))]));
  const matchExpressions = Array.from({ length: 32 }, (_, i) => ({
    key: `k${String(i).padStart(2, '0')}${'e'.repeat(13)}`,
    operator: 'In',
    values: Array.from({ length: 8 }, (_, j) => `v${String(i).padStart(2, '0')}${j}${'x'.repeat(11)}`),
  }));
  return { matchLabels, matchExpressions };
}

function selectorCharacters(selector: Record<string, unknown>): number {
  const labels = Object.entries((selector.matchLabels ?? {}) as Record<string, string>).reduce((n, [k, v]) => n + k.length + v.length, 0);
  const expressions = ((selector.matchExpressions ?? []) as { key: string; values?: string[] }[]).reduce((n, e) => n + e.key.length + (e.values ?? []).reduce((m, v) => m + v.length, 0), 0);
  return labels + expressions;
}

describe('probe size: the CRD bounds the whole selector, the controller caches what it reads', () => {
  let kc: KubeConfig;
  let custom: CustomObjectsApi;

  before(async () => {
    const started = await startClusterWithCrd(CLUSTER);
    kc = started.kc;
    custom = kc.makeApiClient(CustomObjectsApi);
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: NS } } });
  });
  after(() => stopCluster(CLUSTER));

  const create = (name: string, selector: Record<string, unknown>): Promise<unknown> =>
    custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'MapLeakProbe', metadata: { name, namespace: NS }, spec: { selector } } });
  const refusal = async (name: string, selector: Record<string, unknown>): Promise<string> => {
    try {
      await create(name, selector);
    } catch (err) {
      assert.equal((err as { code?: number }).code, 422, String(err));
      return String((err as { body?: unknown }).body ?? err);
    }
    assert.fail(`${name} was accepted`);
  };

  test('the reviewer\'s 158 kB selector is refused; the largest admitted one is 8192 characters; one more, or a 257th value, is refused', async () => {
    assert.match(await refusal('reviewers', reviewersSelector()), /selector too large: its keys and values together must be at most 8192 characters/);
    assert.equal(selectorCharacters(largestAdmitted()), 8192);
    await create('largest', largestAdmitted());
    assert.match(await refusal('one-more', largestAdmitted(1)), /at most 8192 characters/);
    const values = Array.from({ length: 257 }, (_, i) => `v${i}`);
    const manyValues = { matchExpressions: [{ key: 'app', operator: 'In', values: values.slice(0, 64) }, { key: 'b', operator: 'In', values: values.slice(64, 128) }, { key: 'c', operator: 'In', values: values.slice(128, 192) }, { key: 'd', operator: 'In', values: values.slice(192, 256) }, { key: 'e', operator: 'In', values: values.slice(256) }] };
    assert.match(await refusal('many-values', manyValues), /may name at most 256 values in all/);
    await create('ordinary', { matchLabels: { app: 'checkout' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['web', 'api'] }] });
  });

  test('a selector value is a label value: one holding terminal escapes is refused (no pod could carry it, and the plugin prints the spec)', async () => {
    const escapes = { matchExpressions: [{ key: 'app', operator: 'In', values: ['\x1b]0;pwned\x07\x1b[2J\x1b[31mFAKE OK\x1b[0m'] }] };
    assert.match(await refusal('escapes', escapes), /spec\.selector\.matchExpressions\[0\]\.values\[0\]: Invalid value/);
    await create('label-values', { matchExpressions: [{ key: 'app', operator: 'In', values: ['checkout', 'v1.2_3-rc', ''] }] });
  });

  test('the controller\'s cache of 200 of the largest admitted probes, with the worker\'s conditions quoting their selectors: retained heap per probe, against the whole object', async () => {
    const count = 200;
    for (let i = 0; i < count; i += 20) await Promise.all(Array.from({ length: 20 }, (_, j) => create(`big-${i + j}`, largestAdmitted())));
    // As a worker's round writes them for a selector that matches nothing: the message quotes the selector.
    const quoted = JSON.stringify(largestAdmitted());
    const conditions = ['Capturing', 'Degraded'].map((type) => ({ type, status: type === 'Degraded' ? 'True' : 'False', reason: 'NoTargets', message: `No running pod matches (namespace ${NS}, selector "${quoted}").`.slice(0, 32_768), lastTransitionTime: new Date().toISOString() }));
    for (let i = 0; i < count; i += 20) {
      await Promise.all(Array.from({ length: 20 }, (_, j) =>
        custom.patchNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, name: `big-${i + j}`, body: { status: { conditions } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
      ));
    }
    v8.setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const retained = (): number => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    const informer = <S>(slim: (raw: RawObject) => S): SupervisedInformer<S> =>
      new SupervisedInformer<S>({ kc, path: `/apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}`, slim, watchTimeoutSeconds: 60, watchdogMs: 120_000, onChange: () => undefined, log: jsonLogger({ part: 'informer' }, 'warn') });
    const controllers = informer(slimProbe);
    const whole = informer((raw) => raw);
    try {
      const h0 = retained();
      await controllers.start();
      const h1 = retained();
      await whole.start();
      const h2 = retained();
      assert.ok(controllers.list().length >= count && whole.list().length >= count);
      const slimPerProbe = (h1 - h0) / count;
      const wholePerProbe = (h2 - h1) / count;
      console.log(`retained heap per probe: controller cache ${(slimPerProbe / 1024).toFixed(1)} KiB, whole object ${(wholePerProbe / 1024).toFixed(1)} KiB (the reviewer measured about 500 KiB of heap per probe of the 158 kB selector the CRD used to admit)`);
      assert.ok(slimPerProbe < 32 * 1024, `${(slimPerProbe / 1024).toFixed(1)} KiB per probe`);
      assert.ok(slimPerProbe < wholePerProbe / 2, 'the worker\'s conditions and the rest of the object are not cached');
    } finally {
      await Promise.all([controllers.stop(), whole.stop()]);
    }
  });
});

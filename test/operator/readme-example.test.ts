// The README's operator documentation against the real API: the first ```yaml
// block (the example MapLeakProbe) is created on a real kube-apiserver with the
// CRD applied and must come back with its fields kept and the schema's defaults
// applied; every field the README's spec and status tables document must exist
// in the CRD (and every field of the CRD must be documented); the `kubectl get
// mlp` example must show the CRD's printer columns; the metrics table must name
// every metric the operator exports. Starts (and tears down) its own cluster
// "readme".
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CoreV1Api, CustomObjectsApi, loadYaml, type KubeConfig } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from '../../src/api/types.js';
import { OperatorMetrics } from '../../src/observability/metrics.js';
import { applyManifestFile, loadKubeConfig, startCluster, stopCluster, waitForCrdsEstablished } from '../cluster/cluster.js';
import { repoPath } from '../support/paths.js';

const CLUSTER = 'readme';
const CRD_NAME = `${PLURAL}.${GROUP}`;

/**
 * The part of an OpenAPI v3 schema this test reads, as loadYaml returns it:
 * it deserializes a CRD into the client's V1JSONSchemaProps, which names the
 * `default` keyword `_default`.
 */
interface Schema {
  type?: string;
  _default?: unknown;
  properties?: Record<string, Schema>;
  items?: Schema;
}

interface PrinterColumn {
  name: string;
  jsonPath: string;
  priority?: number;
}

interface Crd {
  spec: { versions: { name: string; schema: { openAPIV3Schema: Schema }; additionalPrinterColumns?: PrinterColumn[] }[] };
}

type Json = Record<string, unknown>;

const readme = readFileSync(repoPath('README.md'), 'utf8');
const crd = loadYaml<Crd>(readFileSync(repoPath('crds', 'mapleakprobes.yaml'), 'utf8'));
const version = crd.spec.versions[0];
assert.ok(version, 'the CRD has a version');
const rootSchema = version.schema.openAPIV3Schema;
const specSchema = rootSchema.properties?.spec;
const statusSchema = rootSchema.properties?.status;
assert.ok(specSchema && statusSchema, 'the CRD schema has spec and status');

/** The body of the first block fenced exactly as ```yaml. */
function firstYamlBlock(markdown: string): string {
  const match = /^```yaml\n([\s\S]*?)^```$/m.exec(markdown);
  assert.ok(match?.[1], 'README.md has a ```yaml block');
  return match[1];
}

/** The lines of the section that starts with `heading` (up to the next heading of any level). */
function section(markdown: string, heading: string): string[] {
  const lines = markdown.split('\n');
  const start = lines.indexOf(heading);
  assert.ok(start >= 0, `README.md has a "${heading}" heading`);
  const rest = lines.slice(start + 1);
  const end = rest.findIndex((line) => /^#{1,6} /.test(line));
  return end >= 0 ? rest.slice(0, end) : rest;
}

/** Cells of the first markdown table in `lines`, header and separator row left out. */
function tableRows(lines: readonly string[]): string[][] {
  const first = lines.findIndex((line) => line.startsWith('|'));
  assert.ok(first >= 0, 'section has a table');
  const table: string[] = [];
  for (const line of lines.slice(first)) {
    if (!line.startsWith('|')) break;
    table.push(line);
  }
  return table.slice(2).map((row) =>
    row
      .split(/(?<!\\)\|/)
      .slice(1, -1)
      .map((cell) => cell.replace(/\\\|/g, '|').trim()),
  );
}

/** Field paths (`pprof.port`, `findings[].site.line`) from the first column of a table, with each row's other cells. */
function documentedFields(heading: string): Map<string, string[]> {
  const fields = new Map<string, string[]>();
  for (const [first, ...rest] of tableRows(section(readme, heading))) {
    const path = /^`([^`]+)`$/.exec(first ?? '')?.[1];
    assert.ok(path, `first cell of every row under "${heading}" is one backticked field path, got ${JSON.stringify(first)}`);
    assert.ok(!fields.has(path), `${path} is documented once under "${heading}"`);
    fields.set(path, rest);
  }
  assert.ok(fields.size > 0, `"${heading}" documents some fields`);
  return fields;
}

/** The schema at a documented path, `[]` stepping into array items. */
function schemaAt(root: Schema, path: string): Schema | undefined {
  let node: Schema | undefined = root;
  for (const part of path.split('.')) {
    const array = part.endsWith('[]');
    node = node?.properties?.[array ? part.slice(0, -2) : part];
    if (array) node = node?.type === 'array' ? node.items : undefined;
  }
  return node;
}

/**
 * The field paths of the schema a README table must document: every field
 * that is not an object with fields of its own (those are documented through
 * their fields), descending into object properties always and into array items only
 * where the README documents the items' fields (`targets[].name`), so that
 * standard shapes (conditions, matchExpressions) need one row, not one per field.
 */
function schemaPaths(node: Schema, documented: ReadonlySet<string>, prefix = ''): string[] {
  const paths: string[] = [];
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    const path = prefix ? `${prefix}.${name}` : name;
    // An object with fields is documented through its fields (or a row of its own).
    if (!(child.type === 'object' && child.properties) || documented.has(path)) paths.push(path);
    if (child.type === 'object') paths.push(...schemaPaths(child, documented, path));
    if (child.type === 'array' && child.items && [...documented].some((p) => p.startsWith(`${path}[].`))) {
      paths.push(...schemaPaths(child.items, documented, `${path}[]`));
    }
  }
  return paths;
}

/** What structural defaulting makes of `value`: absent properties with a default get it, recursively. */
function withDefaults(schema: Schema, value: unknown): unknown {
  if (schema.type !== 'object' || typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const out: Json = { ...(value as Json) };
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    if (out[name] === undefined && child._default !== undefined) out[name] = structuredClone(child._default);
    if (out[name] !== undefined) out[name] = withDefaults(child, out[name]);
  }
  return out;
}

function valueAt(object: unknown, path: string): unknown {
  let node = object;
  for (const part of path.split('.')) node = node && typeof node === 'object' ? (node as Json)[part] : undefined;
  return node;
}

const example = loadYaml<Json & { metadata: { name: string; namespace?: string }; spec: Json }>(firstYamlBlock(readme));
const namespace = example.metadata.namespace ?? 'default';
const specFields = documentedFields('### Spec fields');
const statusFields = documentedFields('### Status fields');

let kc: KubeConfig;
let custom: CustomObjectsApi;

before(async () => {
  await stopCluster(CLUSTER); // never reuse a cluster left behind by an earlier run
  const cluster = await startCluster({ name: CLUSTER });
  kc = loadKubeConfig(cluster);
  custom = kc.makeApiClient(CustomObjectsApi);
  await applyManifestFile(kc, repoPath('crds', 'mapleakprobes.yaml'));
  await waitForCrdsEstablished(kc, [CRD_NAME]);
});

after(async () => {
  await stopCluster(CLUSTER);
});

test('the README example is a MapLeakProbe that leaves some defaults to the API server', () => {
  assert.equal(example.apiVersion, `${GROUP}/${VERSION}`);
  assert.equal(example.kind, 'MapLeakProbe');
  assert.equal(valueAt(example.spec, 'pprof.transport'), undefined, 'the example leaves pprof.transport to its default');
  assert.equal(valueAt(example.spec, 'schedule.window'), undefined, 'the example leaves schedule.window to its default');
});

test('the API server accepts the README example, keeps its fields and applies the defaults', async () => {
  if (namespace !== 'default') {
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
  }
  await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, body: example });
  const stored = (await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name: example.metadata.name })) as {
    metadata: { namespace: string };
    spec: Json;
  };
  assert.equal(stored.metadata.namespace, namespace);
  // Everything set is kept and every unset field with a default got it.
  assert.deepEqual(stored.spec, withDefaults(specSchema, example.spec));
  assert.equal(valueAt(stored.spec, 'pprof.transport'), 'APIServerProxy');
  assert.equal(valueAt(stored.spec, 'schedule.window'), 12);
  assert.deepEqual(valueAt(stored.spec, 'selector'), example.spec.selector);
  assert.equal(valueAt(stored.spec, 'pprof.port'), valueAt(example.spec, 'pprof.port'));
  assert.equal(valueAt(stored.spec, 'schedule.interval'), valueAt(example.spec, 'schedule.interval'));
});

test('every spec field in the README table exists in the CRD, with the documented default, and none is missing', () => {
  for (const [path, [defaultCell]] of specFields) {
    const schema = schemaAt(specSchema, path);
    assert.ok(schema, `spec.${path} (README spec table) is in the CRD schema`);
    const documentedDefault = /^`([^`]+)`/.exec(defaultCell ?? '')?.[1];
    if (documentedDefault !== undefined) {
      assert.notEqual(schema._default, undefined, `spec.${path} has a default in the CRD`);
      assert.equal(documentedDefault, String(schema._default), `default of spec.${path}`);
    } else {
      assert.equal(schema._default === undefined || typeof schema._default === 'object', true, `spec.${path}: the README shows its default ${JSON.stringify(schema._default)}`);
    }
  }
  const missing = schemaPaths(specSchema, new Set(specFields.keys())).filter((p) => !specFields.has(p));
  assert.deepEqual(missing, [], 'spec fields of the CRD the README table leaves out');
});

test('every status field in the README table exists in the CRD, and none is missing', () => {
  for (const path of statusFields.keys()) assert.ok(schemaAt(statusSchema, path), `status.${path} (README status table) is in the CRD schema`);
  const missing = schemaPaths(statusSchema, new Set(statusFields.keys())).filter((p) => !statusFields.has(p));
  assert.deepEqual(missing, [], 'status fields of the CRD the README table leaves out');
});

test('the kubectl get mlp example shows the CRD printer columns', () => {
  const block = section(readme, '### `kubectl get mlp`').join('\n');
  const columns = version.additionalPrinterColumns ?? [];
  const header = (cols: PrinterColumn[]): string[] => ['NAME', ...cols.map((c) => c.name.toUpperCase())];
  const headers = block
    .split('\n')
    .filter((line) => line.startsWith('NAME '))
    .map((line) => line.trim().split(/\s{2,}/));
  assert.deepEqual(headers[0], header(columns.filter((c) => !c.priority)));
  assert.deepEqual(headers[1], header(columns), '-o wide shows every column');
});

test('the README names every metric the operator exports', async () => {
  const metrics = new OperatorMetrics(false);
  const names = (await metrics.registry.getMetricsAsJSON()).map((m) => m.name);
  assert.ok(names.length > 0);
  const endpoints = section(readme, '### HTTP endpoints').join('\n');
  for (const name of names) assert.ok(endpoints.includes(`\`${name}`), `README documents metric ${name}`);
  for (const path of ['/healthz', '/readyz', '/metrics', '/api/v1/namespaces/:ns/mapleakprobes/:name', '/captures/:id/profile']) {
    assert.ok(endpoints.includes(path), `README documents ${path}`);
  }
});

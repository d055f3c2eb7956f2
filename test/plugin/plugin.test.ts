import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AppsV1Api, RbacAuthorizationV1Api, type KubeConfig, type V1PolicyRule } from '@kubernetes/client-node';
import type { Report } from '../../src/analysis/report.js';
import { GROUP } from '../../src/api/types.js';
import { startOperator, type RunningOperator } from '../../src/cli/operator.js';
import { decodeHeapProfile } from '../../src/pprof/index.js';
import { runPod, stopCluster, type Cluster } from '../cluster/cluster.js';
import { startRedis, type RedisServer } from '../cluster/redis.js';
import { launchChromium, readCharts, type ChartShape } from '../support/browser.js';
import type { CliResult } from '../support/cli.js';
import { siteLines } from '../support/go-targets.js';
import { testOperatorConfig } from '../support/operator-config.js';
import { CACHE_DIR } from '../support/paths.js';
import { runPlugin } from '../support/plugin.js';
import { startClusterWithCrd, TestProbes } from '../support/probes.js';
import { bearer, ensureServiceAccount, serviceAccountToken, tokenKubeconfig } from '../support/tokens.js';
import { waitFor } from '../support/wait.js';

process.env.LOG_LEVEL ??= 'warn';
const CLUSTER = 'plugin';
const NS = 'default';
const APP = 'leaky-plugin';
const lines = siteLines('leaky');

/** A ServiceAccount holding exactly `rules` in NS (a Role and its RoleBinding), and a kubeconfig with its token. */
async function userWith(kc: KubeConfig, cluster: Cluster, dir: string, name: string, rules: V1PolicyRule[]): Promise<{ kubeconfig: string; token: string }> {
  await ensureServiceAccount(kc, NS, name);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  if (rules.length > 0) {
    await rbac.createNamespacedRole({ namespace: NS, body: { metadata: { name }, rules } });
    await rbac.createNamespacedRoleBinding({
      namespace: NS,
      body: { metadata: { name }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name }, subjects: [{ kind: 'ServiceAccount', name, namespace: NS }] },
    });
  }
  const token = await serviceAccountToken(kc, NS, name);
  return { kubeconfig: tokenKubeconfig(cluster, kc, name, token, join(dir, `${name}.kubeconfig`)), token };
}

const READ_PODS: V1PolicyRule = { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] };

function assertOk(result: CliResult): void {
  assert.equal(result.code, 0, `exit 0; stderr: ${result.stderr}`);
}

describe('kubectl mapleak against a real API server and a leaking Go pod', () => {
  let cluster: Cluster;
  let kc: KubeConfig;
  let redis: RedisServer;
  let operator: RunningOperator;
  let dir: string;
  let admin: string;
  let users: Record<'capturer' | 'noProxy' | 'noProbes' | 'probeReader' | 'profileReader', { kubeconfig: string; token: string }>;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mapleak-plugin-'));
    ({ cluster, kc } = await startClusterWithCrd(CLUSTER));
    admin = cluster.kubeconfigPath;
    redis = await startRedis();
    await runPod(cluster, { name: APP, labels: { app: APP }, path: 'test/targets/leaky' });
    // A Deployment selecting the pod: there is no controller-manager here, so it owns nothing, but its selector is real.
    await kc.makeApiClient(AppsV1Api).createNamespacedDeployment({
      namespace: NS,
      body: {
        metadata: { name: APP },
        spec: { replicas: 1, selector: { matchLabels: { app: APP } }, template: { metadata: { labels: { app: APP } }, spec: { containers: [{ name: 'app', image: 'leaky' }] } } },
      },
    });
    users = {
      capturer: await userWith(kc, cluster, dir, 'capturer', [
        READ_PODS,
        { apiGroups: [''], resources: ['pods/proxy'], verbs: ['get'] },
        { apiGroups: ['apps'], resources: ['deployments'], verbs: ['get'] },
      ]),
      noProxy: await userWith(kc, cluster, dir, 'no-proxy', [READ_PODS]),
      noProbes: await userWith(kc, cluster, dir, 'no-probes', []),
      probeReader: await userWith(kc, cluster, dir, 'probe-reader', [{ apiGroups: [GROUP], resources: ['mapleakprobes'], verbs: ['get', 'list'] }]),
      profileReader: await userWith(kc, cluster, dir, 'profile-reader', [{ apiGroups: [GROUP], resources: ['mapleakprobes', 'mapleakprobes/profiles'], verbs: ['get', 'list'] }]),
    };
    operator = await startOperator(testOperatorConfig(cluster, redis.url, { leaseNamespace: NS }));
    await new TestProbes(kc, NS).create('leaky', { selector: { matchLabels: { app: APP } }, schedule: { interval: '5s', window: 12 } });
  });

  after(async () => {
    await operator?.stop();
    await redis?.stop();
    await stopCluster(CLUSTER);
  });

  test('analyze pod/NAME with get on pods and pods/proxy only: the same table as mapleak analyze, the growing map named', async () => {
    const result = await runPlugin(['analyze', `pod/${APP}`, '-n', NS, '--every', '1500ms', '--count', '8'], users.capturer.kubeconfig);
    assertOk(result);
    assert.match(result.stdout, /^8 captures over \d+s \(swiss maps\); map memory/);
    assert.match(result.stdout, /#\s+SITE\s+KIND\s+PATTERN\s+IN USE\s+GROWTH\/h\s+CONF\s+EVIDENCE/);
    assert.match(result.stdout, new RegExp(`main\\.\\(\\*(sessionStore|catalog)\\)\\.\\w+ main\\.go:(${lines.get('map-growing-sessions')}|${lines.get('map-growing-json')})\\s+map/swiss\\s+growing`));
    // Not a terminal: one plain progress line per capture on stderr, nothing of it on stdout.
    assert.equal(result.stderr.match(/^capture \d\/8: /gm)?.length, 8, result.stderr);
    assert.ok(!result.stdout.includes('capture 1/8'));
  });

  test('analyze deployment/NAME --json: one report per Running pod of its selector', async () => {
    const result = await runPlugin(['analyze', `deployment/${APP}`, '--every', '1s', '--count', '3', '--json'], users.capturer.kubeconfig, { KUBECONFIG: users.capturer.kubeconfig });
    assertOk(result);
    const doc = JSON.parse(result.stdout) as { targets: { pod: { namespace: string; name: string }; report?: Report; error?: string }[] };
    assert.deepEqual(doc.targets.map((t) => t.pod), [{ namespace: NS, name: APP }]);
    assert.equal(doc.targets[0]?.report?.captures, 3);
    assert.equal(doc.targets[0]?.report?.mapImpl, 'swiss');
    assert.match(result.stderr, new RegExp(`^${APP}: capture 1/3: `, 'm'), 'progress lines name their pod');
  });

  test('a user whose RBAC lacks pods/proxy: a clear message naming the permission, exit code 1', async () => {
    const result = await runPlugin(['analyze', `pod/${APP}`, '--count', '2', '--every', '1s'], users.noProxy.kubeconfig);
    assert.equal(result.code, 1, result.stderr);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /^kubectl-mapleak: pod default\/leaky-plugin: forbidden: your RBAC does not allow get on pods\/proxy in namespace default.*kubectl auth can-i get pods\/proxy -n default/m);
    assert.ok(!result.stderr.includes(users.noProxy.token), 'the token is never printed');
  });

  test('a user who may not even read the pod, a pod that does not exist, a bad target: exit 1 or 2 with one line each', async () => {
    const noPods = await runPlugin(['analyze', `pod/${APP}`], users.noProbes.kubeconfig);
    assert.equal(noPods.code, 1);
    assert.match(noPods.stderr, /forbidden: your RBAC does not allow get pods in namespace default/);
    const missing = await runPlugin(['analyze', 'pod/no-such-pod'], admin);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /get pods: not found in namespace default/);
    const bad = await runPlugin(['analyze', 'service/x'], admin);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /give pod\/NAME, deployment\/NAME or statefulset\/NAME/);
    const usage = await runPlugin(['analyze'], admin);
    assert.equal(usage.code, 2);
    const wrongPort = await runPlugin(['analyze', `pod/${APP}`, '--port', '7070', '--count', '1'], admin);
    assert.equal(wrongPort.code, 1);
    assert.match(wrongPort.stderr, /nothing answers on port 7070/);
  });

  test('get and describe: the verdict, the top finding and per-target state, readable at a glance', async () => {
    await waitFor('the probe to reach Leaking', async () => {
      const p = await new TestProbes(kc, NS).get('leaky');
      return p?.status?.verdict === 'Leaking';
    }, 150_000, 1000);
    const list = await runPlugin(['get'], users.probeReader.kubeconfig);
    assertOk(list);
    const [header, row] = list.stdout.trimEnd().split('\n');
    assert.match(header ?? '', /^NAME\s+VERDICT\s+TARGETS\s+ERRORS\s+MAP MEMORY\s+LAST CAPTURE\s+TOP FINDING$/);
    assert.match(row ?? '', /^leaky\s+Leaking\s+1\s+0\s+[\d.]+ [KMG]iB\s+\d+s\s+map\/growing main\./);

    const all = await runPlugin(['get', '-A'], admin);
    assertOk(all);
    assert.match(all.stdout, /^NAMESPACE\s+NAME\s+VERDICT/);
    assert.match(all.stdout, /\ndefault\s+leaky\s+Leaking/);

    const described = await runPlugin(['describe', 'leaky'], users.probeReader.kubeconfig);
    assertOk(described);
    assert.match(described.stdout, /^Name:\s+leaky$/m);
    assert.match(described.stdout, /^Verdict:\s+Leaking$/m);
    assert.match(described.stdout, /^Selector:\s+app=leaky-plugin$/m);
    assert.match(described.stdout, /Conditions:\n\s+TYPE\s+STATUS\s+REASON\s+MESSAGE\n(.*\n)*\s+Ready\s+True\s+Scheduled/);
    assert.match(described.stdout, new RegExp(`Targets:\\n\\s+POD\\s+CAPTURES\\s+MAPS\\s+LAST CAPTURE\\s+ERROR\\n\\s+${APP}\\s+\\d+\\s+swiss`));
    assert.match(described.stdout, /Findings:\n(.*\n)+\s+1\. Map grows without bound/);

    const forbidden = await runPlugin(['get'], users.noProbes.kubeconfig);
    assert.equal(forbidden.code, 1);
    assert.match(forbidden.stderr, /forbidden: your RBAC does not allow list mapleakprobes\.mapleak\.io in namespace default/);
    const missing = await runPlugin(['describe', 'nope'], admin);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not found in namespace default/);
  });

  test('profile NAME --capture latest: the raw profile through the operator API with the user\'s own token', async () => {
    const url = `http://127.0.0.1:${operator.port}`;
    const out = join(dir, 'heap.pb.gz');
    const result = await runPlugin(['profile', 'leaky', '--url', url, '--capture', 'latest', '-o', out], users.profileReader.kubeconfig);
    assertOk(result);
    const profile = decodeHeapProfile(readFileSync(out));
    assert.ok(profile.records.length > 10, 'a real heap profile of the pod');
    assert.match(result.stderr, new RegExp(`^wrote .*heap\\.pb\\.gz: capture [0-9a-f]+ of pod ${APP} at `, 'm'));
    assert.ok(!result.stderr.includes(users.profileReader.token));

    const denied = await runPlugin(['profile', 'leaky', '--url', url, '-o', join(dir, 'denied.pb.gz')], users.probeReader.kubeconfig);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /forbidden: the operator requires get on mapleakprobes\/profiles \(ClusterRole mapleakprobe-profile-reader\) in namespace default/);
    const badToken = await runPlugin(['profile', 'leaky', '--url', url, '-o', join(dir, 'x.pb.gz'), '--token', 'not-a-real-token'], admin);
    assert.equal(badToken.code, 1);
    assert.match(badToken.stderr, /the operator did not accept your token/);
    const noUrl = await runPlugin(['profile', 'leaky', '-o', join(dir, 'x.pb.gz')], admin, { MAPLEAK_URL: '' });
    assert.equal(noUrl.code, 2);
  });

  test("the operator's page /ui/namespaces/NS/mapleakprobes/NAME: behind the JSON API's authentication, renders in Chromium", async () => {
    const base = `http://127.0.0.1:${operator.port}`;
    const path = `/ui/namespaces/${NS}/mapleakprobes/leaky`;
    assert.equal((await fetch(base + path)).status, 401);
    assert.equal((await fetch(base + path, { headers: bearer(users.noProbes.token) })).status, 403);
    const page = await fetch(base + path, { headers: bearer(users.probeReader.token) });
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'.*frame-ancestors 'none'/);
    assert.match(await page.text(), /Verdict: Leaking/);
    type ViewFinding = { site: { function: string; file: string; line: number }; scope?: string };
    const findingsNow = async (): Promise<ViewFinding[]> => {
      const view = (await (await fetch(`${base}/api/v1/namespaces/${NS}/mapleakprobes/leaky`, { headers: bearer(users.probeReader.token) })).json()) as { targets: { analysis?: { findings: ViewFinding[] } }[] };
      return view.targets.flatMap((t) => t.analysis?.findings ?? []);
    };

    const browser = await launchChromium();
    try {
      const context = await browser.newContext({ extraHTTPHeaders: bearer(users.probeReader.token), viewport: { width: 1200, height: 900 } });
      const tab = await context.newPage();
      const errors: string[] = [];
      tab.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      tab.on('pageerror', (e) => errors.push(e.message));
      // A round may land between the page and the JSON: compare with data that did not change around the page load.
      let findings = await findingsNow();
      let charts: ChartShape[] = [];
      for (let attempt = 0; ; attempt++) {
        const answer = await tab.goto(base + path);
        assert.equal(answer?.status(), 200);
        charts = (await tab.evaluate(readCharts)) as ChartShape[];
        const after = await findingsNow();
        if (JSON.stringify(after) === JSON.stringify(findings) || attempt === 4) break;
        findings = after;
      }
      mkdirSync(join(CACHE_DIR, 'artifacts'), { recursive: true });
      await tab.screenshot({ path: join(CACHE_DIR, 'artifacts', 'operator-page.png') });
      assert.deepEqual(errors, [], 'no console errors (the served CSP lets the page run)');
      assert.ok(findings.length > 0);
      assert.equal(charts.flatMap((c) => c.series).length, findings.length, 'one series per finding');
      const sites = new Set(findings.map((f) => `${f.site.function} ${f.site.file}:${f.site.line} ${f.scope ?? 'line'}`));
      assert.equal(charts.length, sites.size, 'one chart per site');
      assert.match(await tab.locator('h1').innerText(), /MapLeakProbe default\/leaky/);
    } finally {
      await browser.close();
    }
  });
});

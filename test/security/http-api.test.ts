// Attack suite (issue 9, item 7), the HTTP part: a tenant ServiceAccount that
// holds only namespace rights (MapLeakProbes and Secrets in team-a, nothing
// else) tries to read another namespace's probe data, raw profiles and
// /metrics through the operator's Service, against the chart's default RBAC
// on the local API server. Every attempt must end in 401/403/400/404 and no
// answer may carry team-b's data.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { CAPTURE_ID, probePath, profilePath, startAuthHarness, TEAM_A, TEAM_B, type AuthHarness } from '../server/harness.js';
import { bearer, ensureServiceAccount, serviceAccountToken } from '../support/tokens.js';

const CLUSTER = 'security-http';

describe('attack: a tenant with only namespace rights against the operator’s HTTP API', () => {
  let harness: AuthHarness;
  let tenantToken: string;

  before(async () => {
    harness = await startAuthHarness(CLUSTER);
    const tenant = { namespace: TEAM_A, name: 'tenant' };
    await ensureServiceAccount(harness.kc, tenant.namespace, tenant.name);
    const rbac = harness.kc.makeApiClient(RbacAuthorizationV1Api);
    // Everything on probes and Secrets in its own namespace, as a team that creates probes would hold.
    await rbac.createNamespacedRole({
      namespace: TEAM_A,
      body: {
        metadata: { name: 'tenant' },
        rules: [
          { apiGroups: ['mapleak.io'], resources: ['mapleakprobes'], verbs: ['*'] },
          { apiGroups: [''], resources: ['secrets'], verbs: ['*'] },
        ],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: TEAM_A,
      body: { metadata: { name: 'tenant' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'tenant' }, subjects: [{ kind: 'ServiceAccount', name: tenant.name, namespace: tenant.namespace }] },
    });
    tenantToken = await serviceAccountToken(harness.kc, tenant.namespace, tenant.name);
  });

  after(async () => {
    await harness?.stop();
  });

  test('its own probes: readable, as through kubectl; raw profiles and /metrics are not part of "mapleakprobes *"', async () => {
    const own = await harness.get(probePath(TEAM_A), bearer(tenantToken));
    assert.equal(own.status, 200);
    assert.equal(((await own.json()) as { metadata: { uid: string } }).metadata.uid, harness.probeUids[TEAM_A]);
    assert.equal((await harness.get(profilePath(TEAM_A), bearer(tenantToken))).status, 403, 'a wildcard verb on mapleakprobes does not cover mapleakprobes/profiles');
    // /metrics names every namespace's probes and code sites: not for tenants.
    assert.equal((await harness.get('/metrics', bearer(tenantToken))).status, 403);
  });

  test("another namespace's data, by every path spelling and forged identity header: never served", async (t) => {
    const otherUid = harness.probeUids[TEAM_B] ?? '';
    assert.ok(otherUid);
    const paths = [
      probePath(TEAM_B),
      profilePath(TEAM_B),
      `${probePath(TEAM_B)}/`,
      probePath(TEAM_B).toUpperCase().replace('/TEAM-B/', '/team-b/').replace('/CHECKOUT', '/checkout'),
      '/api/v1/namespaces/team%2Db/mapleakprobes/checkout',
      `/api/v1/namespaces/${TEAM_A}/mapleakprobes/..%2F..%2F${TEAM_B}%2Fmapleakprobes%2Fcheckout`,
      `/api/v1/namespaces/${TEAM_A}/../${TEAM_B}/mapleakprobes/checkout`,
      `/api/v1/namespaces/${TEAM_A}/mapleakprobes/checkout/captures/${CAPTURE_ID}/profile/../../../../../${TEAM_B}/mapleakprobes/checkout`,
      `/api/v1/namespaces/${TEAM_B}/mapleakprobes/checkout?namespace=${TEAM_A}`,
    ];
    const forged: Record<string, string>[] = [
      {},
      { 'impersonate-user': 'system:admin', 'impersonate-group': 'system:masters' },
      { 'x-remote-user': 'system:admin', 'x-remote-group': 'system:masters' },
      { 'x-forwarded-user': 'system:admin', 'x-forwarded-for': '127.0.0.1' },
    ];
    const seen: Record<number, number> = {};
    for (const path of paths) {
      for (const headers of forged) {
        const response = await harness.get(path, { ...bearer(tenantToken), ...headers });
        const body = Buffer.from(await response.arrayBuffer());
        seen[response.status] = (seen[response.status] ?? 0) + 1;
        assert.ok([400, 403, 404].includes(response.status), `${path} ${JSON.stringify(headers)}: ${response.status}`);
        assert.ok(!body.includes(otherUid), `${path}: no team-b probe in the answer`);
        assert.ok(!body.equals(harness.profileBytes), `${path}: no profile in the answer`);
      }
    }
    t.diagnostic(`${paths.length * forged.length} attempts on team-b's data: ${JSON.stringify(seen)} (status: count)`);
  });

  test('no token, or a token the tenant made up: 401 on every path but the probes', async () => {
    for (const path of [probePath(TEAM_B), profilePath(TEAM_B), '/metrics', '/']) {
      for (const headers of [{}, bearer('eyJhbGciOiJub25lIn0.eyJzdWIiOiJzeXN0ZW06YWRtaW4ifQ.')]) {
        assert.equal((await harness.get(path, headers)).status, 401, `${path} ${JSON.stringify(headers)}`);
      }
    }
    assert.equal((await harness.get('/healthz')).status, 200);
  });
});

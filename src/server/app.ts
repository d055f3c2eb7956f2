import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import type { ProbeClient } from '../api/client.js';
import { GROUP, PLURAL } from '../api/types.js';
import type { AccessAttributes } from '../auth/reviewer.js';
import type { RedisTopologyStatus } from '../queue/connection.js';
import type { OperatorMetrics } from '../observability/metrics.js';
import type { SeriesStore } from '../store/series-store.js';
import { loadReportAssets } from '../report/assets.js';
import { renderProbePage, type ProbeView } from '../report/probe-page.js';
import { authenticate, authorize, type AuthContext } from './auth.js';

export interface ServerDeps {
  metrics: OperatorMetrics;
  store: SeriesStore;
  probes: ProbeClient;
  /** Each readiness check: name → ok? (watches synced, Redis reachable...) */
  readiness: () => Promise<Record<string, boolean>>;
  /** Redis mode and the master (or cluster primaries) talked to, without credentials. */
  redisStatus?: () => RedisTopologyStatus;
  /** Who may read what: every route but /healthz and /readyz goes through it. */
  auth: AuthContext;
}

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const CAPTURE_ID = /^[0-9a-f]{8,64}$/;
/** Raw profiles are their own grant: `get` on this subresource of the probe. */
export const PROFILES_SUBRESOURCE = 'profiles';

/** The SubjectAccessReview a probe route needs, or undefined when its path is not valid. */
function probeAccess(req: Request, subresource?: string): AccessAttributes | undefined {
  const { namespace, name, id } = req.params as { namespace?: string; name?: string; id?: string };
  if (!namespace || !name || !NAME.test(namespace) || !NAME.test(name) || namespace.length > 63 || name.length > 253) return undefined;
  if (id !== undefined && !CAPTURE_ID.test(id)) return undefined;
  return { kind: 'resource', verb: 'get', group: GROUP, resource: PLURAL, namespace, name, ...(subresource ? { subresource } : {}) };
}

/**
 * /healthz and /readyz (open), /metrics (nonResourceURL get, as
 * controller-runtime's filter asks), and a read-only JSON API over probes,
 * series and raw profiles (get on mapleakprobes, and on
 * mapleakprobes/profiles for raw profiles, in the probe's namespace).
 */
export function createApp(deps: ServerDeps): Express {
  const app = express();
  app.disable('x-powered-by');

  app.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok');
  });

  app.get('/readyz', async (_req, res) => {
    const checks = await deps.readiness().catch(() => ({ readiness: false }));
    const ready = Object.values(checks).every(Boolean);
    res.status(ready ? 200 : 503).json({ ready, checks, ...(deps.redisStatus ? { redis: deps.redisStatus() } : {}) });
  });

  // Everything below needs a token the API server accepts, including paths that do not exist.
  app.use(authenticate(deps.auth));

  app.get(
    '/metrics',
    authorize(deps.auth, 'metrics', () => ({ kind: 'nonResource', verb: 'get', path: '/metrics' })),
    async (_req, res) => {
      res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
    },
  );

  app.get(
    '/api/v1/namespaces/:namespace/mapleakprobes/:name',
    authorize(deps.auth, 'probe', (req) => probeAccess(req)),
    async (req: Request, res: Response) => {
      const { namespace, name } = req.params as { namespace: string; name: string };
      const view = await probeView(deps, namespace, name);
      if (!view) return void res.status(404).json({ error: 'mapleakprobe not found' });
      res.json(view);
    },
  );

  // The same data as a page (the `--html` report, one section per pod), under the same grant.
  app.get(
    '/ui/namespaces/:namespace/mapleakprobes/:name',
    authorize(deps.auth, 'probe-page', (req) => probeAccess(req)),
    async (req: Request, res: Response) => {
      const { namespace, name } = req.params as { namespace: string; name: string };
      const view = await probeView(deps, namespace, name);
      if (!view) return void res.status(404).type('text/plain').send('mapleakprobe not found');
      const { html, contentSecurityPolicy } = renderProbePage(view, await loadReportAssets(), new Date());
      res
        .set('content-security-policy', `${contentSecurityPolicy}; frame-ancestors 'none'`)
        .set('x-content-type-options', 'nosniff')
        .set('cache-control', 'no-store')
        .type('text/html')
        .send(html);
    },
  );

  // OOMKilled and restarted containers, newest first, with the captures kept as evidence (as in status.incidents).
  app.get(
    '/api/v1/namespaces/:namespace/mapleakprobes/:name/incidents',
    authorize(deps.auth, 'incidents', (req) => probeAccess(req)),
    async (req: Request, res: Response) => {
      const { namespace, name } = req.params as { namespace: string; name: string };
      const probe = await deps.probes.get(namespace, name);
      if (!probe) return void res.status(404).json({ error: 'mapleakprobe not found' });
      // The status is the list the worker keeps in line with the retention and the count cap.
      const shown = new Set((probe.status?.incidents ?? []).map((i) => i.id));
      const stored = (await deps.store.storedIncidents(`${namespace}/${name}`)).filter((i) => shown.has(i.id));
      const incidents = await Promise.all(
        stored.map(async ({ podUid: _podUid, captures, ...incident }) => ({
          ...incident,
          captures: await Promise.all(
            captures.map(async (c) => ({
              id: c.id,
              time: c.time,
              // null once the pinned profile is gone (the incident outlived it, or Redis lost it): the download would answer 404.
              profile: (await deps.store.profileTtl(`${namespace}/${name}`, c.id)) !== -2 ? `/api/v1/namespaces/${encodeURIComponent(namespace)}/mapleakprobes/${encodeURIComponent(name)}/captures/${encodeURIComponent(c.id)}/profile` : null,
            })),
          ),
        })),
      );
      res.json({ incidents });
    },
  );

  app.get(
    '/api/v1/namespaces/:namespace/mapleakprobes/:name/captures/:id/profile',
    authorize(deps.auth, 'profile', (req) => probeAccess(req, PROFILES_SUBRESOURCE)),
    async (req: Request, res: Response) => {
      const { namespace, name, id } = req.params as { namespace: string; name: string; id: string };
      const profile = await deps.store.profile(`${namespace}/${name}`, id);
      if (!profile) return void res.status(404).json({ error: "capture not found (captures expire after the probe's window, an incident's after the incident retention)" });
      res
        .type('application/octet-stream')
        .set('content-disposition', `attachment; filename="${name}-${id}.pb.gz"`)
        .send(profile);
    },
  );

  app.use((_req, res) => {
    res.status(404).json({ error: 'not found' });
  });
  // A failing read (API server, Redis) is 503 with a fixed message: never 200, never a stack trace.
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    deps.auth.log.warn('http request failed', { error: err instanceof Error ? err.name : 'unknown' });
    if (!res.headersSent) res.status(503).json({ error: 'temporarily unavailable; try again' });
  });
  return app;
}

/**
 * A probe with each pod's analysis: the JSON API's answer and the page's
 * content. The analysis is the one the worker's last round computed and
 * stored (SeriesStore.saveAnalysis): a request never loads a series nor runs
 * the engine, so a viewer of a large probe costs the serving process a few
 * small reads, not seconds of its event loop.
 */
async function probeView(deps: ServerDeps, namespace: string, name: string): Promise<ProbeView | undefined> {
  const probe = await deps.probes.get(namespace, name);
  if (!probe) return undefined;
  const key = `${namespace}/${name}`;
  const targets = await Promise.all(
    (await deps.store.targets(key)).map(async (target) => {
      const series = target.series ?? target.uid;
      const [captures, analysis] = await Promise.all([deps.store.captures(key, series), deps.store.analysis(key, series)]);
      return { ...target, captures, analysis };
    }),
  );
  return { metadata: { namespace, name, uid: probe.metadata.uid, generation: probe.metadata.generation }, spec: probe.spec, status: probe.status ?? {}, targets };
}

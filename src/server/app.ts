import express, { type Express, type Request, type Response } from 'express';
import type { ProbeClient } from '../api/client.js';
import { analyzeSeries } from '../analysis/series.js';
import type { OperatorMetrics } from '../observability/metrics.js';
import type { SeriesStore } from '../store/series-store.js';

export interface ServerDeps {
  metrics: OperatorMetrics;
  store: SeriesStore;
  probes: ProbeClient;
  /** Each readiness check: name → ok? (watches synced, Redis reachable...) */
  readiness: () => Promise<Record<string, boolean>>;
}

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** /healthz, /readyz, /metrics and a read-only JSON API over probes, series and raw profiles. */
export function createApp(deps: ServerDeps): Express {
  const app = express();
  app.disable('x-powered-by');

  app.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok');
  });

  app.get('/readyz', async (_req, res) => {
    const checks = await deps.readiness().catch(() => ({ readiness: false }));
    const ready = Object.values(checks).every(Boolean);
    res.status(ready ? 200 : 503).json({ ready, checks });
  });

  app.get('/metrics', async (_req, res) => {
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });

  app.get('/api/v1/namespaces/:namespace/mapleakprobes/:name', async (req: Request, res: Response) => {
    const { namespace, name } = req.params as { namespace: string; name: string };
    if (!NAME.test(namespace) || !NAME.test(name)) return void res.status(400).json({ error: 'invalid namespace or name' });
    const probe = await deps.probes.get(namespace, name);
    if (!probe) return void res.status(404).json({ error: `mapleakprobe ${namespace}/${name} not found` });
    const key = `${namespace}/${name}`;
    const targets = await Promise.all(
      (await deps.store.targets(key)).map(async (target) => {
        const series = await deps.store.loadSeries(key, target.uid);
        const captures = await deps.store.captures(key, target.uid);
        const analysis = series.length > 0 ? analyzeSeries(series, { ...probe.spec.thresholds }) : undefined;
        return { ...target, captures, analysis };
      }),
    );
    res.json({ metadata: { namespace, name, uid: probe.metadata.uid, generation: probe.metadata.generation }, spec: probe.spec, status: probe.status ?? {}, targets });
  });

  app.get('/api/v1/namespaces/:namespace/mapleakprobes/:name/captures/:id/profile', async (req: Request, res: Response) => {
    const { namespace, name, id } = req.params as { namespace: string; name: string; id: string };
    if (!NAME.test(namespace) || !NAME.test(name) || !/^[0-9a-f]{8,64}$/.test(id)) return void res.status(400).json({ error: 'invalid path' });
    const profile = await deps.store.profile(`${namespace}/${name}`, id);
    if (!profile) return void res.status(404).json({ error: `capture ${id} not found (captures expire after the probe's window)` });
    res
      .type('application/octet-stream')
      .set('content-disposition', `attachment; filename="${name}-${id}.pb.gz"`)
      .send(profile);
  });

  app.use((_req, res) => {
    res.status(404).json({ error: 'not found' });
  });
  return app;
}

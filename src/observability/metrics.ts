import { createHash } from 'node:crypto';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Everything the operator exports on /metrics. */
export class OperatorMetrics {
  readonly registry = new Registry();
  readonly captures = new Counter({ name: 'mapleak_captures_total', help: 'Target captures by result (ok or an error reason).', labelNames: ['result'], registers: [this.registry] });
  readonly captureSeconds = new Histogram({
    name: 'mapleak_capture_duration_seconds',
    help: 'Time to capture one target: profiles, symbols and gctrace.',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({ name: 'mapleak_queue_jobs', help: 'Capture jobs in the queue by state.', labelNames: ['state'], registers: [this.registry] });
  readonly mapBytes = new Gauge({
    name: 'mapleak_map_inuse_bytes',
    help: 'In-use map memory per probe and owner site (top findings).',
    labelNames: ['namespace', 'probe', 'site', 'pattern'],
    registers: [this.registry],
  });
  readonly verdict = new Gauge({ name: 'mapleak_probe_verdict', help: '1 for the probe’s current verdict.', labelNames: ['namespace', 'probe', 'verdict'], registers: [this.registry] });
  readonly reconcileErrors = new Counter({ name: 'mapleak_reconcile_errors_total', help: 'Reconciles that failed and will be retried.', registers: [this.registry] });
  readonly reconciles = new Counter({ name: 'mapleak_reconciles_total', help: 'Reconciles by outcome.', labelNames: ['outcome'], registers: [this.registry] });
  /** `kind`: oom or restart (the pod status's reason itself is a remote API server's word, so not a label). */
  readonly incidents = new Counter({ name: 'mapleak_incidents_total', help: 'Container terminations recorded as incidents, by kind (oom, restart, terminated: ended without a restart).', labelNames: ['kind'], registers: [this.registry] });
  readonly isLeader = new Gauge({ name: 'mapleak_leader', help: '1 while this process holds the controller lease.', registers: [this.registry] });
  readonly connectionErrors = new Counter({
    name: 'mapleak_connection_errors_total',
    help: 'Errors reaching Redis or the API server, by component (store, queue, worker, leader-election, probe-watch, pod-watch, capture-round) and kind (socket error code, HTTP status, timeout, closed, other).',
    labelNames: ['component', 'kind'],
    registers: [this.registry],
  });
  readonly dependencyReachable = new Gauge({ name: 'mapleak_dependency_reachable', help: '0 while a dependency (redis, kubernetes) is failing for some component, else 1.', labelNames: ['dependency'], registers: [this.registry] });
  readonly workerRestarts = new Counter({
    name: 'mapleak_worker_restarts_total',
    help: 'BullMQ workers recreated by the stall watchdog (jobs overdue while the worker took none), by reason.',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly triggerFollows = new Gauge({ name: 'mapleak_trigger_follows', help: 'Pod logs this worker follows for spec.triggers.', registers: [this.registry] });
  readonly triggers = new Counter({
    name: 'mapleak_triggers_total',
    help: 'Memory-trigger crossings by reason and result (queued, deduplicated: another crossing got the round within minInterval, failed).',
    labelNames: ['reason', 'result'],
    registers: [this.registry],
  });

  readonly roundsDeferred = new Counter({
    name: 'mapleak_rounds_deferred_total',
    help: 'Rounds put back in the queue because their namespace already ran its share of rounds at once (--max-active-rounds-per-namespace), by namespace.',
    labelNames: ['namespace'],
    registers: [this.registry],
  });
  readonly roundsSuperseded = new Counter({
    name: 'mapleak_rounds_superseded_total',
    help: "Scheduled rounds dropped after waiting for their namespace's share until the probe's next round was due (that round replaces them), by namespace.",
    labelNames: ['namespace'],
    registers: [this.registry],
  });

  readonly storeBudgetRefusals = new Counter({
    name: 'mapleak_store_budget_refusals_total',
    help: "Captures not stored because their namespace's kept captures already took --max-redis-bytes-per-namespace, even without the raw profile, by namespace.",
    labelNames: ['namespace'],
    registers: [this.registry],
  });
  readonly storedProfilesDropped = new Counter({
    name: 'mapleak_stored_profiles_dropped_total',
    help: 'Captures kept without their raw profile, by namespace and reason (NamespaceStoreBudget: past --max-redis-bytes-per-namespace; StoredProfileLimit: larger than --max-stored-profile-bytes).',
    labelNames: ['namespace', 'reason'],
    registers: [this.registry],
  });

  /**
   * Read at each scrape, from the namespaces' ledgers, by the leading
   * controller (the one whose watch cache knows which namespaces have
   * probes; see namespaceStoredBytesFrom). Other processes export none.
   */
  readonly namespaceStoredBytes = new Gauge({
    name: 'mapleak_namespace_stored_bytes',
    help: "Redis bytes a namespace's kept captures, series gctrace and analyses take, as its ledger counts them against --max-redis-bytes-per-namespace; one series per namespace with probes, exported by the leading controller.",
    labelNames: ['namespace'],
    registers: [this.registry],
    collect: () => this.collectStoredBytes(),
  });
  private storedBytesSource: (() => Promise<ReadonlyMap<string, number | undefined>>) | undefined;
  private readonly storedBytesExported = new Set<string>();

  private readonly sitesByProbe = new Map<string, { namespace: string; probe: string; site: string; pattern: string }[]>();

  constructor(defaults = true) {
    if (defaults) collectDefaultMetrics({ register: this.registry });
  }

  private async collectStoredBytes(): Promise<void> {
    const source = this.storedBytesSource;
    if (!source) return;
    const bytes = await source();
    // Only namespaces with probes: a namespace whose last probe went loses its series. One whose ledger did not answer keeps its last value.
    for (const namespace of this.storedBytesExported) {
      if (bytes.has(namespace)) continue;
      this.namespaceStoredBytes.remove({ namespace });
      this.storedBytesExported.delete(namespace);
    }
    for (const [namespace, value] of bytes) {
      if (value === undefined) continue;
      this.namespaceStoredBytes.set({ namespace }, value);
      this.storedBytesExported.add(namespace);
    }
  }

  /**
   * Where each scrape reads the stored bytes of the namespaces with probes
   * (undefined for a namespace whose ledger did not answer). The returned
   * function ends it (a controller that stops or loses the lease): the
   * series go, unless another source was set meanwhile.
   */
  namespaceStoredBytesFrom(source: () => Promise<ReadonlyMap<string, number | undefined>>): () => void {
    this.storedBytesSource = source;
    return () => {
      if (this.storedBytesSource !== source) return;
      this.storedBytesSource = undefined;
      this.namespaceStoredBytes.reset();
      this.storedBytesExported.clear();
    };
  }

  /** Replace a probe's per-site series with the current findings. */
  setProbeFindings(namespace: string, probe: string, verdict: string, findings: { site: { function: string; line: number }; pattern: string; inuseBytes: number; kind: string }[]): void {
    this.forgetSites(namespace, probe);
    for (const v of ['Leaking', 'Retaining', 'Healthy', 'Unknown']) this.verdict.set({ namespace, probe, verdict: v }, v === verdict ? 1 : 0);
    // Findings of one owner site and pattern (its callers' maps: each caller is a finding of its own) are summed into its series.
    const bySeries = new Map<string, { labels: { namespace: string; probe: string; site: string; pattern: string }; bytes: number }>();
    for (const f of findings) {
      if (f.kind !== 'map') continue;
      const labels = { namespace, probe, site: siteLabel(f.site), pattern: f.pattern };
      const key = `${labels.site}\u0000${labels.pattern}`;
      const seen = bySeries.get(key);
      if (seen) seen.bytes += f.inuseBytes;
      else bySeries.set(key, { labels, bytes: f.inuseBytes });
    }
    const sites = [...bySeries.values()];
    for (const { labels, bytes } of sites) this.mapBytes.set(labels, bytes);
    this.sitesByProbe.set(`${namespace}/${probe}`, sites.map((s) => s.labels));
  }

  private forgetSites(namespace: string, probe: string): void {
    for (const labels of this.sitesByProbe.get(`${namespace}/${probe}`) ?? []) this.mapBytes.remove(labels);
    this.sitesByProbe.delete(`${namespace}/${probe}`);
  }

  forgetProbe(namespace: string, probe: string): void {
    this.forgetSites(namespace, probe);
    for (const v of ['Leaking', 'Retaining', 'Healthy', 'Unknown']) this.verdict.remove({ namespace, probe, verdict: v });
  }
}

/**
 * Longest `site` label value, in UTF-8 bytes (as Prometheus' label length
 * limits count them): a Go function name is rarely a third of it; a
 * profile's (the tenant's) may be 512 characters.
 */
export const MAX_SITE_LABEL_BYTES = 128;

/**
 * `function:line`, at most MAX_SITE_LABEL_BYTES: a longer function keeps
 * its head (whole characters) and gets a hash of the whole name, so two
 * long names never share one series.
 */
export function siteLabel(site: { function: string; line: number }): string {
  const label = `${site.function}:${site.line}`;
  if (Buffer.byteLength(label) <= MAX_SITE_LABEL_BYTES) return label;
  const tail = `~${createHash('sha256').update(site.function).digest('hex').slice(0, 8)}:${site.line}`;
  let head = '';
  let bytes = Buffer.byteLength(tail);
  for (const char of site.function) {
    bytes += Buffer.byteLength(char);
    if (bytes > MAX_SITE_LABEL_BYTES) break;
    head += char;
  }
  return `${head}${tail}`;
}

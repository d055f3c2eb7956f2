import type { Server } from 'node:http';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { Queue } from 'bullmq';
import { DEFAULT_CEILINGS, inconsistentCeilings, type Ceilings } from '../api/ceilings.js';
import { ProbeClient } from '../api/client.js';
import { GROUP, PLURAL, VERSION, type MapLeakProbe } from '../api/types.js';
import { BinaryKnowledgeCache } from '../capture/binary-knowledge.js';
import { ByteBudget } from '../capture/budget.js';
import { AddressAllowlist, CidrListError } from '../clusters/address-allowlist.js';
import { reuseConnections } from '../clusters/keep-alive.js';
import { ClusterRegistry } from '../clusters/registry.js';
import { DEFAULT_CONTROLLER_OPTIONS, ProbeController } from '../controller/controller.js';
import { DEFAULT_LEASE_TIMING, LeaderElector } from '../controller/leader.js';
import { ConnectionErrorReporter, errorText, isConnectionError } from '../observability/connection-errors.js';
import { jsonLogger, registerSecret, type Logger } from '../observability/log.js';
import { OperatorMetrics } from '../observability/metrics.js';
import { describeRedis, parseRedisConfig, RedisConfigError, redisConnection, redisTopologyStatus, type RedisConfig } from '../queue/connection.js';
import { CAPTURE_QUEUE, queuePrefix, type CaptureJobData } from '../queue/names.js';
import { RedisMetrics, sampleRedisMemory } from '../queue/redis-metrics.js';
import { AuthMetrics } from '../auth/metrics.js';
import { DEFAULT_REVIEWER_OPTIONS, KubernetesAccessReviewer, type ReviewerOptions } from '../auth/reviewer.js';
import { createApp } from '../server/app.js';
import { fencedProbe, SeriesStore } from '../store/series-store.js';
import { remoteEndLimits, RemoteEndWatcher } from '../worker/remote-ends.js';
import { DEFAULT_WORKER_LIMITS } from '../worker/capture-round.js';
import { DecodeGate } from '../worker/decode-gate.js';
import { defaultRoundsPerNamespace } from '../worker/namespace-slots.js';
import { DEFAULT_TRIGGER_WATCH_LIMITS, triggerConditionWriter, TriggerWatcher } from '../worker/trigger-watch.js';
import { startCaptureWorker, type CaptureWorker } from '../worker/worker.js';
import { parseCount, parseDuration, parseSize, UsageError } from './units.js';

export type Role = 'all' | 'controller' | 'worker';

export interface OperatorConfig {
  role: Role;
  kubeconfig?: string;
  /** Standalone, sentinel or cluster, with the passwords from the environment. */
  redis: RedisConfig;
  port: number;
  concurrency: number;
  targetConcurrency: number;
  /** Rounds one namespace runs at once over all workers (--max-active-rounds-per-namespace; default defaultRoundsPerNamespace(concurrency)). */
  maxActiveRoundsPerNamespace?: number;
  leaderElect: boolean;
  leaseNamespace: string;
  leaseName: string;
  identity: string;
  /** Re-reconcile every probe this often (level-based repair after Redis or watch trouble). */
  resyncMs: number;
  /** HTTP authentication and authorisation (TokenReview + SubjectAccessReview): caches and limits. */
  auth?: Partial<ReviewerOptions>;
  /** The admin's ceilings over probes' specs (unset ones: DEFAULT_CEILINGS). */
  ceilings?: Partial<Ceilings>;
  /** Namespaces whose probes may use spec.cluster ("*": all); default none. */
  kubeconfigSecretNamespaces?: string[];
  /** Namespaces whose probes may name pprof credentials and CAs ("*": all); default none. */
  pprofCredentialsNamespaces?: string[];
  /** Honour insecure-skip-tls-verify in tenants' kubeconfigs. */
  insecureKubeconfigTls?: boolean;
  /** Let Direct transport go to pod IPs reported by a remote API server. */
  allowRemoteDirect?: boolean;
  /** CIDRs a remote API server's address must be in (--remote-cluster-cidrs); none: spec.cluster is disabled. */
  remoteClusterCidrs?: string[];
  /** CIDRs a remote pod IP must be in for Direct capture (--remote-pod-cidrs); none: no remote pod IP is dialled. */
  remotePodCidrs?: string[];
  /** How often a worker drops the metric series of deleted probes (default 60 s). */
  metricsSweepMs?: number;
  /** SIGTERM to exit, at most (default DEFAULT_SHUTDOWN_TIMEOUT_MS): the graceful stop, then connections are force-closed. */
  shutdownTimeoutMs?: number;
}

/** Below the chart's default terminationGracePeriodSeconds (30 s), which passes its own value minus 5 s. */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 20_000;

/** Ceiling flags: name → how to parse it into Ceilings. */
const CEILING_FLAGS: Record<string, { field: keyof Ceilings; parse: (text: string, flag: string) => number }> = {
  'max-profile-bytes': { field: 'maxProfileBytes', parse: (t) => parseSize(t) },
  'max-inflated-bytes': { field: 'maxInflatedBytes', parse: (t) => parseSize(t) },
  'max-compression-ratio': { field: 'maxCompressionRatio', parse: (t, f) => parseCount(t, f, 2) },
  'max-decode-time': { field: 'maxDecodeMs', parse: (t) => parseDuration(t) },
  'max-request-timeout': { field: 'maxRequestTimeoutMs', parse: (t) => parseDuration(t) },
  'max-symbol-requests': { field: 'maxSymbolRequests', parse: (t, f) => parseCount(t, f, 0) },
  'max-symbol-answer-bytes': { field: 'maxSymbolAnswerBytes', parse: (t) => parseSize(t) },
  'max-debug1-bytes': { field: 'maxDebug1Bytes', parse: (t) => parseSize(t) },
  'min-debug1-interval': { field: 'minDebug1IntervalMs', parse: (t) => parseDuration(t) },
  'max-capture-time': { field: 'maxCaptureMs', parse: (t) => parseDuration(t) },
  'max-inflight-bytes': { field: 'maxInflightBytes', parse: (t) => parseSize(t) },
  'max-knowledge-bytes': { field: 'maxKnowledgeBytes', parse: (t) => parseSize(t) },
  'max-knowledge-bytes-per-namespace': { field: 'maxKnowledgeBytesPerNamespace', parse: (t) => parseSize(t) },
  'max-targets-per-probe': { field: 'maxTargetsPerProbe', parse: (t, f) => parseCount(t, f, 1) },
  'max-probes-per-namespace': { field: 'maxProbesPerNamespace', parse: (t, f) => parseCount(t, f, 1) },
  'min-interval': { field: 'minIntervalMs', parse: (t) => parseDuration(t) },
  'max-window': { field: 'maxWindow', parse: (t, f) => parseCount(t, f, 2) },
  'max-redis-bytes-per-target': { field: 'maxRedisBytesPerTarget', parse: (t) => parseSize(t) },
  'max-redis-bytes-per-namespace': { field: 'maxRedisBytesPerNamespace', parse: (t) => parseSize(t) },
  'max-stored-profile-bytes': { field: 'maxStoredProfileBytes', parse: (t) => parseSize(t) },
  'max-usages-per-capture': { field: 'maxUsagesPerCapture', parse: (t, f) => parseCount(t, f, 1) },
  'max-summary-bytes': { field: 'maxSummaryBytes', parse: (t) => parseSize(t) },
  'max-events-per-round': { field: 'maxEventsPerRound', parse: (t, f) => parseCount(t, f, 1) },
  'max-incidents': { field: 'maxIncidents', parse: (t, f) => atMost(parseCount(t, f, 1), 50, f) },
  'incident-retention': { field: 'incidentRetentionMs', parse: (t) => parseDuration(t) },
  'max-trigger-follows': { field: 'maxTriggerFollows', parse: (t, f) => parseCount(t, f, 0) },
  'min-trigger-interval': { field: 'minTriggerIntervalMs', parse: (t) => parseDuration(t) },
  'trigger-poll-interval': { field: 'triggerPollMs', parse: (t) => parseDuration(t) },
  // The CRD allows spec.thresholds.maxFindings up to 50.
  'max-findings': { field: 'maxFindings', parse: (t, f) => atMost(parseCount(t, f, 1), 50, f) },
  'max-remote-pod-watches': { field: 'maxRemotePodWatches', parse: (t, f) => parseCount(t, f, 0) },
  'max-remote-pod-watch-time': { field: 'maxRemotePodWatchMs', parse: (t) => parseDuration(t) },
  'max-remote-pod-watch-bytes': { field: 'maxRemotePodWatchBytes', parse: (t) => parseSize(t) },
};

/** status.incidents holds at most 50 (the CRD's maxItems): each is about 1.5 KB, and the status is rewritten every round. */
function atMost(value: number, max: number, flag: string): number {
  if (value > max) throw new UsageError(`--${flag} must be at most ${max}, got ${value}`);
  return value;
}

export function operatorConfig(args: string[], env: NodeJS.ProcessEnv = process.env): OperatorConfig {
  const { values } = parseArgs({
    args,
    options: {
      role: { type: 'string', default: env.MAPLEAK_ROLE ?? 'all' },
      kubeconfig: { type: 'string' },
      'redis-url': { type: 'string' },
      'redis-sentinels': { type: 'string' },
      'redis-sentinel-master': { type: 'string' },
      'redis-cluster-nodes': { type: 'string' },
      'redis-tls': { type: 'boolean' },
      port: { type: 'string', default: env.MAPLEAK_PORT ?? '8080' },
      concurrency: { type: 'string', default: env.MAPLEAK_CONCURRENCY ?? '4' },
      'target-concurrency': { type: 'string', default: env.MAPLEAK_TARGET_CONCURRENCY ?? '4' },
      'max-active-rounds-per-namespace': { type: 'string' },
      'leader-elect': { type: 'boolean', default: env.MAPLEAK_LEADER_ELECT !== 'false' },
      'no-leader-elect': { type: 'boolean', default: false },
      'lease-namespace': { type: 'string', default: env.POD_NAMESPACE ?? 'default' },
      'lease-name': { type: 'string', default: 'mapleakprobe-controller' },
      identity: { type: 'string', default: env.POD_NAME ?? `${hostname()}-${process.pid}` },
      'resync-interval': { type: 'string', default: env.MAPLEAK_RESYNC_INTERVAL ?? '60s' },
      'auth-cache-ttl': { type: 'string', default: env.MAPLEAK_AUTH_CACHE_TTL ?? '30s' },
      'auth-max-reviews': { type: 'string', default: env.MAPLEAK_AUTH_MAX_REVIEWS ?? String(DEFAULT_REVIEWER_OPTIONS.maxInFlight) },
      'kubeconfig-secret-namespaces': { type: 'string', default: '' },
      'pprof-credentials-namespaces': { type: 'string', default: '' },
      'insecure-kubeconfig-tls': { type: 'boolean', default: false },
      'allow-remote-direct': { type: 'boolean', default: false },
      'remote-cluster-cidrs': { type: 'string', default: '' },
      'remote-pod-cidrs': { type: 'string', default: '' },
      'metrics-sweep-interval': { type: 'string', default: '60s' },
      'shutdown-timeout': { type: 'string', default: env.MAPLEAK_SHUTDOWN_TIMEOUT ?? `${DEFAULT_SHUTDOWN_TIMEOUT_MS / 1000}s` },
      ...Object.fromEntries(Object.keys(CEILING_FLAGS).map((flag) => [flag, { type: 'string' as const }])),
    },
  });
  const ceilings: Partial<Ceilings> = {};
  for (const [flag, { field, parse }] of Object.entries(CEILING_FLAGS)) {
    const text = (values as Record<string, unknown>)[flag];
    if (typeof text === 'string') ceilings[field] = parse(text, flag);
  }
  const inconsistent = inconsistentCeilings({ ...DEFAULT_CEILINGS, ...ceilings });
  if (inconsistent) throw new UsageError(inconsistent);
  const secretNamespaces = namespaceList(values['kubeconfig-secret-namespaces'], 'kubeconfig-secret-namespaces');
  const credentialNamespaces = namespaceList(values['pprof-credentials-namespaces'], 'pprof-credentials-namespaces');
  if (!['all', 'controller', 'worker'].includes(values.role)) throw new UsageError(`--role must be all, controller or worker, got "${values.role}"`);
  let redis: RedisConfig;
  try {
    redis = parseRedisConfig(
      { url: values['redis-url'], sentinels: values['redis-sentinels'], sentinelMaster: values['redis-sentinel-master'], clusterNodes: values['redis-cluster-nodes'], tls: values['redis-tls'] },
      env,
    );
  } catch (err) {
    throw err instanceof RedisConfigError ? new UsageError(err.message) : err;
  }
  const concurrency = parseCount(values.concurrency, 'concurrency', 1);
  const roundsText = values['max-active-rounds-per-namespace'];
  return {
    role: values.role as Role,
    ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
    redis,
    port: parseCount(values.port, 'port', 0),
    concurrency,
    maxActiveRoundsPerNamespace: roundsText === undefined ? defaultRoundsPerNamespace(concurrency) : parseCount(roundsText, 'max-active-rounds-per-namespace', 1),
    targetConcurrency: parseCount(values['target-concurrency'], 'target-concurrency', 1),
    leaderElect: values['leader-elect'] && !values['no-leader-elect'],
    leaseNamespace: values['lease-namespace'],
    leaseName: values['lease-name'],
    identity: values.identity,
    resyncMs: parseDuration(values['resync-interval']),
    auth: { cacheTtlMs: parseDuration(values['auth-cache-ttl']), maxInFlight: parseCount(values['auth-max-reviews'], 'auth-max-reviews', 1) },
    ceilings,
    kubeconfigSecretNamespaces: secretNamespaces,
    pprofCredentialsNamespaces: credentialNamespaces,
    insecureKubeconfigTls: values['insecure-kubeconfig-tls'],
    allowRemoteDirect: values['allow-remote-direct'],
    remoteClusterCidrs: cidrList(values['remote-cluster-cidrs'], 'remote-cluster-cidrs'),
    remotePodCidrs: cidrList(values['remote-pod-cidrs'], 'remote-pod-cidrs'),
    metricsSweepMs: parseDuration(values['metrics-sweep-interval']),
    shutdownTimeoutMs: parseDuration(values['shutdown-timeout']),
  };
}

/** How a stop ended: `graceful` when every step finished within the deadline, else the steps that had not. */
export interface StopOutcome {
  graceful: boolean;
  unfinished: string[];
  elapsedMs: number;
}

export interface RunningOperator {
  port: number;
  /** Graceful stop raced against the shutdown deadline; then whatever is left is force-closed. Never takes much longer than the deadline. */
  stop(): Promise<StopOutcome>;
  isLeader(): boolean;
  log: Logger;
}

/** Controller and/or workers in one process, with the HTTP server; stops gracefully. */
export async function startOperator(config: OperatorConfig): Promise<RunningOperator> {
  const log = jsonLogger({ component: 'mapleakprobe', role: config.role, identity: config.identity });
  const kc = new KubeConfig();
  if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
  else kc.loadFromDefault();
  reuseConnections(kc);
  registerSecret(config.redis.password);
  registerSecret(config.redis.sentinelPassword);
  registerSecret(kc.getCurrentUser()?.token);
  const ceilings: Ceilings = { ...DEFAULT_CEILINGS, ...config.ceilings };
  const metrics = new OperatorMetrics();
  // Every client retries on its own: their errors are logged with backoff, per dependency.
  const connectionErrors = new ConnectionErrorReporter(log.child({ part: 'connections' }), metrics);
  const probes = new ProbeClient(kc);
  const redis = config.redis;
  const prefix = queuePrefix(redis.mode);
  const redisMetrics = new RedisMetrics(metrics.registry);
  const storeRedis = redisConnection(redis, 'store');
  watchRedis(storeRedis, 'store', connectionErrors, log);
  const store = new SeriesStore(storeRedis, undefined, { onCaptureStored: (bytes) => redisMetrics.observeCapture(bytes) });
  if (redis.mode !== 'cluster') {
    // Series written before keys had hash tags (a cluster never had such keys).
    store
      .adoptLegacyKeys()
      .then((renamed) => renamed > 0 && log.info('series keys renamed to the hash-tag layout', { renamed }))
      .catch((err: Error) => log.warn('legacy series keys not renamed', { error: err.message }));
  }
  const queueConnection = redisConnection(redis, 'worker');
  // The queue re-emits its connection's errors: reported once, from the queue.
  queueConnection.on('error', () => undefined);
  queueConnection.on('ready', () => connectionErrors.success('redis', 'queue'));
  const queue = new Queue<CaptureJobData>(CAPTURE_QUEUE, { connection: queueConnection, prefix });
  queue.on('error', (err) => (isConnectionError(err) ? connectionErrors.failure('redis', 'queue', err) : log.warn('queue error', { error: errorText(err) })));

  let controller: ProbeController | undefined;
  let elector: LeaderElector | undefined;
  let worker: CaptureWorker | undefined;
  let workerConnection: ReturnType<typeof redisConnection> | undefined;
  let decodeGate: DecodeGate | undefined;
  let clusters: ClusterRegistry | undefined;
  let remoteEnds: RemoteEndWatcher | undefined;
  const runsController = config.role !== 'worker';
  const runsWorker = config.role !== 'controller';

  if (runsController) {
    const controllerOptions = { ...DEFAULT_CONTROLLER_OPTIONS, resyncMs: config.resyncMs };
    // The controller hands these deps to the reconciler as they are: ceilings and namespaceProbes ride along.
    const controllerDeps = { probes, queue, store, metrics, log: log.child({ part: 'controller' }), ceilings, namespaceProbes: namespaceProbeLister(probes), connectionErrors };
    const newController = (): ProbeController => new ProbeController(kc, controllerDeps, controllerOptions);
    controller = newController();
    const lead = async (): Promise<void> => {
      metrics.isLeader.set(1);
      await controller?.start();
    };
    const follow = async (): Promise<void> => {
      metrics.isLeader.set(0);
      await controller?.stop();
      // A fresh controller for the next term: the old one's queue is closed.
      controller = newController();
    };
    if (config.leaderElect) {
      elector = new LeaderElector(kc, { namespace: config.leaseNamespace, name: config.leaseName, identity: config.identity, ...DEFAULT_LEASE_TIMING }, { onStartedLeading: lead, onStoppedLeading: follow }, log.child({ part: 'leader-election' }), connectionErrors);
      elector.start();
    } else {
      await lead();
    }
  }
  if (runsWorker) {
    workerConnection = redisConnection(redis, 'worker');
    workerConnection.on('error', () => undefined);
    decodeGate = new DecodeGate({ maxDecodeMs: ceilings.maxDecodeMs, maxHeapMiB: 512 });
    const remoteServers = AddressAllowlist.parse(config.remoteClusterCidrs ?? []);
    const remotePods = AddressAllowlist.parse(config.remotePodCidrs ?? []);
    if ((config.kubeconfigSecretNamespaces ?? []).length > 0 && remoteServers.empty) log.warn('spec.cluster stays disabled: --remote-cluster-cidrs lists no addresses (probes get RemoteClusterNotAllowed)');
    if (config.allowRemoteDirect && remotePods.empty) log.warn('--allow-remote-direct dials no remote pod: --remote-pod-cidrs lists no addresses');
    remoteEnds = new RemoteEndWatcher({ store, log: log.child({ part: 'remote-ends' }), limits: remoteEndLimits(ceilings) });
    clusters = new ClusterRegistry(kc, { remoteNamespaces: new Set(config.kubeconfigSecretNamespaces ?? []), allowInsecureTls: config.insecureKubeconfigTls ?? false, remoteServers, remotePods, followSockets: ceilings.maxTriggerFollows });
    worker = startCaptureWorker(
      {
        connection: workerConnection,
        queue,
        prefix,
        concurrency: config.concurrency,
        maxActiveRoundsPerNamespace: config.maxActiveRoundsPerNamespace ?? defaultRoundsPerNamespace(config.concurrency),
        connectionErrors,
        ...(config.metricsSweepMs ? { metricsSweepMs: config.metricsSweepMs } : {}),
        triggers: new TriggerWatcher({
          queue,
          log: log.child({ part: 'triggers' }),
          metrics,
          limits: { ...DEFAULT_TRIGGER_WATCH_LIMITS, maxFollows: ceilings.maxTriggerFollows, pollMs: ceilings.triggerPollMs, minIntervalMs: ceilings.minTriggerIntervalMs },
          event: (probe, type, reason, message) => probes.event(probe, type, reason, message),
          condition: triggerConditionWriter(probes),
          firstTime: (probe, what) => store.firstTime(fencedProbe(probe), what, 7 * 86_400),
        }),
      },
      {
        probes,
        clusters,
        store,
        knowledge: new BinaryKnowledgeCache({ maxBytes: ceilings.maxKnowledgeBytes, maxBytesPerTenant: ceilings.maxKnowledgeBytesPerNamespace }),
        captureBudget: new ByteBudget(ceilings.maxInflightBytes),
        metrics,
        log: log.child({ part: 'worker' }),
        limits: { ...DEFAULT_WORKER_LIMITS, targetConcurrency: config.targetConcurrency, allowRemoteDirect: config.allowRemoteDirect ?? false, pprofCredentialsNamespaces: new Set(config.pprofCredentialsNamespaces ?? []) },
        ceilings,
        decodeGate,
        remoteEnds,
      },
    );
  }

  const queueGauge = setInterval(() => {
    queue
      .getJobCounts('waiting', 'active', 'delayed', 'failed')
      .then((counts) => {
        for (const [state, n] of Object.entries(counts)) metrics.queueDepth.set({ state }, n);
      })
      .catch(() => undefined);
    sampleRedisMemory(storeRedis, redisMetrics).catch(() => undefined);
  }, 5000);

  const httpLog = log.child({ part: 'http' });
  const authMetrics = new AuthMetrics(metrics.registry);
  const reviewer = new KubernetesAccessReviewer(kc, { ...DEFAULT_REVIEWER_OPTIONS, ...config.auth }, authMetrics);
  const app = createApp({
    metrics,
    store,
    probes,
    auth: { reviewer, metrics: authMetrics, log: httpLog },
    readiness: async () => {
      const redisOk = await storeRedis.ping().then(
        () => true,
        () => false,
      );
      // Reachable but refusing writes (maxmemory, noeviction) is not ready either: nothing can be kept or scheduled.
      const checks: Record<string, boolean> = { redis: redisOk, redisWrites: !connectionErrors.storeFull() };
      // A follower is ready: it stands by. Only the leader's watch must be synced.
      if (runsController && (!config.leaderElect || elector?.isLeader)) checks.watches = controller?.synced ?? false;
      return checks;
    },
    redisStatus: () => redisTopologyStatus(redis, storeRedis),
  });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(config.port, () => resolve(s));
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  // The master as resolved needs a connection: wait for it briefly, never for long.
  await Promise.race([storeRedis.ping().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 3000).unref())]);
  log.info('operator started', { port, redis: describeRedis(redis), redisTopology: redisTopologyStatus(redis, storeRedis), role: config.role, leaderElect: config.leaderElect });

  const shutdownTimeoutMs = config.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS;
  /** Everything that holds a socket or a thread, closed at once: the last step of a stop, graceful or not. */
  const forceClose = (): void => {
    void worker?.close(true).catch(() => undefined);
    storeRedis.disconnect();
    queueConnection.disconnect();
    workerConnection?.disconnect();
    server.closeAllConnections();
    void remoteEnds?.close();
    clusters?.close();
    void decodeGate?.close();
  };
  let stopping: Promise<StopOutcome> | undefined;
  return {
    port,
    log,
    isLeader: () => (config.leaderElect ? (elector?.isLeader ?? false) : runsController),
    stop: () =>
      (stopping ??= (async () => {
        const startedAt = Date.now();
        log.info('operator stopping', { deadlineMs: shutdownTimeoutMs });
        clearInterval(queueGauge);
        const pending = new Set<string>();
        const step = async (name: string, run: () => Promise<unknown>): Promise<void> => {
          pending.add(name);
          try {
            await run();
          } catch (err) {
            log.warn('shutdown step failed', { step: name, error: errorText(err) });
          } finally {
            pending.delete(name);
          }
        };
        // Independent parts stop side by side: a round still running never holds up the lease release.
        const graceful = (async () => {
          await Promise.all([
            step('http server', () => {
              // close() waits for idle keep-alive connections (e.g. a scraper's): end them too.
              const closed = new Promise<void>((resolve) => server.close(() => resolve()));
              server.closeIdleConnections();
              setTimeout(() => server.closeAllConnections(), 2000).unref();
              return closed;
            }),
            step(elector ? 'leader lease release' : 'controller', async () => (elector ? elector.stop() : controller?.stop())),
            step('capture worker (running rounds)', async () => {
              await worker?.close();
              await decodeGate?.close();
              await remoteEnds?.close();
              clusters?.close();
            }),
          ]);
          await step('capture queue', () => queue.close());
        })();
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<'deadline'>((resolve) => (timer = setTimeout(() => resolve('deadline'), shutdownTimeoutMs)));
        const ended = await Promise.race([graceful.then(() => 'done' as const), deadline]);
        clearTimeout(timer);
        const unfinished = [...pending];
        // BullMQ leaves connections it was given open: close each one we made (at once when the deadline passed).
        forceClose();
        const elapsedMs = Date.now() - startedAt;
        if (ended === 'deadline') {
          log.error('shutdown deadline passed: connections force-closed', { deadlineMs: shutdownTimeoutMs, unfinished, redisReachable: !connectionErrors.failing('redis'), kubernetesReachable: !connectionErrors.failing('kubernetes') });
          return { graceful: false, unfinished, elapsedMs };
        }
        log.info('operator stopped', { elapsedMs });
        return { graceful: true, unfinished: [], elapsedMs };
      })()),
  };
}

/** A Redis connection's errors and recoveries, reported as `component`; errors that are not about reaching Redis are logged as they come. */
function watchRedis(connection: ReturnType<typeof redisConnection>, component: string, reporter: ConnectionErrorReporter, log: Logger): void {
  connection.on('error', (err) => (isConnectionError(err) ? reporter.failure('redis', component, err) : log.warn('redis error', { component, error: errorText(err) })));
  connection.on('ready', () => reporter.success('redis', component));
}

/**
 * A namespace's probes for the per-namespace ceiling, listed at most once
 * every 2 s per namespace (a resync reconciles every probe at once), and
 * again whenever the probe asked about is newer than the cached list.
 */
function namespaceProbeLister(probes: ProbeClient): (namespace: string, including: string) => Promise<MapLeakProbe[]> {
  const recent = new Map<string, { at: number; items: Promise<MapLeakProbe[]> }>();
  return async (namespace, including) => {
    const hit = recent.get(namespace);
    if (hit && Date.now() - hit.at < 2000) {
      const items = await hit.items.catch(() => undefined);
      if (items?.some((p) => p.metadata.uid === including)) return items;
    }
    const items = probes.custom
      .listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL })
      .then((list) => (list as { items: MapLeakProbe[] }).items);
    items.catch(() => recent.delete(namespace));
    if (recent.size > 1000) recent.clear();
    recent.set(namespace, { at: Date.now(), items });
    return items;
  };
}

/** Exit codes of `mapleak operator` after a signal (see README, "Stopping"). */
export const EXIT_STOPPED = 0;
export const EXIT_FORCED = 1;
const SIGNAL_NUMBERS: Record<string, number> = { SIGINT: 2, SIGTERM: 15 };

/**
 * `mapleak operator`: runs until SIGTERM/SIGINT, then stops gracefully
 * within --shutdown-timeout (0), or force-closes what is left at the
 * deadline (1). A second signal exits at once (128 + its number).
 */
export async function runOperatorCommand(args: string[]): Promise<number> {
  const config = operatorConfig(args);
  let log = jsonLogger({ component: 'mapleakprobe', role: config.role, identity: config.identity });
  let signals = 0;
  // Listening before start-up: a signal while it waits (on Redis, say) is a stop, not Node's default kill.
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      signals++;
      if (signals === 1) return resolve(signal);
      log.error('second signal: exiting now, without finishing the stop', { signal });
      process.exit(128 + (SIGNAL_NUMBERS[signal] ?? 0));
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  const operator = await startOperator(config);
  log = operator.log;
  const signal = await signalled;
  operator.log.info('signal received', { signal });
  const outcome = await operator.stop();
  // Whatever still holds the event loop (a request to a vanished server) must not keep the pod past its grace period.
  process.exit(outcome.graceful ? EXIT_STOPPED : EXIT_FORCED);
}

/** Comma-separated CIDRs, each checked (a typo must not widen or silently narrow the allowlist). */
function cidrList(text: string, flag: string): string[] {
  const cidrs = text.split(',').map((c) => c.trim()).filter(Boolean);
  try {
    AddressAllowlist.parse(cidrs);
  } catch (err) {
    throw err instanceof CidrListError ? new UsageError(`--${flag}: ${err.message}`) : err;
  }
  return cidrs;
}

/** `a,b,c` → namespace names ("*" for all), each checked. */
function namespaceList(text: string, flag: string): string[] {
  const names = text.split(',').map((n) => n.trim()).filter(Boolean);
  for (const ns of names) if (ns !== '*' && !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(ns)) throw new UsageError(`--${flag}: "${ns}" is not a namespace name`);
  return names;
}

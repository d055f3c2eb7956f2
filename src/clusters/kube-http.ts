import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { DEFAULT_CEILINGS } from '../api/ceilings.js';
import { CaptureError } from '../capture/errors.js';
import { fetchBytes, type FetchOptions } from '../capture/http.js';
import { AddressAllowlist } from './address-allowlist.js';
import { allowlistedHttpsAgent } from './dial-guard.js';
import type { RemoteCredentials } from './kubeconfig.js';
import { registerSecret } from '../observability/log.js';

/** TLS identity and headers for raw requests to an API server (bodies read as bytes). */
export interface KubeHttp {
  server: string;
  agent: https.Agent;
  headers: Record<string, string>;
  get(path: string, options: Pick<FetchOptions, 'timeoutMs' | 'maxBytes' | 'budget' | 'reserveBytes'>): Promise<Buffer>;
  /** Ends its pooled connections (a client evicted from a cache). */
  close(): void;
  /**
   * An agent of its own for one connection held open (a watch), with the
   * same TLS identity and the same dial guard as the pool, so it takes no
   * socket the pool's requests share.
   */
  dedicatedAgent(): https.Agent;
  /**
   * The pool of the pod log follows (memory triggers), apart from `agent`:
   * a follow holds its socket as long as the log streams, so on the shared
   * pool (8 sockets for a remote cluster) a few follows would leave pod
   * lists and captures waiting. Sized by the follows a worker may hold at
   * most (--max-trigger-follows), so no follow waits for a socket either.
   */
  readonly followAgent: https.Agent;
}

/** Follow sockets per cluster when no ceiling is given: the flag's default. */
export const DEFAULT_FOLLOW_SOCKETS = DEFAULT_CEILINGS.maxTriggerFollows;

/** The operator's own cluster, from its own (trusted) kubeconfig. */
export async function kubeHttp(kc: KubeConfig, followSockets = DEFAULT_FOLLOW_SOCKETS): Promise<KubeHttp> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const options: https.RequestOptions = {};
  // The operator's own config only: fills ca/cert/key and bearer-token headers.
  await kc.applyToHTTPSOptions(options);
  const tls: https.AgentOptions = { ca: options.ca, cert: options.cert, key: options.key, rejectUnauthorized: options.rejectUnauthorized ?? !cluster.skipTLSVerify };
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(options.headers ?? {})) if (typeof value === 'string') headers[name] = value;
  return client(cluster.server.replace(/\/+$/, ''), (pool) => new https.Agent({ ...tls, ...pool }), { keepAlive: true, maxSockets: 32 }, headers, followSockets);
}

/**
 * A tenant's cluster, built from the allowlisted inline values of its
 * kubeconfig only: no client-library auth code runs for it. Every
 * connection goes only to addresses `addresses` allows (the admin's
 * --remote-cluster-cidrs), checked as it is dialled; none by default.
 */
export function remoteKubeHttp(credentials: RemoteCredentials, addresses: AddressAllowlist = AddressAllowlist.parse([]), followSockets = DEFAULT_FOLLOW_SOCKETS): KubeHttp {
  const tls: https.AgentOptions = {
    ...(credentials.caPem ? { ca: credentials.caPem } : {}),
    ...(credentials.certPem ? { cert: credentials.certPem } : {}),
    ...(credentials.keyPem ? { key: credentials.keyPem } : {}),
    ...(credentials.tlsServerName ? { servername: credentials.tlsServerName } : {}),
    rejectUnauthorized: !credentials.insecureSkipTlsVerify,
  };
  // Not logged anywhere today; should a message ever quote it, the log redacts it.
  registerSecret(credentials.token);
  const remote = client(
    credentials.server,
    (pool) => allowlistedHttpsAgent(addresses, { ...tls, ...pool }),
    { keepAlive: true, maxSockets: 8 },
    credentials.token ? { authorization: `Bearer ${credentials.token}` } : {},
    followSockets,
  );
  return { ...remote, get: (path, o) => remote.get(path, o).catch((err: unknown) => Promise.reject(unreachableAsOne(err))) };
}

/** What a tenant reads when a remote API server could not be reached, for a pod list or a capture through its proxy alike. */
export const REMOTE_SERVER_UNREACHABLE = 'the remote API server could not be reached';

/**
 * A connection to a remote API server that failed (DNS, the allowlist, TCP,
 * TLS): the system's code would tell the tenant what the name resolved to
 * or what listens there, so it moves to `dialCode`, for the operator's log.
 */
export class RemoteServerUnreachable extends CaptureError {
  constructor(readonly dialCode: string | undefined) {
    super('ConnectionFailed', REMOTE_SERVER_UNREACHABLE);
  }
}

function unreachableAsOne(err: unknown): unknown {
  return err instanceof CaptureError && err.code === 'ConnectionFailed' ? new RemoteServerUnreachable(err.systemCode) : err;
}

/** Pool settings of an agent: the TLS identity and the dial guard come from the cluster. */
type PoolOptions = Pick<https.AgentOptions, 'keepAlive' | 'maxSockets'>;

function client(server: string, makeAgent: (pool: PoolOptions) => https.Agent, pool: PoolOptions, headers: Record<string, string>, followSockets: number): KubeHttp {
  const agent = makeAgent(pool);
  // Kept alive: a follow the server ends at once is reopened every --trigger-poll-interval.
  const followAgent = makeAgent({ keepAlive: true, maxSockets: Math.max(1, followSockets) });
  return {
    server,
    agent,
    followAgent,
    headers,
    get: (path, o) => fetchBytes(server + path, { ...o, agent, headers }),
    close: () => {
      agent.destroy();
      followAgent.destroy();
    },
    dedicatedAgent: () => makeAgent({ keepAlive: false, maxSockets: 1 }),
  };
}

import { X509Certificate, createPrivateKey } from 'node:crypto';
import { CORE_SCHEMA, load } from 'js-yaml';

/**
 * What a tenant's kubeconfig may say: where the API server is and inline
 * credentials, nothing that runs a program, reads a file, changes identity
 * or routes through a proxy. The same allowlist as Flux
 * (fluxcd/pkg runtime/client/kubeconfig.go).
 */
export interface RemoteCredentials {
  /** https://host[:port][/path], no trailing slash. */
  server: string;
  caPem?: Buffer;
  certPem?: Buffer;
  keyPem?: Buffer;
  token?: string;
  tlsServerName?: string;
  insecureSkipTlsVerify: boolean;
}

export interface KubeconfigPolicy {
  /** Honour insecure-skip-tls-verify (operator flag --insecure-kubeconfig-tls). */
  allowInsecureTls: boolean;
}

/** A kubeconfig the operator will not use; the message never quotes the file. */
export class KubeconfigRejected extends Error {
  override readonly name = 'KubeconfigRejected';
}

/** Secrets hold at most 1 MiB; a kubeconfig is a few KB. */
export const MAX_KUBECONFIG_BYTES = 256 * 1024;

const CLUSTER_FIELDS = new Set(['server', 'certificate-authority-data', 'tls-server-name', 'insecure-skip-tls-verify', 'extensions']);
const USER_FIELDS = new Set(['token', 'client-certificate-data', 'client-key-data', 'extensions']);
/** Fields that are refused by name, with why (operator-written text only). */
const REFUSED: Record<string, string> = {
  exec: 'exec credential plugins are not run',
  'auth-provider': 'auth-provider plugins are not run',
  'token-file': 'file references are not read (put the token inline)',
  tokenFile: 'file references are not read (put the token inline)',
  'client-certificate': 'file references are not read (use client-certificate-data)',
  'client-key': 'file references are not read (use client-key-data)',
  'certificate-authority': 'file references are not read (use certificate-authority-data)',
  as: 'impersonation is not allowed',
  'as-uid': 'impersonation is not allowed',
  'as-groups': 'impersonation is not allowed',
  'as-user-extra': 'impersonation is not allowed',
  username: 'basic authentication is not supported (use a token or a client certificate)',
  password: 'basic authentication is not supported (use a token or a client certificate)',
  'proxy-url': 'proxies are not supported',
};

/**
 * Parses a kubeconfig from a tenant's Secret as data. Only the current
 * context's cluster and user are read; everything outside the allowlist is
 * refused, never ignored, so a config that would behave differently under
 * kubectl does not silently lose its meaning here.
 */
export function parseTenantKubeconfig(bytes: Uint8Array, policy: KubeconfigPolicy): RemoteCredentials {
  if (bytes.length === 0) throw new KubeconfigRejected('the kubeconfig is empty');
  if (bytes.length > MAX_KUBECONFIG_BYTES) throw new KubeconfigRejected(`the kubeconfig is larger than ${MAX_KUBECONFIG_BYTES} bytes`);
  let doc: unknown;
  try {
    // CORE_SCHEMA: plain YAML types only, no tags that construct anything.
    doc = load(Buffer.from(bytes).toString('utf8'), { schema: CORE_SCHEMA, json: true });
  } catch {
    throw new KubeconfigRejected('the kubeconfig is not valid YAML or JSON');
  }
  if (!isRecord(doc)) throw new KubeconfigRejected('the kubeconfig is not a mapping');
  const currentName = doc['current-context'];
  if (typeof currentName !== 'string' || currentName === '') throw new KubeconfigRejected('the kubeconfig has no current-context');
  const context = named(doc.contexts, currentName, 'context');
  if (!context) throw new KubeconfigRejected('the current-context names no context in the kubeconfig');
  const contextBody = context.context;
  if (!isRecord(contextBody) || typeof contextBody.cluster !== 'string') throw new KubeconfigRejected('the current context names no cluster');
  const cluster = named(doc.clusters, contextBody.cluster, 'cluster')?.cluster;
  if (!isRecord(cluster)) throw new KubeconfigRejected('the current context names a cluster that is not in the kubeconfig');
  let user: Record<string, unknown> = {};
  if (contextBody.user !== undefined && contextBody.user !== '') {
    if (typeof contextBody.user !== 'string') throw new KubeconfigRejected('the current context has an invalid user');
    const found = named(doc.users, contextBody.user, 'user')?.user;
    if (!isRecord(found)) throw new KubeconfigRejected('the current context names a user that is not in the kubeconfig');
    user = found;
  }
  checkFields(cluster, CLUSTER_FIELDS, 'cluster');
  checkFields(user, USER_FIELDS, 'user');

  const server = parseServer(cluster.server);
  const insecure = cluster['insecure-skip-tls-verify'];
  if (insecure !== undefined && typeof insecure !== 'boolean') throw new KubeconfigRejected('cluster field insecure-skip-tls-verify must be true or false');
  if (insecure === true && !policy.allowInsecureTls) {
    throw new KubeconfigRejected('insecure-skip-tls-verify is not allowed by this operator (--insecure-kubeconfig-tls is off); give certificate-authority-data instead');
  }
  const credentials: RemoteCredentials = { server, insecureSkipTlsVerify: insecure === true };
  const ca = pemField(cluster['certificate-authority-data'], 'cluster field certificate-authority-data');
  if (ca) {
    try {
      new X509Certificate(ca);
    } catch {
      throw new KubeconfigRejected('cluster field certificate-authority-data is not a PEM certificate');
    }
    credentials.caPem = ca;
  }
  const serverName = cluster['tls-server-name'];
  if (serverName !== undefined) {
    if (typeof serverName !== 'string' || !/^[A-Za-z0-9.-]{1,253}$/.test(serverName)) throw new KubeconfigRejected('cluster field tls-server-name is not a host name');
    credentials.tlsServerName = serverName;
  }

  const token = user.token;
  if (token !== undefined) {
    // Printable ASCII only: it becomes an HTTP header.
    if (typeof token !== 'string' || !/^[\x21-\x7e]{1,16384}$/.test(token)) throw new KubeconfigRejected('user field token is not a bearer token');
    credentials.token = token;
  }
  const cert = pemField(user['client-certificate-data'], 'user field client-certificate-data');
  const key = pemField(user['client-key-data'], 'user field client-key-data');
  if (Boolean(cert) !== Boolean(key)) throw new KubeconfigRejected('client-certificate-data and client-key-data must be given together');
  if (cert && key) {
    try {
      new X509Certificate(cert);
      createPrivateKey(key);
    } catch {
      throw new KubeconfigRejected('the client certificate or key is not valid PEM');
    }
    credentials.certPem = cert;
    credentials.keyPem = key;
  }
  return credentials;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function named(list: unknown, name: string, what: string): Record<string, unknown> | undefined {
  if (list === undefined || list === null) return undefined;
  if (!Array.isArray(list)) throw new KubeconfigRejected(`the kubeconfig's ${what}s are not a list`);
  return list.find((entry): entry is Record<string, unknown> => isRecord(entry) && entry.name === name);
}

function checkFields(section: Record<string, unknown>, allowed: ReadonlySet<string>, what: 'cluster' | 'user'): void {
  for (const field of Object.keys(section)) {
    const refused = REFUSED[field];
    if (refused) throw new KubeconfigRejected(`${what} field ${field} is refused: ${refused}`);
    if (!allowed.has(field)) {
      const known = [...allowed].filter((f) => f !== 'extensions').join(', ');
      throw new KubeconfigRejected(`the ${what} has an unsupported field; only ${known} are accepted`);
    }
  }
}

function parseServer(value: unknown): string {
  if (typeof value !== 'string' || value === '') throw new KubeconfigRejected('the cluster has no server');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new KubeconfigRejected('cluster field server is not a URL');
  }
  if (url.protocol !== 'https:') throw new KubeconfigRejected('cluster field server must be an https:// URL');
  if (url.username || url.password || url.search || url.hash) throw new KubeconfigRejected('cluster field server must not carry credentials, a query or a fragment');
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

function pemField(value: unknown, what: string): Buffer | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/=\s]+$/.test(value)) throw new KubeconfigRejected(`${what} is not base64`);
  const decoded = Buffer.from(value, 'base64');
  if (!decoded.toString('latin1').includes('-----BEGIN ')) throw new KubeconfigRejected(`${what} is not base64-encoded PEM`);
  return decoded;
}

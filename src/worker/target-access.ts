import type { CoreV1Api } from '@kubernetes/client-node';
import type { KeyRef, MapLeakProbe } from '../api/types.js';
import type { TargetTls } from '../capture/direct.js';
import { withDeadline } from '../clusters/deadline.js';
import { registerSecret } from '../observability/log.js';

/**
 * A Secret the operator may send to a target must say so with this label.
 * Without it, anyone who may create a probe in a namespace could have the
 * operator read any Secret there and send it to a pod of theirs.
 */
export const CREDENTIALS_LABEL = 'mapleak.io/pprof-credentials';

const MAX_TOKEN_BYTES = 8 * 1024;
const MAX_CA_BYTES = 64 * 1024;

/** How to reach one probe's targets: scheme, headers (credentials) and TLS trust. */
export interface TargetAccess {
  scheme: 'http' | 'https';
  /** Sent only to this probe's targets; never logged, stored or written to status. */
  headers: Record<string, string>;
  tls?: TargetTls;
}

export type TargetAccessReason = 'PprofCredentialsNotAllowed' | 'PprofSecretNotFound' | 'PprofSecretNotLabelled' | 'PprofSecretInvalid' | 'PprofSecretUnreadable';

/** A fixed reason and a message the operator wrote (it names spec fields, never a Secret's content). */
export class TargetAccessError extends Error {
  override readonly name = 'TargetAccessError';
  constructor(
    readonly reason: TargetAccessReason,
    message: string,
  ) {
    super(message);
  }
}

export interface TargetAccessOptions {
  /** Namespaces whose probes may name credentials ("*": all); --pprof-credentials-namespaces. */
  allowedNamespaces: ReadonlySet<string>;
  timeoutMs: number;
}

/** Reads what a probe's spec.pprof names from its own namespace: nothing else, nothing unlabelled. */
export async function resolveTargetAccess(probe: MapLeakProbe, core: CoreV1Api, options: TargetAccessOptions): Promise<TargetAccess> {
  const pprof = probe.spec.pprof;
  const scheme = pprof.scheme === 'HTTPS' ? 'https' : 'http';
  const needsObjects = Boolean(pprof.authorization || pprof.basicAuth || pprof.tls?.ca);
  if (!needsObjects) {
    return { scheme, headers: {}, ...(pprof.tls ? { tls: { insecure: pprof.tls.insecureSkipVerify ?? false, ...(pprof.tls.serverName ? { serverName: pprof.tls.serverName } : {}) } } : {}) };
  }
  const namespace = probe.metadata.namespace;
  if (!options.allowedNamespaces.has('*') && !options.allowedNamespaces.has(namespace)) {
    throw new TargetAccessError('PprofCredentialsNotAllowed', 'this operator reads pprof credentials and CAs only in the namespaces its admin listed (--pprof-credentials-namespaces); this namespace is not one of them');
  }
  const secret = (ref: KeyRef, field: string, maxBytes: number): Promise<Buffer> => readKey(core, 'Secret', namespace, ref, field, maxBytes, options.timeoutMs);
  const headers: Record<string, string> = {};
  if (pprof.authorization) {
    const token = headerValue(await secret(pprof.authorization.credentials, 'spec.pprof.authorization.credentials', MAX_TOKEN_BYTES), 'spec.pprof.authorization.credentials');
    // Never logged; should a message ever quote it, the log redacts it.
    registerSecret(token);
    headers.authorization = `Bearer ${token}`;
  } else if (pprof.basicAuth) {
    const user = headerValue(await secret(pprof.basicAuth.username, 'spec.pprof.basicAuth.username', MAX_TOKEN_BYTES), 'spec.pprof.basicAuth.username');
    const password = headerValue(await secret(pprof.basicAuth.password, 'spec.pprof.basicAuth.password', MAX_TOKEN_BYTES), 'spec.pprof.basicAuth.password');
    if (user.includes(':')) throw new TargetAccessError('PprofSecretInvalid', 'the user name in spec.pprof.basicAuth.username contains ":"');
    headers.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    registerSecret(password);
    registerSecret(headers.authorization.slice('Basic '.length));
  }
  let tls: TargetTls | undefined;
  if (pprof.tls) {
    tls = { insecure: pprof.tls.insecureSkipVerify ?? false, ...(pprof.tls.serverName ? { serverName: pprof.tls.serverName } : {}) };
    const ca = pprof.tls.ca;
    if (ca?.secret || ca?.configMap) {
      const pem = ca.secret
        ? await secret(ca.secret, 'spec.pprof.tls.ca.secret', MAX_CA_BYTES)
        : await readKey(core, 'ConfigMap', namespace, ca.configMap as KeyRef, 'spec.pprof.tls.ca.configMap', MAX_CA_BYTES, options.timeoutMs);
      if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new TargetAccessError('PprofSecretInvalid', 'spec.pprof.tls.ca does not name a PEM certificate');
      tls.ca = pem;
    }
  }
  return { scheme, headers, ...(tls ? { tls } : {}) };
}

async function readKey(core: CoreV1Api, kind: 'Secret' | 'ConfigMap', namespace: string, ref: KeyRef, field: string, maxBytes: number, timeoutMs: number): Promise<Buffer> {
  let object: { metadata?: { labels?: Record<string, string> }; data?: Record<string, string> };
  try {
    const read = kind === 'Secret' ? core.readNamespacedSecret({ name: ref.name, namespace }) : core.readNamespacedConfigMap({ name: ref.name, namespace });
    object = await withDeadline(read, timeoutMs);
  } catch (err) {
    const code = (err as { code?: number }).code;
    if (code === 404) throw new TargetAccessError('PprofSecretNotFound', `the ${kind} named in ${field} does not exist in the probe's namespace`);
    throw new TargetAccessError('PprofSecretUnreadable', `the ${kind} named in ${field} could not be read${code ? ` (HTTP ${code})` : ''}`);
  }
  if (kind === 'Secret' && object.metadata?.labels?.[CREDENTIALS_LABEL] !== 'true') {
    throw new TargetAccessError('PprofSecretNotLabelled', `the Secret named in ${field} is not labelled ${CREDENTIALS_LABEL}=true`);
  }
  const raw = object.data?.[ref.key];
  if (raw === undefined) throw new TargetAccessError('PprofSecretInvalid', `the ${kind} named in ${field} has no such key`);
  const value = kind === 'Secret' ? Buffer.from(raw, 'base64') : Buffer.from(raw, 'utf8');
  if (value.length === 0 || value.length > maxBytes) throw new TargetAccessError('PprofSecretInvalid', `the value in ${field} is empty or larger than ${maxBytes} bytes`);
  return value;
}

/** A credential as one header line: trimmed, printable, no line breaks. */
function headerValue(value: Buffer, field: string): string {
  const text = value.toString('utf8').trim();
  if (!/^[\x20-\x7e]+$/.test(text)) throw new TargetAccessError('PprofSecretInvalid', `the value in ${field} is not printable ASCII on one line`);
  return text;
}

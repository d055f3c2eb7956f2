/**
 * An error as a log or a message may name it: its code when that is a
 * stable identifier (ECONNREFUSED, ERR_TLS_CERT_ALTNAME_INVALID), never its
 * message: TLS and parser messages quote the peer's certificate or bytes.
 */
export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Z0-9_]{2,40}$/.test(code) ? code : undefined;
}

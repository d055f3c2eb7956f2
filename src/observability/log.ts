export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_KEYS = /pass(word)?|token|secret|authorization|kubeconfig|cert|key$/i;
const REDACTED = '[redacted]';

/** Text that is a credential whatever field it sits in. */
const SECRET_SHAPES: readonly [RegExp, string][] = [
  [/-----BEGIN [A-Z0-9 ]+-----[\s\S]*?(-----END [A-Z0-9 ]+-----|$)/g, REDACTED],
  [/\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, `$1 ${REDACTED}`],
  // JWTs, e.g. ServiceAccount tokens.
  [/\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/g, REDACTED],
];

/**
 * Known secret values: the Redis passwords, the operator's own token, and
 * the tenants' credentials in use (remote kubeconfig tokens, pprof bearer
 * tokens and basic-auth passwords; client keys are PEM, redacted by shape);
 * the newest few hundred.
 */
const knownSecrets = new Set<string>();
const MAX_KNOWN_SECRETS = 256;

/** Redact `value` wherever it appears in later log lines. Short values are ignored (they would redact ordinary words). */
export function registerSecret(value: string | undefined): void {
  if (!value || value.length < 8) return;
  knownSecrets.delete(value);
  knownSecrets.add(value);
  if (knownSecrets.size > MAX_KNOWN_SECRETS) {
    const [oldest] = knownSecrets;
    if (oldest !== undefined) knownSecrets.delete(oldest);
  }
}

/** A string with known secret values and credential-shaped text replaced. */
export function redactText(text: string): string {
  let out = text;
  for (const secret of knownSecrets) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  for (const [shape, replacement] of SECRET_SHAPES) out = out.replace(shape, replacement);
  return out;
}

function redactValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redactText(value);
  if (value instanceof Error) return redactText(value.message);
  if (depth > 4 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEYS.test(k) ? REDACTED : redactValue(v, depth + 1);
  return out;
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/**
 * One JSON object per line on stdout. Redacted by field name (fields that
 * look like secrets) and by value (known secrets, PEM blocks, bearer tokens,
 * JWTs), in every string at any depth.
 */
export function jsonLogger(base: Record<string, unknown> = {}, minLevel: LogLevel = (process.env.LOG_LEVEL as LogLevel) ?? 'info', write: (line: string) => void = (l) => process.stdout.write(l)): Logger {
  const emit = (level: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (LEVELS[level] < (LEVELS[minLevel] ?? 20)) return;
    const record = redactValue({ time: new Date().toISOString(), level, msg, ...base, ...fields }, 0);
    write(`${JSON.stringify(record)}\n`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => jsonLogger({ ...base, ...fields }, minLevel, write),
  };
}

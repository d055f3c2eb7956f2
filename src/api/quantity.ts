/**
 * Kubernetes resource quantities (`512Mi`, `1G`, `1.5Gi`, `129e6`) as a
 * byte count, the way the API server's resource.Quantity reads them:
 * binary suffixes (Ki..Ei), decimal ones (k, M..E, and m for milli) or
 * an exponent. Rounded up to whole bytes. undefined for anything else:
 * a remote API server's pod spec is the tenant's and may say anything.
 */
const QUANTITY = /^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][-+]?[0-9]{1,3})?$/;

const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const DECIMAL: Record<string, number> = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };

export function parseMemoryQuantity(text: string): number | undefined {
  if (text.length > 64) return undefined;
  const match = QUANTITY.exec(text.trim());
  if (!match) return undefined;
  const number = Number(match[1]);
  const suffix = match[2] ?? '';
  const factor = BINARY[suffix] ?? DECIMAL[suffix] ?? (/^[eE]/.test(suffix) ? 10 ** Number(suffix.slice(1)) : 1);
  const bytes = Math.ceil(number * factor);
  return Number.isSafeInteger(bytes) && bytes >= 0 ? bytes : undefined;
}

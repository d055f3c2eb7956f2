import { isIP } from 'node:net';

/** One address range: `bits` is the network address as a 32- or 128-bit number. */
export interface Cidr {
  family: 4 | 6;
  bits: bigint;
  prefix: number;
  /** As written by the admin (canonical: no host bits set). */
  text: string;
}

/** An admin's list the operator could not read; the message quotes the admin's own text only. */
export class CidrListError extends Error {
  override readonly name = 'CidrListError';
}

/**
 * Ranges nobody names as a remote API server or pod by accident: a listed
 * CIDR reaches an address in one of them only when it lies within the most
 * specific such range that holds the address (127.0.0.1/32 allows loopback,
 * 0.0.0.0/0 does not; 169.254.0.0/16 does not allow the metadata address,
 * only 169.254.169.254/32 does). 0.0.0.0/8 and :: are here because Linux
 * dials them as the local host.
 */
const SPECIAL_V4 = ['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '169.254.169.254/32'];
const SPECIAL_V6 = ['::/128', '::1/128', 'fe80::/10', 'fd00:ec2::254/128'];
/** NAT64's well-known prefix (RFC 6052): 64:ff9b::a9fe:a9fe is the metadata address through a NAT64 gateway. */
const NAT64 = parseCidr('64:ff9b::/96');
const SPECIAL: readonly Cidr[] = [
  ...SPECIAL_V4.map(parseCidr),
  ...SPECIAL_V6.map(parseCidr),
  ...SPECIAL_V4.map(parseCidr).map((v4) => ({ family: 6 as const, bits: NAT64.bits | v4.bits, prefix: 96 + v4.prefix, text: `64:ff9b::/96+${v4.text}` })),
];

/**
 * The addresses the operator may dial for tenant-named endpoints (remote
 * API servers, remote pod IPs): pure, no I/O. An empty list allows nothing.
 */
export class AddressAllowlist {
  private constructor(readonly cidrs: readonly Cidr[]) {}

  /** From the admin's list (a flag split at commas, or chart values); throws CidrListError on anything that is not a canonical CIDR. */
  static parse(list: readonly string[]): AddressAllowlist {
    return new AddressAllowlist(list.map((t) => t.trim()).filter((t) => t !== '').map(parseCidr));
  }

  get empty(): boolean {
    return this.cidrs.length === 0;
  }

  /** Whether `address` (an IP literal; IPv4-mapped IPv6 counts as its IPv4) may be dialled. Anything that is not an IP is refused. */
  allows(address: string): boolean {
    const ip = parseAddress(address);
    if (!ip) return false;
    const special = mostSpecific(SPECIAL.filter((block) => contains(block, ip)));
    return this.cidrs.some((cidr) => contains(cidr, ip) && (!special || within(cidr, special)));
  }
}

/** `a.b.c.d/n` or `v6/n`, prefix required, no host bits set (the NetworkPolicy's ipBlock takes the same text). */
export function parseCidr(text: string): Cidr {
  const slash = text.lastIndexOf('/');
  const prefixText = slash < 0 ? '' : text.slice(slash + 1);
  const ip = slash < 0 ? undefined : parseAddress(text.slice(0, slash), false);
  if (!ip || !/^\d{1,3}$/.test(prefixText)) throw new CidrListError(`"${text}" is not a CIDR such as 10.0.0.0/16 or fd00::/64`);
  const prefix = Number(prefixText);
  const width = ip.family === 4 ? 32 : 128;
  if (prefix > width) throw new CidrListError(`"${text}": the prefix length is at most ${width}`);
  const hostBits = (1n << BigInt(width - prefix)) - 1n;
  if ((ip.bits & hostBits) !== 0n) throw new CidrListError(`"${text}" has host bits set (the network is ${formatBits(ip.bits & ~hostBits, ip.family)}/${prefix})`);
  return { family: ip.family, bits: ip.bits, prefix, text };
}

function contains(cidr: Cidr, ip: { family: 4 | 6; bits: bigint }): boolean {
  if (cidr.family !== ip.family) return false;
  const shift = BigInt((cidr.family === 4 ? 32 : 128) - cidr.prefix);
  return ip.bits >> shift === cidr.bits >> shift;
}

/** `inner` lies entirely inside `outer`. */
function within(inner: Cidr, outer: Cidr): boolean {
  return inner.prefix >= outer.prefix && contains(outer, inner);
}

function mostSpecific(blocks: Cidr[]): Cidr | undefined {
  return blocks.reduce<Cidr | undefined>((best, b) => (!best || b.prefix > best.prefix ? b : best), undefined);
}

/** An IP literal as a number; IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes the IPv4 it dials, unless `unmap` is false (CIDR text). */
function parseAddress(text: string, unmap = true): { family: 4 | 6; bits: bigint } | undefined {
  // A zone (fe80::1%eth0) names an interface, not another address.
  const address = text.includes('%') ? text.slice(0, text.indexOf('%')) : text;
  const family = isIP(address);
  if (family === 4) return { family: 4, bits: v4Bits(address) };
  if (family !== 6) return undefined;
  const bits = v6Bits(address);
  if (unmap && bits >> 32n === 0xffffn) return { family: 4, bits: bits & 0xffffffffn };
  return { family: 6, bits };
}

function v4Bits(address: string): bigint {
  return address.split('.').reduce((n, part) => (n << 8n) | BigInt(Number(part)), 0n);
}

function v6Bits(address: string): bigint {
  let text = address.toLowerCase();
  // A trailing dotted IPv4 is the last 32 bits.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1]) {
    const v4 = v4Bits(dotted[1]);
    text = `${text.slice(0, dotted.index)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  return groups.reduce((n, group) => (n << 16n) | BigInt(parseInt(group, 16)), 0n);
}

function formatBits(bits: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((bits >> s) & 0xffn)).join('.');
  const groups = Array.from({ length: 8 }, (_, i) => ((bits >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::').replace(/:::+/, '::');
}

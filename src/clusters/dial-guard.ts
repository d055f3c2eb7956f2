import dns, { type LookupAddress, type LookupAllOptions, type LookupOneOptions } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import type { Duplex } from 'node:stream';
import type { AddressAllowlist } from './address-allowlist.js';

/** The error code of a dial the allowlist refused (a stable code: logs and metrics may name it). */
export const ADDRESS_NOT_ALLOWED = 'ERR_ADDRESS_NOT_ALLOWED';

export class AddressNotAllowedError extends Error {
  override readonly name = 'AddressNotAllowedError';
  readonly code = ADDRESS_NOT_ALLOWED;
  constructor() {
    // Never the address or the name: this text can reach a log.
    super('the address is not in the operator\'s allowlist');
  }
}

/**
 * A name's addresses, keeping only the allowed ones. Node connects to what
 * the lookup returns, so the address checked is the address dialled (no
 * second resolution a rebinding DNS server could answer differently); TLS
 * still verifies the certificate against the name, which stays the
 * socket's host and SNI. No allowed address: the dial fails with
 * ADDRESS_NOT_ALLOWED before any connection.
 */
export function allowlistedLookup(allowlist: AddressAllowlist): LookupFunction {
  return (hostname, options, callback) => {
    const all: LookupAllOptions = { ...(options as LookupOneOptions), all: true };
    dns.lookup(hostname, all, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, '', 0);
      const allowed = addresses.filter((a) => allowlist.allows(a.address));
      if (allowed.length === 0) return callback(new AddressNotAllowedError(), '', 0);
      if ((options as LookupAllOptions).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, allowed);
      const first = allowed[0] as LookupAddress;
      callback(null, first.address, first.family);
    });
  };
}

type ConnectOptions = { host?: string | null; lookup?: LookupFunction };
type Oncreate = (err: Error | null, socket?: Duplex) => void;

/**
 * An https.Agent (or http.Agent) that dials only addresses the allowlist
 * allows: an IP literal is checked as it is (Node skips the lookup for
 * those), a name through allowlistedLookup.
 */
export function allowlistedHttpsAgent(allowlist: AddressAllowlist, options: https.AgentOptions): https.Agent {
  return new (guarded(https.Agent, allowlist))(options);
}

export function allowlistedHttpAgent(allowlist: AddressAllowlist, options: http.AgentOptions): http.Agent {
  return new (guarded(http.Agent, allowlist))(options);
}

function guarded<A extends typeof http.Agent | typeof https.Agent>(Base: A, allowlist: AddressAllowlist): A {
  const lookup = allowlistedLookup(allowlist);
  // createConnection is public API of both agents; the callback form lets a refusal fail the request like a connection error.
  const Guarded = class extends (Base as typeof http.Agent) {
    override createConnection(options: ConnectOptions, oncreate: Oncreate): Duplex | undefined {
      const host = (options.host ?? '').replace(/^\[|\]$/g, '');
      if (isIP(host)) {
        if (!allowlist.allows(host)) {
          process.nextTick(() => oncreate(new AddressNotAllowedError()));
          return undefined;
        }
        return (Base.prototype as unknown as { createConnection(o: ConnectOptions, cb: Oncreate): Duplex }).createConnection.call(this, options, oncreate);
      }
      return (Base.prototype as unknown as { createConnection(o: ConnectOptions, cb: Oncreate): Duplex }).createConnection.call(this, { ...options, lookup }, oncreate);
    }
  };
  return Guarded as unknown as A;
}

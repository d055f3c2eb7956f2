import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh CA and a server certificate whose only name is the DNS name `name` (no IP address): a client that verifies it must verify the name. */
export function certificateForName(name: string): { ca: Buffer; cert: Buffer; key: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'mapleak-cert-'));
  const file = (f: string): string => join(dir, f);
  const openssl = (...args: string[]): void => void execFileSync('openssl', args, { stdio: 'ignore' });
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${name} test CA`, '-keyout', file('ca.key'), '-out', file('ca.crt'));
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', file('server.key'), '-out', file('server.csr'));
  writeFileSync(file('san.ext'), `subjectAltName=DNS:${name}\n`);
  openssl('x509', '-req', '-in', file('server.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', file('san.ext'), '-out', file('server.crt'));
  return { ca: readFileSync(file('ca.crt')), cert: readFileSync(file('server.crt')), key: readFileSync(file('server.key')) };
}

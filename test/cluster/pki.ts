// Certificates for one local cluster, made with the openssl CLI (Node cannot
// issue X.509 certificates). One CA signs the apiserver's serving cert (also
// used by kwok's kubelet server) and the admin client cert (group
// system:masters); a separate RSA key pair signs service-account tokens.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './processes.js';

export interface ClusterPki {
  dir: string;
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  adminCert: string;
  adminKey: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
}

export function pkiPaths(dir: string): ClusterPki {
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    servingCert: join(dir, 'serving.crt'),
    servingKey: join(dir, 'serving.key'),
    adminCert: join(dir, 'admin.crt'),
    adminKey: join(dir, 'admin.key'),
    serviceAccountKey: join(dir, 'sa.key'),
    serviceAccountPub: join(dir, 'sa.pub'),
  };
}

/** Creates the certificates unless they already exist (an idempotent `up` keeps them). */
export async function ensurePki(dir: string): Promise<ClusterPki> {
  const pki = pkiPaths(dir);
  if (existsSync(pki.adminCert) && existsSync(pki.serviceAccountPub)) return pki;
  mkdirSync(dir, { recursive: true });
  const days = '3650';
  await run('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', days,
    '-keyout', pki.caKey, '-out', pki.caCert, '-subj', '/CN=mapleakprobe-local-ca',
  ]);
  await issueCert(pki, 'serving', '/CN=kube-apiserver', [
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc',
    'extendedKeyUsage=serverAuth',
    'keyUsage=critical,digitalSignature,keyEncipherment',
  ]);
  await issueCert(pki, 'admin', '/O=system:masters/CN=mapleak-admin', [
    'extendedKeyUsage=clientAuth',
    'keyUsage=critical,digitalSignature,keyEncipherment',
  ]);
  await run('openssl', ['genrsa', '-out', pki.serviceAccountKey, '2048']);
  await run('openssl', ['rsa', '-in', pki.serviceAccountKey, '-pubout', '-out', pki.serviceAccountPub]);
  return pki;
}

async function issueCert(pki: ClusterPki, name: string, subject: string, extensions: string[]): Promise<void> {
  const key = join(pki.dir, `${name}.key`);
  const csr = join(pki.dir, `${name}.csr`);
  const ext = join(pki.dir, `${name}.ext`);
  writeFileSync(ext, extensions.join('\n') + '\n');
  await run('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', subject]);
  await run('openssl', [
    'x509', '-req', '-in', csr, '-CA', pki.caCert, '-CAkey', pki.caKey, '-CAcreateserial',
    '-days', '3650', '-extfile', ext, '-out', join(pki.dir, `${name}.crt`),
  ]);
}

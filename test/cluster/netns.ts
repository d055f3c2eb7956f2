// Network namespaces for pods: each pod's program runs in a namespace of its
// own holding the pod IP kwok assigned, joined to the root namespace by a veth
// pair. The apiserver proxy refuses loopback pod IPs, so this is how a pod gets
// a real, reachable, non-loopback address that only exists on this machine.
//
// Layout for a pod with IP P in cluster index I (gateway G = 10.244.I.254):
//   root ns:  veth "<prefix>h<id>" with G/32, route P/32 via it (src G)
//   pod ns:   "eth0" with P/32, route G dev eth0, default via G; lo up
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './processes.js';

export interface PodNetwork {
  namespace: string;
  hostVeth: string;
  podIp: string;
  gatewayIp: string;
}

/** Prefix of every netns and veth of one cluster, so `down` can sweep them. */
export function networkPrefix(clusterIndex: number): string {
  return `mlp${clusterIndex}`;
}

/** Deterministic, short (veth names are at most 15 bytes) names for a pod's network. */
export function podNetworkNames(clusterIndex: number, podKey: string): { namespace: string; hostVeth: string; peerVeth: string } {
  const id = createHash('sha256').update(podKey).digest('hex').slice(0, 8);
  const prefix = networkPrefix(clusterIndex);
  return { namespace: `${prefix}-${id}`, hostVeth: `${prefix}h${id}`, peerVeth: `${prefix}p${id}` };
}

/** Every cluster's pod CIDR (10.244.I.0/24) lies in this range. */
export const POD_RANGE = '10.244.0.0/16';

/**
 * An `unreachable` route for the whole pod range in the root namespace:
 * a pod IP whose namespace is gone (a deleted pod, a crashed test) gets an
 * immediate error here instead of being sent to the default gateway. Each
 * live pod's /32 route is more specific and wins. Idempotent.
 */
export async function ensurePodRangeUnreachable(): Promise<void> {
  await ip('route', 'replace', 'unreachable', POD_RANGE);
}

export async function createPodNetwork(
  clusterIndex: number,
  podKey: string,
  podIp: string,
  gatewayIp: string,
): Promise<PodNetwork> {
  const { namespace, hostVeth, peerVeth } = podNetworkNames(clusterIndex, podKey);
  await ensurePodRangeUnreachable();
  await deletePodNetwork({ namespace, hostVeth }); // leftovers of an earlier pod with this name
  try {
    await ip('netns', 'add', namespace);
    await ip('link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', peerVeth);
    await ip('link', 'set', peerVeth, 'netns', namespace);
    await ip('-n', namespace, 'link', 'set', peerVeth, 'name', 'eth0');
    await ip('-n', namespace, 'addr', 'add', `${podIp}/32`, 'dev', 'eth0');
    await ip('-n', namespace, 'link', 'set', 'lo', 'up');
    await ip('-n', namespace, 'link', 'set', 'eth0', 'up');
    await ip('-n', namespace, 'route', 'add', `${gatewayIp}/32`, 'dev', 'eth0', 'scope', 'link');
    await ip('-n', namespace, 'route', 'add', 'default', 'via', gatewayIp, 'dev', 'eth0');
    await ip('addr', 'add', `${gatewayIp}/32`, 'dev', hostVeth);
    await ip('link', 'set', hostVeth, 'up');
    await ip('route', 'replace', `${podIp}/32`, 'dev', hostVeth, 'src', gatewayIp);
  } catch (error) {
    await deletePodNetwork({ namespace, hostVeth });
    throw error;
  }
  return { namespace, hostVeth, podIp, gatewayIp };
}

/** Removes a pod's namespace and veth pair (deleting either end deletes both); ignores what is gone. */
export async function deletePodNetwork(network: { namespace: string; hostVeth: string }): Promise<void> {
  await ip('link', 'del', network.hostVeth).catch(() => undefined);
  await ip('netns', 'del', network.namespace).catch(() => undefined);
}

/** Removes every netns and veth whose name starts with the cluster's prefix. */
export async function sweepClusterNetworks(clusterIndex: number): Promise<string[]> {
  const prefix = networkPrefix(clusterIndex);
  const removed: string[] = [];
  for (const namespace of await listNetns()) {
    if (!namespace.startsWith(`${prefix}-`)) continue;
    await ip('netns', 'del', namespace).catch(() => undefined);
    removed.push(`netns ${namespace}`);
  }
  for (const link of await listLinks()) {
    if (!link.startsWith(`${prefix}h`) && !link.startsWith(`${prefix}p`)) continue;
    await ip('link', 'del', link).catch(() => undefined);
    removed.push(`veth ${link}`);
  }
  // Memory cgroups of pods run with memoryLimitBytes are named after their netns (pod-supervisor.ts).
  const cgroups = existsSync('/sys/fs/cgroup/memory') ? '/sys/fs/cgroup/memory' : '/sys/fs/cgroup';
  for (const entry of existsSync(cgroups) ? readdirSync(cgroups) : []) {
    if (!entry.startsWith(`${prefix}-`)) continue;
    try {
      rmdirSync(join(cgroups, entry));
      removed.push(`memory cgroup ${entry}`);
    } catch {
      // Still has a process (its supervisor was killed and the program lives on): left for the next sweep.
    }
  }
  return removed;
}

export async function listNetns(): Promise<string[]> {
  const { stdout } = await ip('netns', 'list');
  return stdout
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[0] ?? '')
    .filter((name) => name !== '');
}

async function listLinks(): Promise<string[]> {
  const { stdout } = await ip('-o', 'link', 'show');
  // "12: mlp1h0a1b2c3d@if11: <BROADCAST,..." -> "mlp1h0a1b2c3d"
  return stdout
    .split('\n')
    .map((line) => line.split(':')[1]?.trim().split('@')[0] ?? '')
    .filter((name) => name !== '');
}

function ip(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run('ip', args);
}

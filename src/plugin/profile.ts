import type { KubeConfig } from '@kubernetes/client-node';
import { CaptureError } from '../capture/errors.js';
import { fetchBytes } from '../capture/http.js';
import type { IncidentStatus } from '../api/types.js';
import type { CaptureRef } from '../store/series-store.js';
import type { ProbeView } from '../report/probe-page.js';
import { PluginError } from './kube.js';

export interface OperatorApi {
  /** The operator's HTTP server, e.g. http://127.0.0.1:8080 after a port-forward. */
  url: string;
  token: string;
  timeoutMs: number;
  maxBytes: number;
}

/**
 * The bearer token the user's kubeconfig sends (a token, a token file or an
 * exec plugin), for the operator's API: it asks the API server who that is.
 * Client certificates cannot be forwarded, so such users pass --token.
 */
export async function userBearerToken(kc: KubeConfig): Promise<string | undefined> {
  const options: { headers?: Record<string, unknown> } = {};
  await kc.applyToHTTPSOptions(options);
  const header = options.headers?.Authorization ?? options.headers?.authorization;
  const match = typeof header === 'string' ? /^Bearer (\S+)$/i.exec(header) : null;
  return match?.[1];
}

async function get(api: OperatorApi, path: string, what: string, namespace: string): Promise<Buffer> {
  try {
    return await fetchBytes(`${api.url.replace(/\/+$/, '')}${path}`, { headers: { authorization: `Bearer ${api.token}` }, timeoutMs: api.timeoutMs, maxBytes: api.maxBytes });
  } catch (err) {
    if (!(err instanceof CaptureError)) throw err;
    if (err.status === 401) throw new PluginError('the operator did not accept your token (expired? pass --token, e.g. from kubectl create token)');
    if (err.status === 403) {
      const role = what === 'profile' ? 'get on mapleakprobes/profiles (ClusterRole mapleakprobe-profile-reader)' : 'get on mapleakprobes (ClusterRole mapleakprobe-viewer)';
      throw new PluginError(`forbidden: the operator requires ${role} in namespace ${namespace}`);
    }
    if (err.status === 404) throw new PluginError(what === 'profile' ? 'that capture is no longer stored (captures expire after the probe\'s window, an incident\'s after the operator\'s --incident-retention)' : 'no such MapLeakProbe');
    throw new PluginError(`operator API: ${err.message}`);
  }
}

export async function readProbeView(api: OperatorApi, namespace: string, name: string): Promise<ProbeView> {
  const body = await get(api, `/api/v1/namespaces/${encodeURIComponent(namespace)}/mapleakprobes/${encodeURIComponent(name)}`, 'probe', namespace);
  try {
    return JSON.parse(body.toString('utf8')) as ProbeView;
  } catch {
    throw new PluginError('the operator API answered something that is not JSON (is --url the operator?)');
  }
}

/** `latest`: the newest capture over the probe's pods (or of --pod); otherwise a capture id as listed by the API. */
export function pickCapture(view: ProbeView, capture: string, pod: string | undefined): CaptureRef & { pod: string } {
  const targets = view.targets.filter((t) => pod === undefined || t.name === pod);
  if (pod !== undefined && targets.length === 0) throw new PluginError(`pod ${pod} is not a target of this probe`);
  const all = targets.flatMap((t) => t.captures.map((c) => ({ ...c, pod: t.name })));
  if (capture === 'latest') {
    const latest = all.sort((a, b) => Date.parse(b.time) - Date.parse(a.time))[0];
    if (!latest) throw new PluginError('no captures stored yet for this probe');
    return latest;
  }
  const found = all.find((c) => c.id === capture);
  if (!found) throw new PluginError(`no capture ${capture}; stored: ${all.map((c) => c.id).join(', ') || 'none'}`);
  return found;
}

/** An incident as the operator's API lists it: the status's fields and each kept capture's download. */
export type ListedIncident = IncidentStatus & { captures: { id: string; time: string; profile: string | null }[] };

export async function readIncidents(api: OperatorApi, namespace: string, name: string): Promise<ListedIncident[]> {
  const body = await get(api, `/api/v1/namespaces/${encodeURIComponent(namespace)}/mapleakprobes/${encodeURIComponent(name)}/incidents`, 'probe', namespace);
  let incidents: unknown;
  try {
    incidents = (JSON.parse(body.toString('utf8')) as { incidents?: unknown }).incidents;
  } catch {
    throw new PluginError('the operator API answered something that is not JSON (is --url the operator?)');
  }
  const wellFormed = (i: unknown): i is ListedIncident => typeof i === 'object' && i !== null && Array.isArray((i as ListedIncident).captures);
  if (!Array.isArray(incidents) || !incidents.every(wellFormed)) throw new PluginError('the operator API answered JSON without an incidents list (is --url the operator, and as new as this plugin?)');
  return incidents;
}

/** Incident `number` (1: the newest), and of it the last capture before the end (`latest`) or the one with id `capture`. */
export function pickIncidentCapture(incidents: readonly ListedIncident[], number: number, capture: string): CaptureRef & { pod: string } {
  const incident = incidents[number - 1];
  if (!incident) throw new PluginError(incidents.length === 0 ? 'this probe has no incidents' : `no incident ${number}; there are ${incidents.length} (kubectl mapleak incidents NAME lists them)`);
  const kept = incident.captures.filter((c) => c.profile !== null);
  const found = capture === 'latest' ? kept.at(-1) : kept.find((c) => c.id === capture);
  if (!found) throw new PluginError(capture === 'latest' ? `incident ${number} has no kept capture` : `incident ${number} keeps no capture ${capture}; kept: ${kept.map((c) => c.id).join(', ') || 'none'}`);
  return { id: found.id, time: found.time, podUid: '', pod: incident.pod };
}

export function downloadProfile(api: OperatorApi, namespace: string, name: string, id: string): Promise<Buffer> {
  return get(api, `/api/v1/namespaces/${encodeURIComponent(namespace)}/mapleakprobes/${encodeURIComponent(name)}/captures/${encodeURIComponent(id)}/profile`, 'profile', namespace);
}

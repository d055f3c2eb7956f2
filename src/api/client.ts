import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { GROUP, KIND, PLURAL, VERSION, type MapLeakProbe, type MapLeakProbeStatus } from './types.js';

const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** A JSON merge patch of the status: a field set to null is removed. */
export type StatusPatch = { [K in keyof MapLeakProbeStatus]?: MapLeakProbeStatus[K] | null };
const MAX_CONFLICT_RETRIES = 10;

/** Jittered, growing pauses between conflicting writes, so racing writers spread out. */
function conflictBackoff(attempt: number): Promise<void> {
  const ms = Math.min(500, 10 * 2 ** attempt) * (0.5 + Math.random());
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function isNotFound(err: unknown): boolean {
  return (err as { code?: number }).code === 404;
}

export function isConflict(err: unknown): boolean {
  return (err as { code?: number }).code === 409;
}

/** MapLeakProbe reads and writes against the API server. */
export class ProbeClient {
  readonly custom: CustomObjectsApi;
  readonly core: CoreV1Api;

  constructor(
    kc: KubeConfig,
    private readonly component = 'mapleakprobe',
  ) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.core = kc.makeApiClient(CoreV1Api);
  }

  async get(namespace: string, name: string): Promise<MapLeakProbe | undefined> {
    try {
      return (await this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name })) as MapLeakProbe;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async list(): Promise<{ items: MapLeakProbe[]; resourceVersion: string }> {
    const list = (await this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })) as {
      items: MapLeakProbe[];
      metadata?: { resourceVersion?: string };
    };
    return { items: list.items, resourceVersion: list.metadata?.resourceVersion ?? '' };
  }

  /**
   * Read-modify-write of the status with the object's resourceVersion, so a
   * concurrent writer makes this attempt fail with 409 and retry on fresh
   * data. `mutate` returns undefined to skip (e.g. the probe changed uid).
   */
  async updateStatus(namespace: string, name: string, mutate: (probe: MapLeakProbe) => StatusPatch | undefined): Promise<MapLeakProbe | undefined> {
    for (let attempt = 0; ; attempt++) {
      const probe = await this.get(namespace, name);
      if (!probe) return undefined;
      const status = mutate(probe);
      if (!status) return probe;
      try {
        return (await this.custom.patchNamespacedCustomObjectStatus(
          {
            group: GROUP,
            version: VERSION,
            namespace,
            plural: PLURAL,
            name,
            body: { metadata: { resourceVersion: probe.metadata.resourceVersion }, status },
          },
          MERGE_PATCH,
        )) as MapLeakProbe;
      } catch (err) {
        if (isConflict(err) && attempt < MAX_CONFLICT_RETRIES) {
          await conflictBackoff(attempt);
          continue;
        }
        if (isNotFound(err)) return undefined;
        throw err;
      }
    }
  }

  async setFinalizers(probe: MapLeakProbe, finalizers: string[]): Promise<MapLeakProbe> {
    return (await this.custom.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        namespace: probe.metadata.namespace,
        plural: PLURAL,
        name: probe.metadata.name,
        body: { metadata: { finalizers, resourceVersion: probe.metadata.resourceVersion } },
      },
      MERGE_PATCH,
    )) as MapLeakProbe;
  }

  /** A core/v1 Event on the probe; failures to record one are not worth failing a round. */
  async event(probe: MapLeakProbe, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const now = new Date();
    try {
      await this.core.createNamespacedEvent({
        namespace: probe.metadata.namespace,
        body: {
          metadata: { generateName: `${probe.metadata.name}.`, namespace: probe.metadata.namespace },
          involvedObject: {
            apiVersion: `${GROUP}/${VERSION}`,
            kind: KIND,
            name: probe.metadata.name,
            namespace: probe.metadata.namespace,
            uid: probe.metadata.uid,
          },
          type,
          reason,
          message: message.slice(0, 1024),
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
          source: { component: this.component },
          reportingComponent: this.component,
        },
      });
    } catch {
      // Events are best effort.
    }
  }
}

import type { MapLeakProbe } from '../api/types.js';
import { selectorToString } from '../api/types.js';
import { formatBytes } from '../analysis/bytes.js';
import { printableLines } from '../api/bounded.js';
import { frameLabel, table } from '../cli/format.js';

/** `kubectl mapleak get`: one row per probe, the verdict and what to look at first. */
export function formatProbeList(probes: readonly MapLeakProbe[], now: Date, allNamespaces: boolean): string {
  if (probes.length === 0) return allNamespaces ? 'No MapLeakProbes found.' : 'No MapLeakProbes found in this namespace.';
  const header = [...(allNamespaces ? ['NAMESPACE'] : []), 'NAME', 'VERDICT', 'TARGETS', 'ERRORS', 'MAP MEMORY', 'LAST CAPTURE', 'TOP FINDING'];
  const rows = probes.map((p) => {
    const status = p.status ?? {};
    const failing = (status.targets ?? []).filter((t) => t.lastError).length;
    const top = status.findings?.[0];
    return [
      ...(allNamespaces ? [p.metadata.namespace] : []),
      p.metadata.name,
      status.verdict ?? 'Unknown',
      String(status.targetCount ?? 0),
      String(failing),
      status.mapMemory ?? '-',
      status.lastCaptureTime ? age(status.lastCaptureTime, now) : '-',
      top ? `${top.kind}/${top.pattern} ${frameLabel(top.site)} ${signed(top.growthBytesPerHour)}/h` : '-',
    ];
  });
  return table([header, ...rows]).join('\n');
}

/** `kubectl mapleak describe NAME`: everything the status says, readable top to bottom. */
export function formatProbeDescription(p: MapLeakProbe, now: Date): string {
  const status = p.status ?? {};
  const lines: string[] = [];
  const field = (name: string, value: string): void => void lines.push(`${`${name}:`.padEnd(14)}${value}`);
  field('Name', p.metadata.name);
  field('Namespace', p.metadata.namespace);
  field('Selector', selectorToString(p.spec.selector) || '-');
  field('Interval', `${p.spec.schedule?.interval ?? '5m'} (window ${p.spec.schedule?.window ?? 12} captures)${p.spec.suspend ? ', suspended' : ''}`);
  field('Verdict', status.verdict ?? 'Unknown');
  field('Map memory', `${status.mapMemory ?? '-'} over ${status.targetCount ?? 0} target(s)`);
  field('Last capture', status.lastCaptureTime ? `${status.lastCaptureTime} (${age(status.lastCaptureTime, now)} ago)` : '-');
  if (status.gc) {
    field('GC', `live heap ${formatBytes(status.gc.liveHeapBytes)}, ${signed(status.gc.liveHeapGrowthBytesPerHour)}/h, GC CPU ${status.gc.gcCpuPercent}%, ${status.gc.cycles} cycles`);
  }
  lines.push('', 'Conditions:');
  const conditions = status.conditions ?? [];
  if (conditions.length === 0) lines.push('  (none yet: is the operator running?)');
  else lines.push(...indent(table([['TYPE', 'STATUS', 'REASON', 'MESSAGE'], ...conditions.map((c) => [c.type, c.status, c.reason ?? '', c.message ?? ''])])));
  lines.push('', 'Targets:');
  const targets = status.targets ?? [];
  if (targets.length === 0) lines.push('  (none)');
  else {
    lines.push(
      ...indent(
        table([
          ['POD', 'CAPTURES', 'MAPS', 'LAST CAPTURE', 'ERROR'],
          ...targets.map((t) => [t.name, String(t.captures), t.mapImpl ?? '-', t.lastCaptureTime ? age(t.lastCaptureTime, now) : '-', t.lastError ? `${t.lastErrorReason ?? 'Error'}: ${t.lastError}` : '']),
        ]),
      ),
    );
  }
  if (status.targetsOmitted) lines.push(`  ... and ${status.targetsOmitted} more`);
  lines.push('', 'Findings:');
  const findings = status.findings ?? [];
  if (findings.length === 0) lines.push('  (none above the thresholds)');
  else {
    lines.push(
      ...indent(
        table([
          ['#', 'SITE', 'KIND', 'PATTERN', 'IN USE', 'GROWTH/h', 'CONF', 'PODS'],
          ...findings.map((f, i) => [
            String(i + 1),
            frameLabel(f.site),
            f.kind === 'map' && f.mapImpl !== 'unknown' ? `map/${f.mapImpl}` : f.kind,
            f.pattern,
            formatBytes(f.inuseBytes),
            signed(f.growthBytesPerHour),
            f.confidence.toFixed(2),
            String(f.podCount),
          ]),
        ]),
      ),
    );
    lines.push('');
    findings.forEach((f, i) => lines.push(`  ${i + 1}. ${f.advice}`));
  }
  const incidents = status.incidents ?? [];
  if (incidents.length > 0) {
    const newest = incidents[0]!;
    lines.push('', `Incidents: ${incidents.length}, newest ${newest.reason} of ${newest.pod}/${newest.container} ${age(newest.time, now)} ago (kubectl mapleak incidents ${p.metadata.name})`);
  }
  // A probe's spec is the tenant's text (a selector value may hold terminal escapes if stored before the CRD refused them).
  return printableLines(lines.join('\n'));
}

function indent(rows: string[]): string[] {
  return rows.map((r) => `  ${r}`);
}

/** `kubectl mapleak incidents NAME`: OOMKilled and restarted containers, newest first (numbered for `profile --incident N`). */
export function formatIncidents(p: MapLeakProbe, now: Date): string {
  const incidents = p.status?.incidents ?? [];
  if (incidents.length === 0) return `No incidents for ${p.metadata.namespace}/${p.metadata.name}: no selected container was OOMKilled or restarted within the operator's incident retention.`;
  const header = ['#', 'AGE', 'POD', 'CONTAINER', 'REASON', 'EXIT', 'RESTART', 'VERDICT', 'CAPTURES', 'TOP FINDING'];
  const rows = incidents.map((i, n) => {
    const top = i.findings[0];
    return [
      String(n + 1),
      age(i.time, now),
      i.pod,
      i.container,
      i.reason,
      i.exitCode === undefined ? '-' : String(i.exitCode),
      // Several restarts between two rounds are one incident: say how many.
      (i.restarts ?? 1) > 1 ? `${i.restartCount} (${i.restarts} restarts)` : String(i.restartCount),
      i.verdict,
      String(i.captureIds.length),
      top ? `${top.kind}/${top.pattern}${top.growingUpToKill ? ' up to the end' : ''} ${frameLabel(top)} ${formatBytes(top.inuseBytes)}` : '-',
    ];
  });
  return table([header, ...rows]).join('\n');
}

function signed(bytes: number): string {
  return `${bytes > 0 ? '+' : ''}${formatBytes(bytes)}`;
}

/** kubectl's ages: 41s, 5m, 3h, 2d. */
export function age(time: string, now: Date): string {
  const seconds = Math.max(0, Math.round((now.getTime() - Date.parse(time)) / 1000));
  if (!Number.isFinite(seconds)) return '-';
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

// kube-apiserver's own counters, read from its /metrics text: what the benchmarks put beside their timings.

/**
 * Bytes allocated and CPU seconds so far (go_memstats_alloc_bytes_total, process_cpu_seconds_total), and the
 * requests to lvs.operator.dev by verb and resource[/subresource] ("PATCH nodeplans/status").
 */
export function apiserverCounters(metricsText: string): { allocatedBytes: number; cpuSeconds: number; requests: Record<string, number> } {
  const out = { allocatedBytes: NaN, cpuSeconds: NaN, requests: {} as Record<string, number> };
  for (const l of metricsText.split('\n')) {
    if (l.startsWith('go_memstats_alloc_bytes_total ')) out.allocatedBytes = Number(l.split(' ')[1]);
    else if (l.startsWith('process_cpu_seconds_total ')) out.cpuSeconds = Number(l.split(' ')[1]);
    else if (l.startsWith('apiserver_request_total{') && l.includes('group="lvs.operator.dev"')) {
      const label = (k: string): string => new RegExp(`[{,]${k}="([^"]*)"`).exec(l)?.[1] ?? '';
      const key = `${label('verb')} ${label('resource')}${label('subresource') ? `/${label('subresource')}` : ''}`;
      out.requests[key] = (out.requests[key] ?? 0) + Number(l.slice(l.lastIndexOf(' ') + 1));
    }
  }
  return out;
}

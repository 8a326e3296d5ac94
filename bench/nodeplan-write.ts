// `npm run bench:nodeplan`: what one NodePlan shard write costs the API server, by shard size.
//
// Every change to a service makes the controller rewrite its shard's spec and the director's agent rewrite
// that shard's status, and the API server decodes, validates, stores and sends the whole object each time.
// Against the test harness's kube-apiserver (real, RBAC on, our CRDs), this writes shards the size a
// 5,000-service director's would be with 256, 1,024 and SHARDS shards (services of 10 realservers, as
// `bench:controller` plans them) and reads the API server's own counters around BENCH_WRITES merge patches
// of each kind: bytes allocated (go_memstats_alloc_bytes_total) and CPU (process_cpu_seconds_total) per write.
// Then, for scale, the same counters around kubectl applies of one RealServer's weight (the admin's change).
// Writes bench/results/nodeplan-write.{json,md}.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { NodePlanStatus } from '../src/api/v1alpha1/nodeplan.ts';
import { Writer } from '../src/kube/writer.ts';
import type { PlannedService } from '../src/model/plan.ts';
import { shardName, shardOf, shardPlan, SHARDS } from '../src/model/shards.ts';
import { kubectlPath } from '../scripts/tools.ts';
import { startApiServer } from '../test/apiserver/harness.ts';
import { apiserverCounters } from './apiserver-metrics.ts';

const REPO = path.resolve(import.meta.dirname, '..');
const OUT = process.env.BENCH_OUT ?? path.join(REPO, 'bench', 'results');
const WRITES = Number(process.env.BENCH_WRITES ?? 100);
const SERVICES = 5000;
const NODE = 'director';
const R = { group: 'lvs.operator.dev', version: 'v1alpha1', plural: 'nodeplans' };
const log = (m: string): void => void process.stderr.write(`[bench:nodeplan] ${m}\n`);

const vip = (i: number): string => `10.${100 + Math.floor(i / 65536)}.${Math.floor(i / 256) % 256}.${i % 256}`;
const svc = (i: number): PlannedService => ({
  id: `bench/vs-${i}`, generation: 1, vip: vip(i), port: 80, protocol: 'TCP', scheduler: 'wlc', schedulerFlags: [], onePacket: false, pool: 'bench',
  forwarding: 'DirectRouting', holdVip: true, healthCheck: { type: 'None', intervalSeconds: 3, timeoutSeconds: 1, rise: 2, fall: 2 }, drainTimeoutSeconds: 60,
  destinations: Array.from({ length: 10 }, (_, j) => ({ realServer: `bench/rs-${i}-${j}`, address: `10.200.${j}.${(i % 250) + 1}`, port: 80, weight: 1 })),
});
/** The status an agent reports for these services: all programmed, every realserver healthy. */
const statusOf = (services: PlannedService[], generation: number): NodePlanStatus => ({
  observedGeneration: generation,
  conditions: [{ type: 'Programmed', status: 'True', reason: 'Programmed', message: `${services.length} service(s) and 0 realserver VIP(s) applied on ${NODE}`, observedGeneration: generation, lastTransitionTime: new Date().toISOString() }],
  services: services.map((s) => ({ id: s.id, generation: s.generation, programmed: true, holdsVip: true, vipHeldSince: new Date().toISOString() })),
  realServer: [],
});

const plan = { node: NODE, director: Array.from({ length: SERVICES }, (_, i) => svc(i)).sort((a, b) => a.id.localeCompare(b.id)), realServer: [] };
/**
 * A shard of the plan with `shards` shards the size a changed service's shard has: a change hits a service,
 * so bigger shards are hit more often (the mean over services of their shard's size, rounded), and how many
 * shards exist.
 */
const shardOfSize = (shards: number): { services: PlannedService[]; typical: number; objects: number } => {
  const by = new Map<number, PlannedService[]>();
  for (const s of plan.director) {
    // shardOf hashes modulo SHARDS; with fewer shards (a divisor of SHARDS) the same hash modulo that count.
    const k = shardOf(s.id) % shards;
    by.set(k, [...(by.get(k) ?? []), s]);
  }
  const typical = Math.round([...by.values()].reduce((sum, v) => sum + v.length * v.length, 0) / plan.director.length);
  const services = [...by.values()].find((v) => v.length === typical) ?? [...by.values()].sort((a, b) => Math.abs(a.length - typical) - Math.abs(b.length - typical))[0]!;
  return { services, typical, objects: by.size };
};

const api = await startApiServer({ log });
try {
  const env = { ...process.env, KUBECONFIG: api.kubeconfigs.admin };
  execFileSync(kubectlPath(), ['apply', '--server-side', '-f', path.join(REPO, 'crds')], { env });
  execFileSync(kubectlPath(), ['wait', '--for=condition=Established', '--timeout=60s', 'crd/nodeplans.lvs.operator.dev'], { env });
  const kc = new KubeConfig();
  kc.loadFromFile(api.kubeconfigs.admin);
  const w = new Writer(kc, 'bench');
  const counters = (): { allocBytes: number; cpuSec: number } => {
    const c = apiserverCounters(execFileSync(kubectlPath(), ['get', '--raw', '/metrics'], { env, maxBuffer: 1 << 28 }).toString());
    return { allocBytes: c.allocatedBytes, cpuSec: c.cpuSeconds };
  };
  type Counters = ReturnType<typeof counters>;
  /** The API server's allocation and CPU per operation between two counter reads around n operations. */
  const per = (a: Counters, b: Counters, n: number): { allocMB: number; cpuMs: number } => ({
    // Each counter read (a kubectl get --raw /metrics) is one request more in the window: small beside n.
    allocMB: Math.round(((b.allocBytes - a.allocBytes) / n / 1e6) * 100) / 100,
    cpuMs: Math.round(((b.cpuSec - a.cpuSec) / n) * 1000 * 10) / 10,
  });
  const rows: Array<{ shards: number; objects: number; services: number; objectKiB: number; spec: { allocMB: number; cpuMs: number }; status: { allocMB: number; cpuMs: number } }> = [];
  for (const shards of [256, 1024, SHARDS]) {
    const { services, objects } = shardOfSize(shards);
    const name = `${shardName(NODE, shards)}-bench`;
    // The controller's object for one shard (shardPlan's labels), carrying all of these services.
    const base = shardPlan({ node: NODE, director: services.slice(0, 1), realServer: [] })[0]!;
    const obj = { ...base, metadata: { ...base.metadata, name }, spec: { ...base.spec, director: services } };
    await w.create(R, obj);
    const specWith = (g: number): object => ({ spec: { ...obj.spec, director: obj.spec.director.map((s, i) => (i === 0 ? { ...s, generation: g, destinations: s.destinations.map((d) => ({ ...d, weight: (g % 9) + 1 })) } : s)) } });
    // Warm-up: the first writes of a kind (schema caches, connections) are not timed.
    for (let g = 2; g < 7; g++) {
      await w.patch(R, { name }, specWith(g));
      await w.patch(R, { name }, { status: statusOf(services, g) }, 'status');
    }
    const c0 = counters();
    for (let g = 10; g < 10 + WRITES; g++) await w.patch(R, { name }, specWith(g));
    const c1 = counters();
    for (let g = 10; g < 10 + WRITES; g++) await w.patch(R, { name }, { status: statusOf(services, g) }, 'status');
    const c2 = counters();
    const got = JSON.parse(execFileSync(kubectlPath(), ['get', 'nodeplan', name, '-o', 'json'], { env }).toString()) as object;
    rows.push({ shards, objects, services: services.length, objectKiB: Math.round(Buffer.byteLength(JSON.stringify(got)) / 102.4) / 10, spec: per(c0, c1, WRITES), status: per(c1, c2, WRITES) });
    log(JSON.stringify(rows.at(-1)));
  }
  w.close();

  // For scale: what the admin's own change costs the API server, a kubectl apply of one RealServer's weight
  // (kubectl as bench:controller runs it, with a discovery cache), without controller or agent.
  const kubectlRows: Array<{ how: string; wallMs: number; allocMB: number; cpuMs: number }> = [];
  const kenv = { ...env, KUBECACHEDIR: fs.mkdtempSync(path.join(os.tmpdir(), 'bench-np-kube-')) };
  execFileSync(kubectlPath(), ['create', 'namespace', 'bench'], { env: kenv });
  const rsDoc = (weight: number): string => JSON.stringify({ apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'RealServer', metadata: { name: 'rs-0-0', namespace: 'bench', labels: { 'bench.lvs.operator.dev/vs': 'vs-0' } }, spec: { address: '10.200.0.1', weight } });
  execFileSync(kubectlPath(), ['create', '--save-config', '-f', '-'], { env: kenv, input: rsDoc(1) });
  const APPLIES = Math.max(10, Math.round(WRITES / 2));
  for (const [how, flags] of [['kubectl apply', []], ['kubectl apply --server-side', ['--server-side', '--force-conflicts']]] as const) {
    const apply = (i: number): void => void execFileSync(kubectlPath(), ['apply', ...flags, '-f', '-'], { env: kenv, input: rsDoc(2 + (i % 7)) });
    for (let i = 0; i < 5; i++) apply(i);
    const c0 = counters();
    const t0 = performance.now();
    for (let i = 0; i < APPLIES; i++) apply(i + 5);
    const wallMs = (performance.now() - t0) / APPLIES;
    const c1 = counters();
    kubectlRows.push({ how, wallMs: Math.round(wallMs), ...per(c0, c1, APPLIES) });
    log(JSON.stringify(kubectlRows.at(-1)));
  }
  fs.rmSync(kenv.KUBECACHEDIR, { recursive: true, force: true });
  const result = { date: new Date().toISOString(), apiserver: api.version, host: { cpus: os.cpus().length, model: os.cpus()[0]?.model }, writesPerKind: WRITES, services: SERVICES, rows, kubectl: { applies: APPLIES, rows: kubectlRows } };
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, 'nodeplan-write.json'), `${JSON.stringify(result, null, 2)}\n`);
  const md = [
    '# One NodePlan shard write, by shard size',
    '',
    `${result.date}; kube-apiserver ${api.version} (test harness, RBAC on), ${result.host.cpus} cores (${result.host.model}). A shard of a`
      + ` ${SERVICES}-service director (the size of a changed service's shard: the mean over services of their shard's size; services of 10 realservers); ${WRITES} merge patches of each kind; the API server's own counters`
      + ' (bytes allocated, CPU) around them, per write.',
    '',
    '| shards per node | shards holding services | services in the shard | object (with status) | spec patch (controller): allocated / CPU | status patch (agent): allocated / CPU |',
    '|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.shards} | ${r.objects} | ${r.services} | ${r.objectKiB} KiB | ${r.spec.allocMB} MB / ${r.spec.cpuMs} ms | ${r.status.allocMB} MB / ${r.status.cpuMs} ms |`),
    '',
    `Every change to a service costs the API server one of each. The operator uses ${SHARDS} shards.`,
    '',
    `For scale, the admin's own change: ${APPLIES} applies of one RealServer's weight by kubectl (its own process each, a discovery cache), without controller or agent, per apply.`,
    '',
    '| change | kubectl run (wall) | API server: allocated / CPU |',
    '|---|---|---|',
    ...kubectlRows.map((r) => `| \`${r.how}\` | ${r.wallMs} ms | ${r.allocMB} MB / ${r.cpuMs} ms |`),
    '',
  ].join('\n');
  fs.writeFileSync(path.join(OUT, 'nodeplan-write.md'), md);
  process.stdout.write(md);
} finally {
  await api.stop();
}

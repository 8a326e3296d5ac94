// The whole product end to end: `helm install` into a real kube-apiserver, the controller, and lvs-agent in
// cluster mode on nodes director, web1 and web2 (network namespaces of the classic LVS-DR lab, registered as
// Node objects); then `kubectl apply -f deploy/examples/dr-lab.yaml` and real traffic from a client.
// ipvsadm, ip and /proc/sys are the oracles for what the agents did; kubectl for what users see.
import { jest } from '@jest/globals';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NetLab, assertInLabVm } from '../vm/netns.ts';
import { AgentProc, REPO, addresses, buildDrLab, eventually, ipvsadmSave, readSysctls, type DrLab } from './agent-lab.ts';
import { ControllerProc, ManagementNetwork, helm, installChart, kubeconfig, kubectl, kubectlOut, registerNode } from './cluster-lab.ts';
import type { NodePlan, RealServer, ServiceReport, VirtualService } from '../../src/api/v1alpha1/index.ts';
import { trackedSteps } from './steps.ts';

assertInLabVm();
jest.setTimeout(420_000);

const VIP = '192.168.56.40';
const NS = 'lab';
const FOREIGN = ['-A -t 10.99.0.1:8080 -s wlc', '-a -t 10.99.0.1:8080 -r 10.99.0.2:8080 -m -w 1'];
const EXAMPLE = fs.readFileSync(path.join(REPO, 'deploy/examples/dr-lab.yaml'), 'utf8');
const POOL_FILE = path.join(REPO, 'deploy/examples/vip-pool-lab.yaml');

const rules = (weights: Record<string, number>): string[] => [
  ...FOREIGN,
  `-A -t ${VIP}:80 -s rr`,
  ...Object.entries(weights).map(([ip, w]) => `-a -t ${VIP}:80 -r ${ip}:80 -g -w ${w}`),
].sort();

const getVs = async (): Promise<VirtualService> => JSON.parse(await kubectlOut(['get', 'lvsvs', 'web', '-n', NS, '-o', 'json'])) as VirtualService;
const condition = (vs: VirtualService, type: string): string | undefined => vs.status?.conditions?.find((c) => c.type === type)?.status;

const { step, someFailed } = trackedSteps();

describe('kubectl apply -> controller -> agents -> balanced traffic (DR lab, cluster mode)', () => {
  const lab = new NetLab();
  let client: string, director: string, web1: string, web2: string;
  let agents: Record<'director' | 'web1' | 'web2', AgentProc>;
  let controller: ControllerProc;
  let sysctlsBefore: Record<string, Record<string, string>>;
  let servers: DrLab['servers'];

  const requests = async (n: number): Promise<string[]> => {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push((await lab.httpGet(client, `http://${VIP}/`, { timeoutSec: 5 })).trim());
    return out;
  };

  beforeAll(async () => {
    ({ client, director, web1, web2, servers } = await buildDrLab(lab));
    const mgmt = await ManagementNetwork.create(lab);
    for (const ns of [director, web1, web2]) await mgmt.join(ns);
    for (const rule of FOREIGN) await lab.exec(director, ['ipvsadm', ...rule.split(' ')]);
    sysctlsBefore = {};
    for (const [n, ns] of Object.entries({ director, web1, web2 })) sysctlsBefore[n] = await readSysctls(lab, ns);

    const config = await installChart();
    await registerNode({ name: 'director', ip: '192.168.56.34', labels: { 'lvs.operator.dev/director': 'true' } });
    await registerNode({ name: 'web1', ip: '192.168.56.37' });
    await registerNode({ name: 'web2', ip: '192.168.56.38' });
    controller = new ControllerProc(lab, config);
    controller.start();
    const agentKc = { kubeconfig: kubeconfig('agent') };
    agents = {
      director: new AgentProc(lab, director, 'director', agentKc, ['--metrics-address', 'none']),
      web1: new AgentProc(lab, web1, 'web1', agentKc, ['--metrics-address', 'none']),
      web2: new AgentProc(lab, web2, 'web2', agentKc, ['--metrics-address', 'none']),
    };
    for (const a of Object.values(agents)) a.start();
    await controller.waitReady();
    await kubectl(['create', 'namespace', NS]);
    // VIPs are default-deny: the lab's pool (cluster-scoped) admits 192.168.56.40/29.
    await kubectl(['apply', '-f', POOL_FILE]);
    await kubectl(['apply', '-n', NS, '-f', '-'], { input: EXAMPLE });
  });

  afterAll(async () => {
    // What the processes said: the first place to look when a step above failed.
    const procs = { controller: controller?.proc, ...Object.fromEntries(Object.entries(agents ?? {}).map(([n, a]) => [`agent ${n}`, a.proc])) };
    for (const [name, p] of Object.entries(procs)) {
      const lines = (p?.output ?? '').trimEnd().split('\n');
      const bad = lines.filter((l) => /"level":(50|60)\b/.test(l));
      if (someFailed() || bad.length || (p && !p.running)) {
        process.stderr.write(`--- ${name}${p && !p.running ? ' (exited)' : ''}, ${bad.length} errors; last lines:\n${lines.slice(-25).join('\n')}\n`);
      }
    }
    // The namespace first, while the controller and the agents still run (its VirtualServices carry finalizers
    // only they remove): the other whole-stack suite in this VM run (failover-dr) creates the same namespace
    // when jest orders it after this one.
    await kubectl(['delete', 'namespace', NS, '--ignore-not-found', '--wait=true', '--timeout=240s'], { allowFailure: true, timeoutMs: 260_000 });
    for (const a of Object.values(agents ?? {})) await a.stop().catch(() => undefined);
    await controller?.stop().catch(() => undefined);
    for (const n of ['director', 'web1', 'web2']) await kubectl(['delete', 'node', n, '--ignore-not-found'], { allowFailure: true });
    await kubectl(['delete', '-f', POOL_FILE, '--ignore-not-found'], { allowFailure: true });
    // Other whole-stack suites in the same VM run (failover-dr, when jest orders it after this one) install the
    // chart under the same release name.
    await helm(['uninstall', 'lvs-operator', '-n', 'lvs-system', '--wait'], { allowFailure: true }).catch(() => undefined);
    await lab.destroy();
  });

  step('programs the director from the applied example, next to foreign rules (ipvsadm -Sn)', async () => {
    for (const [n, a] of Object.entries(agents)) if (!a.proc?.running) throw new Error(`agent ${n} exited:\n${a.proc?.output ?? ''}`);
    await eventually('DR rules on the director', async () => {
      expect(await ipvsadmSave(lab, director)).toEqual(rules({ '192.168.56.37': 1, '192.168.56.38': 1 }));
      return true;
    }, 240_000);
    expect(await addresses(lab, director, 'eth0')).toContain(`${VIP}/32`);
    for (const ns of [web1, web2]) {
      await eventually(`VIP on lo of ${ns}`, async () => (await addresses(lab, ns, 'lo')).includes(`${VIP}/32`), 120_000);
      const s = await readSysctls(lab, ns, ['net/ipv4/conf/all/arp_ignore', 'net/ipv4/conf/all/arp_announce']);
      expect(Object.values(s)).toEqual(['1', '2']);
    }
  });

  step('balances HTTP requests to the VIP between web1 and web2 (rr)', async () => {
    const bodies = await requests(6);
    expect(new Set(bodies)).toEqual(new Set(['web1', 'web2']));
    for (let i = 1; i < bodies.length; i++) expect(bodies[i]).not.toBe(bodies[i - 1]);
  });

  step('kubectl get lvsvs shows Ready 2/2, the active director and the conditions', async () => {
    await eventually('Ready 2/2', async () => {
      const vs = await getVs();
      return vs.status?.realServers?.ready === '2/2' && vs.status.activeDirector === 'director'
        && condition(vs, 'Accepted') === 'True' && condition(vs, 'Programmed') === 'True' && condition(vs, 'Ready') === 'True'
        && vs.status.observedGeneration === vs.metadata?.generation;
    }, 180_000);
    const table = await kubectlOut(['get', 'lvsvs', '-n', NS]);
    const [header, row] = table.trim().split('\n').map((l) => l.trim().split(/\s+/));
    expect(header).toEqual(expect.arrayContaining(['NAME', 'VIP', 'READY', 'DIRECTOR']));
    const col = (name: string): string | undefined => row?.[header!.indexOf(name)];
    expect([col('NAME'), col('VIP'), col('READY'), col('DIRECTOR')]).toEqual(['web', VIP, '2/2', 'director']);
  });

  step('a weight change reaches the kernel as the new weight and shows in status', async () => {
    await kubectl(['patch', 'lvsrs', 'web2', '-n', NS, '--type=merge', '-p', '{"spec":{"weight":3}}']);
    await eventually('weight 3 in the kernel', async () => (await ipvsadmSave(lab, director)).includes(`-a -t ${VIP}:80 -r 192.168.56.38:80 -g -w 3`), 120_000);
    expect(await ipvsadmSave(lab, director)).toEqual(rules({ '192.168.56.37': 1, '192.168.56.38': 3 }));
    await eventually('Programmed for the new generation', async () => {
      const vs = await getVs();
      return condition(vs, 'Programmed') === 'True' && vs.status?.observedGeneration === vs.metadata?.generation;
    }, 120_000);
  });

  step('a failing health check: the director reports the realserver unhealthy, status says Ready 1/2; it recovers', async () => {
    const report = async (): Promise<ServiceReport[]> => {
      const plans = JSON.parse(await kubectlOut(['get', 'lvsnp', '-l', 'lvs.operator.dev/node=director', '-o', 'json'])) as { items: NodePlan[] };
      return plans.items.flatMap((p) => p.status?.services ?? []).filter((r) => r.id === `${NS}/web`);
    };
    const rsHealthy = async (): Promise<string | undefined> =>
      (JSON.parse(await kubectlOut(['get', 'lvsrs', 'web2', '-n', NS, '-o', 'json'])) as RealServer).status?.conditions?.find((c) => c.type === 'Healthy')?.status;
    await servers.web2.stop();
    await eventually('web2 quiesced', async () => (await ipvsadmSave(lab, director)).includes(`-a -t ${VIP}:80 -r 192.168.56.38:80 -g -w 0`), 60_000);
    await eventually('web2 listed unhealthy in the report', async () => {
      const [r] = await report();
      return JSON.stringify(r?.unhealthy) === JSON.stringify([{ address: '192.168.56.38', port: 80 }]);
    }, 60_000);
    await eventually('Ready 1/2, web2 not Healthy', async () => (await getVs()).status?.realServers?.ready === '1/2' && (await rsHealthy()) === 'False', 60_000);
    expect(new Set(await requests(4))).toEqual(new Set(['web1']));

    servers.web2 = await lab.startHttpServer(web2, { name: 'web2' });
    await eventually('web2 back at its weight', async () => {
      expect(await ipvsadmSave(lab, director)).toEqual(rules({ '192.168.56.37': 1, '192.168.56.38': 3 }));
      return true;
    }, 60_000);
    await eventually('no unhealthy realserver in the report, Ready 2/2', async () => {
      const [r] = await report();
      return r !== undefined && r.unhealthy === undefined && (await getVs()).status?.realServers?.ready === '2/2' && (await rsHealthy()) === 'True';
    }, 60_000);
  });

  step('deleting a RealServer removes it from the kernel and status; re-adding it brings it back', async () => {
    await kubectl(['delete', 'lvsrs', 'web1', '-n', NS]);
    await eventually('web1 gone from the kernel', async () => {
      expect(await ipvsadmSave(lab, director)).toEqual(rules({ '192.168.56.38': 3 }));
      return true;
    }, 180_000);
    expect(new Set(await requests(4))).toEqual(new Set(['web2']));
    // web1 serves no VirtualService any more: its agent takes the VIP off lo again.
    await eventually('VIP off web1 lo', async () => !(await addresses(lab, web1, 'lo')).includes(`${VIP}/32`), 120_000);
    await eventually('Ready 1/1', async () => (await getVs()).status?.realServers?.ready === '1/1', 120_000);

    await kubectl(['apply', '-n', NS, '-f', '-'], { input: EXAMPLE.split('---').filter((d) => /name: web1\n/.test(d)).join('---') });
    await eventually('web1 back in the kernel', async () => {
      expect(await ipvsadmSave(lab, director)).toEqual(rules({ '192.168.56.37': 1, '192.168.56.38': 3 }));
      return true;
    }, 180_000);
    await eventually('web1 answers again', async () => (await requests(8)).includes('web1'), 120_000);
    await eventually('Ready 2/2 again', async () => (await getVs()).status?.realServers?.ready === '2/2', 120_000);
  });

  step('deleting everything leaves only the foreign rules, no VIP and the original sysctls', async () => {
    await kubectl(['delete', '-n', NS, '-f', '-'], { input: EXAMPLE, timeoutMs: 240_000 });
    // The finalizer holds the VirtualService until every director reported its teardown.
    await eventually('VirtualService gone', async () => (await kubectl(['get', 'lvsvs', 'web', '-n', NS], { allowFailure: true })).code !== 0, 180_000);
    expect(await ipvsadmSave(lab, director)).toEqual([...FOREIGN].sort());
    await eventually('no VIP anywhere', async () => {
      return !(await addresses(lab, director, 'eth0')).includes(`${VIP}/32`)
        && !(await addresses(lab, web1, 'lo')).includes(`${VIP}/32`)
        && !(await addresses(lab, web2, 'lo')).includes(`${VIP}/32`);
    }, 120_000);
    await eventually('sysctls restored', async () => {
      for (const [n, ns] of Object.entries({ director, web1, web2 })) expect(await readSysctls(lab, ns)).toEqual(sysctlsBefore[n]);
      return true;
    }, 120_000);
    expect(await lab.httpGet(client, `http://${VIP}/`, { timeoutSec: 3, allowFailure: true })).toBeNull();
  });
});

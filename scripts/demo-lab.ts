// The local demo, inside the lab VM (started by scripts/demo.ts, which runs kube-apiserver on the host):
// the classic LVS-DR lab — client, director, web1, web2 as network namespaces on a bridge — run the way a
// cluster runs it: `helm install`, the controller, lvs-agent in cluster mode on nodes director/web1/web2,
// and `kubectl apply -f deploy/examples/dr-lab.yaml`. Shows kubectl's view, the kernel's view, balanced
// requests and a weight change; then either waits for you (LVS_DEMO_INTERACTIVE=1) or cleans up.
import * as path from 'node:path';
import { NetLab } from '../test/vm/netns.ts';
import { AgentProc, REPO, addresses, buildDrLab, eventually, ipvsadmSave, readSysctls, sleep } from '../test/kernel/agent-lab.ts';
import { ControllerProc, ManagementNetwork, installChart, kubeconfig, kubectl, kubectlOut, registerNode } from '../test/kernel/cluster-lab.ts';

const VIP = '192.168.56.40';
const EXAMPLE_FILE = path.join(REPO, 'deploy/examples/dr-lab.yaml');
const POOL_FILE = path.join(REPO, 'deploy/examples/vip-pool-lab.yaml');
const interactive = process.env.LVS_DEMO_INTERACTIVE === '1';
const hostKubectl = process.env.LVS_DEMO_HOST_KUBECTL ?? 'kubectl';
// The processes' JSON logs would drown the walkthrough; warnings and errors still show.
process.env.LVS_LOG_LEVEL ??= 'warn';
const say = (s: string): void => void process.stdout.write(`\n\x1b[1m== ${s}\x1b[0m\n`);
const show = (s: string): void => void process.stdout.write(`${s.trimEnd()}\n`);

const lab = new NetLab();
let controller: ControllerProc | undefined;
const agents: AgentProc[] = [];
try {
  say('building the DR lab: client 192.168.56.10, director .34, web1 .37, web2 .38 on bridge br56 (+ a management network)');
  const { client, director, web1, web2 } = await buildDrLab(lab);
  const mgmt = await ManagementNetwork.create(lab);
  for (const ns of [director, web1, web2]) await mgmt.join(ns);
  const before = await readSysctls(lab, web1, ['net/ipv4/conf/all/arp_ignore', 'net/ipv4/conf/all/arp_announce']);

  say('helm install lvs-operator charts/lvs-operator -n lvs-system --create-namespace');
  const config = await installChart();
  show((await kubectlOut(['get', 'crd'])).split('\n').filter((l, i) => i === 0 || l.includes('lvs.operator.dev')).join('\n'));
  say('registering nodes director (label lvs.operator.dev/director=true), web1, web2; starting the controller and three agents');
  await registerNode({ name: 'director', ip: '192.168.56.34', labels: { 'lvs.operator.dev/director': 'true' } });
  await registerNode({ name: 'web1', ip: '192.168.56.37' });
  await registerNode({ name: 'web2', ip: '192.168.56.38' });
  controller = new ControllerProc(lab, config);
  controller.start();
  for (const [node, ns] of [['director', director], ['web1', web1], ['web2', web2]] as const) {
    const a = new AgentProc(lab, ns, node, { kubeconfig: kubeconfig('agent') }, ['--metrics-address', node === 'director' ? '127.0.0.1:9120' : 'none']);
    a.start();
    agents.push(a);
  }
  await controller.waitReady();

  say(`kubectl apply -f ${path.relative(REPO, POOL_FILE)} -f ${path.relative(REPO, EXAMPLE_FILE)}   (VIPs are default-deny: a VIPPool admits them)`);
  show((await kubectl(['apply', '-f', POOL_FILE])).stdout);
  show((await kubectl(['apply', '-f', EXAMPLE_FILE])).stdout);
  await eventually('Ready 2/2', async () => {
    const vs = JSON.parse(await kubectlOut(['get', 'lvsvs', 'web', '-o', 'json'])) as { status?: { realServers?: { ready?: string }; activeDirector?: string } };
    return vs.status?.realServers?.ready === '2/2' && vs.status.activeDirector === 'director';
  }, 300_000);
  say('kubectl get lvsvp,lvsvs,lvsrs   (and the per-node plans the controller wrote: kubectl get nodeplans)');
  show(await kubectlOut(['get', 'lvsvp,lvsvs,lvsrs']));
  show(await kubectlOut(['get', 'nodeplans']));

  say('director: ipvsadm -Ln (programmed by the agent over generic netlink)');
  show((await lab.exec(director, ['ipvsadm', '-L', '-n'])).stdout);
  say('web1: the VIP on lo, ARP suppressed (the agent on web1 did that, because RealServer web1 names node web1)');
  show((await lab.exec(web1, ['ip', '-brief', 'addr', 'show', 'dev', 'lo'])).stdout);
  show((await lab.exec(web1, ['sh', '-c', 'echo arp_ignore=$(cat /proc/sys/net/ipv4/conf/all/arp_ignore) arp_announce=$(cat /proc/sys/net/ipv4/conf/all/arp_announce)'])).stdout);

  say(`client: 6 requests to http://${VIP}/ (scheduler rr)`);
  for (let i = 0; i < 6; i++) show(`  ${(await lab.httpGet(client, `http://${VIP}/`)).trim()}`);

  say('kubectl patch lvsrs web2 --type=merge -p \'{"spec":{"weight":3}}\' and switch the scheduler to wrr');
  await kubectl(['patch', 'lvsrs', 'web2', '--type=merge', '-p', '{"spec":{"weight":3}}']);
  await kubectl(['patch', 'lvsvs', 'web', '--type=merge', '-p', '{"spec":{"scheduler":"wrr"}}']);
  await eventually('weight 3', async () => (await ipvsadmSave(lab, director)).includes(`-a -t ${VIP}:80 -r 192.168.56.38:80 -g -w 3`), 120_000);
  show((await lab.exec(director, ['ipvsadm', '-L', '-n'])).stdout);
  const tally = async (n: number): Promise<string> => {
    const counts = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const body = (await lab.httpGet(client, `http://${VIP}/`, { timeoutSec: 3, allowFailure: true }))?.trim() ?? 'FAILED';
      counts.set(body, (counts.get(body) ?? 0) + 1);
    }
    return [...counts].sort().map(([k, v]) => `${k} x${v}`).join(', ');
  };
  show(`  8 requests: ${await tally(8)}`);

  if (interactive) {
    say('the lab is yours. In another terminal on this machine:');
    show(`  alias kubectl='${hostKubectl}'`);
    show('  kubectl get lvsvs,lvsrs -o wide');
    show('  kubectl patch lvsrs web1 --type=merge -p \'{"spec":{"weight":0}}\'      # drain web1');
    show('  kubectl patch lvsvs web --type=merge -p \'{"spec":{"scheduler":"rr"}}\'');
    show('  kubectl delete lvsrs web2 ; kubectl apply -f deploy/examples/dr-lab.yaml');
    show('  kubectl get nodeplans -o yaml      # what each node was told to do, and what its agent reported');
    show('Every 5 s this window shows where 10 client requests landed and the director\'s table when it changes. Ctrl-C ends the lab.');
    let lastRules = '';
    for (;;) {
      // Compare the rules (ipvsadm -Sn), not the listing: its connection counters change all the time.
      const rules = (await ipvsadmSave(lab, director)).join('\n');
      if (rules !== lastRules) show(`\n${(await lab.exec(director, ['ipvsadm', '-L', '-n'])).stdout}`);
      lastRules = rules;
      show(`${new Date().toISOString().slice(11, 19)}  10 requests to ${VIP}: ${await tally(10)}`);
      await sleep(5_000);
    }
  }

  say(`kubectl delete -f ${path.relative(REPO, EXAMPLE_FILE)}: the finalizer waits until every node has torn it down`);
  show((await kubectl(['delete', '-f', EXAMPLE_FILE], { timeoutMs: 300_000 })).stdout);
  await eventually('VIP gone', async () => !(await addresses(lab, web1, 'lo')).includes(`${VIP}/32`), 120_000);
  show(`director ipvsadm -Sn: ${(await lab.exec(director, ['ipvsadm', '-S', '-n'])).stdout.trim() || '(empty)'}`);
  const after = await readSysctls(lab, web1, ['net/ipv4/conf/all/arp_ignore', 'net/ipv4/conf/all/arp_announce']);
  show(`web1 arp_ignore/arp_announce: before ${Object.values(before).join('/')}, now ${Object.values(after).join('/')}; lo: ${(await addresses(lab, web1, 'lo')).join(' ')}`);
  say('done. Run it on a terminal to keep the lab up and drive it with kubectl (npm start); the standalone agent demo: npm run demo:standalone');
} finally {
  for (const a of agents) await a.stop().catch(() => undefined);
  await controller?.stop().catch(() => undefined);
  await lab.destroy().catch(() => undefined);
}

// The standalone demo (`npm run demo:standalone`, run inside the lab VM by scripts/demo.sh --standalone): the agent with no Kubernetes —
// web1, web2 as network namespaces on a bridge — served by lvs-agent from deploy/examples/dr-lab.yaml.
// It shows the IPVS table, balanced requests, a live weight change, a failing realserver being quiesced,
// the agent's metrics, and a clean teardown.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NetLab } from '../test/vm/netns.ts';
import { AgentProc, REPO, buildDrLab, eventually, writeConfig } from '../test/kernel/agent-lab.ts';

const VIP = '192.168.56.40';
// The agents' JSON logs would drown the walkthrough; warnings and errors still show.
process.env.LVS_LOG_LEVEL ??= 'warn';
const say = (s: string): void => void process.stdout.write(`\n\x1b[1m== ${s}\x1b[0m\n`);
const show = (s: string): void => void process.stdout.write(`${s.trimEnd()}\n`);

const lab = new NetLab();
try {
  say('building the DR lab: client 192.168.56.10, director .34, web1 .37, web2 .38 on bridge br56');
  const { client, director, web1, web2, servers } = await buildDrLab(lab);
  const web1Server = servers.web1;

  const example = fs.readFileSync(path.join(REPO, 'deploy/examples/dr-lab.yaml'), 'utf8');
  const nodes = [{ name: 'director', ip: '192.168.56.34', director: true }, { name: 'web1', ip: '192.168.56.37' }, { name: 'web2', ip: '192.168.56.38' }];
  const configDir = writeConfig(nodes, example);
  say(`starting lvs-agent on director, web1 and web2 with ${path.relative(REPO, 'deploy/examples/dr-lab.yaml')}`);
  const agents = [new AgentProc(lab, director, 'director', configDir), new AgentProc(lab, web1, 'web1', configDir), new AgentProc(lab, web2, 'web2', configDir)];
  for (const a of agents) a.start();
  await Promise.all(agents.map((a) => a.waitReady()));

  say('director: ipvsadm -Ln (programmed by the agent over generic netlink)');
  show((await lab.exec(director, ['ipvsadm', '-L', '-n'])).stdout);
  say('web1: the VIP on lo, ARP suppressed');
  show((await lab.exec(web1, ['ip', '-brief', 'addr', 'show', 'dev', 'lo'])).stdout);
  show((await lab.exec(web1, ['sh', '-c', 'echo arp_ignore=$(cat /proc/sys/net/ipv4/conf/all/arp_ignore) arp_announce=$(cat /proc/sys/net/ipv4/conf/all/arp_announce)'])).stdout);

  say(`client: 6 requests to http://${VIP}/ (scheduler rr)`);
  for (let i = 0; i < 6; i++) show(`  ${(await lab.httpGet(client, `http://${VIP}/`)).trim()}`);

  say('changing web2\'s weight to 3 in the YAML: the agent reloads and sends one SET_DEST');
  fs.writeFileSync(path.join(configDir, 'services.yaml'), example.replace(/(name: web2\n[\s\S]*?weight: )1/, '$13').replace('scheduler: rr', 'scheduler: wrr'));
  await eventually('weight 3', async () => (await lab.exec(director, ['ipvsadm', '-S', '-n'])).stdout.includes('192.168.56.38:80 -g -w 3'), 60_000);
  show((await lab.exec(director, ['ipvsadm', '-L', '-n'])).stdout);

  say('stopping web1\'s server: the HTTP health check quiesces it (weight 0) after fall x interval');
  await web1Server.stop();
  await eventually('web1 quiesced', async () => (await lab.exec(director, ['ipvsadm', '-S', '-n'])).stdout.includes('192.168.56.37:80 -g -w 0'), 60_000);
  show((await lab.exec(director, ['ipvsadm', '-L', '-n'])).stdout);
  for (let i = 0; i < 3; i++) show(`  ${(await lab.httpGet(client, `http://${VIP}/`)).trim()}`);

  say('the director agent\'s Prometheus metrics (excerpt)');
  const metrics = (await lab.exec(director, ['busybox', 'wget', '-q', '-O', '-', 'http://127.0.0.1:9120/metrics'])).stdout;
  show(metrics.split('\n').filter((l) => /^lvs_(backend_(weight|healthy|connections_total)|service_connections_total)/.test(l)).join('\n'));

  say('teardown: lvs-agent teardown removes what it added and restores every sysctl');
  await Promise.all(agents.map((a) => a.stop()));
  await Promise.all(agents.map((a) => a.teardown()));
  show(`director ipvsadm -Sn: ${(await lab.exec(director, ['ipvsadm', '-S', '-n'])).stdout.trim() || '(empty)'}`);
  show((await lab.exec(web1, ['sh', '-c', 'echo web1 arp_ignore=$(cat /proc/sys/net/ipv4/conf/all/arp_ignore) lo: $(ip -brief addr show dev lo)'])).stdout);
  say('done. To poke at it: edit deploy/examples/dr-lab.yaml (scheduler, weights, healthCheck) and run the demo again;');
  show('   run one agent by hand: node src/agent/main.ts --config DIR --node NAME --interface eth0 (see README, "Standalone agent").');
} finally {
  await lab.destroy().catch(() => undefined);
}

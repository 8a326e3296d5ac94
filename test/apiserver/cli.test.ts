// kubectl lvs against a real kube-apiserver: the package is built with `tsc -p tsconfig.build.json`, its
// kubectl-lvs bin is put on PATH the way npm installs it, and kubectl discovers it as a plugin. The real
// controller runs in-process and plans the objects; the director agent's report is written to the NodePlan
// status as the agent identity would. `status` and `export` then read those real objects.
import { jest } from '@jest/globals';
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { Controller } from '../../src/controller/controller.ts';
import { defaultConfig } from '../../src/controller/config.ts';
import { CustomObjects } from '../../src/kube/status.ts';
import { createLogger } from '../../src/util/log.ts';
import { canonicalRules } from '../../src/cli/export.ts';
import type { NodePlan, VirtualService } from '../../src/api/v1alpha1/index.ts';
import { kubectlPath } from '../../scripts/tools.ts';
import { ENV } from './harness.ts';
import { kubectlOk, uniqueName, type RunResult } from './util.ts';
import { eventually } from '../support/eventually.ts';

jest.setTimeout(240_000);

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const admin = (): string => process.env[ENV.admin] ?? '';
const NP = { group: 'lvs.operator.dev', version: 'v1alpha1', plural: 'nodeplans' };
const VS = { group: 'lvs.operator.dev', version: 'v1alpha1', plural: 'virtualservices' };

describe('kubectl lvs (built plugin) against a real apiserver', () => {
  const ns = uniqueName('lvs-cli');
  const sfx = ns.slice(-6);
  const node = { director: `cli-director-${sfx}`, standby: `cli-standby-${sfx}`, web1: `cli-web1-${sfx}`, web2: `cli-web2-${sfx}` };
  // VIPs of this suite only: the controller sees every namespace, and the older object wins a VIP.
  const octet = parseInt(sfx.slice(0, 2), 16);
  const vip = { web: `10.124.${octet}.40`, imported: `10.124.${octet}.41` };
  let pkg: string;
  let controller: Controller;
  let objects: CustomObjects;

  /** Runs `kubectl ARGS` with the built plugin on PATH (and node, for its #!/usr/bin/env node). */
  const kubectlWithPlugin = (args: string[], input?: string): Promise<RunResult> => new Promise((done) => {
    const env = { ...process.env, KUBECONFIG: admin(), PATH: [join(pkg, 'bin'), dirname(process.execPath), process.env['PATH'] ?? ''].join(delimiter), KUBECACHEDIR: join(tmpdir(), 'lvs-test-kubectl-cache') };
    const child = execFile(kubectlPath(), args, { env, timeout: 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
    child.stdin?.end(input ?? '');
  });
  const lvs = (args: string[], input?: string) => kubectlWithPlugin(['lvs', ...args], input);

  const plansOf = async (n: string): Promise<NodePlan[]> => (JSON.parse(await kubectlOk(['get', 'nodeplans', '-l', `lvs.operator.dev/node=${n}`, '-o', 'json'], { kubeconfig: admin() })) as { items: NodePlan[] }).items;

  beforeAll(async () => {
    // The package as `npm run build` makes it, in a directory of its own (others may be building dist/).
    pkg = mkdtempSync(join(tmpdir(), 'lvs-cli-pkg-'));
    await new Promise<void>((done, fail) => {
      execFile(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(pkg, 'dist')], { cwd: ROOT, timeout: 180_000 }, (err, stdout) => {
        // tsc emits even when another part of the tree has type errors; the plugin's file is what counts.
        if (existsSync(join(pkg, 'dist', 'cli', 'main.js'))) done();
        else fail(new Error(`tsc produced no dist/cli/main.js: ${err?.message ?? ''}\n${stdout}`));
      });
    });
    copyFileSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
    symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'));
    symlinkSync(join(ROOT, 'crds'), join(pkg, 'crds'));
    // What npm does for "bin": {"kubectl-lvs": "dist/cli/main.js"}: a link named kubectl-lvs, made executable.
    const bin = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin['kubectl-lvs']!;
    mkdirSync(join(pkg, 'bin'));
    chmodSync(join(pkg, bin), 0o755);
    symlinkSync(join(pkg, bin), join(pkg, 'bin', 'kubectl-lvs'));

    const kc = new KubeConfig();
    kc.loadFromFile(admin());
    objects = new CustomObjects(kc);
    await kubectlOk(['apply', '--server-side', '-f', join(ROOT, 'crds')], { kubeconfig: admin() });
    await kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', 'crd/virtualservices.lvs.operator.dev', 'crd/realservers.lvs.operator.dev', 'crd/nodeplans.lvs.operator.dev', 'crd/vippools.lvs.operator.dev'], { kubeconfig: admin() });
    await kubectlOk(['create', 'namespace', ns], { kubeconfig: admin() });
    // VIPs are default-deny: this suite's two VIPs in a pool for its namespace only.
    await kubectlOk(['apply', '-f', '-'], { kubeconfig: admin(), input: JSON.stringify({
      apiVersion: 'lvs.operator.dev/v1alpha1', kind: 'VIPPool', metadata: { name: ns },
      spec: { addresses: [`${vip.web}-${vip.imported}`], namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } } },
    }) });
    for (const [name, ip, director] of [[node.director, '192.168.77.34', true], [node.standby, '192.168.77.35', true], [node.web1, '192.168.77.37', false], [node.web2, '192.168.77.38', false]] as const) {
      await kubectlOk(['create', '-f', '-'], { kubeconfig: admin(), input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels: director ? { 'lvs-test/cli-director': sfx } : {} } }) });
      await kubectlOk(['patch', 'node', name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { addresses: [{ type: 'InternalIP', address: ip }] } })], { kubeconfig: admin() });
    }
    controller = new Controller({
      kc, namespace: ns, config: { ...defaultConfig(), defaultDirectorSelector: { 'lvs-test/cli-director': sfx } },
      log: createLogger('controller', process.env.LVS_TEST_LOG ?? 'silent'), manageDaemonSets: false,
    });
    await controller.start();
    controller.setLeading(true);
    const example = readFileSync(join(ROOT, 'deploy/examples/dr-lab.yaml'), 'utf8')
      .replaceAll('192.168.56.40', vip.web)
      .replace('nodeName: web1', `nodeName: ${node.web1}`)
      .replace('nodeName: web2', `nodeName: ${node.web2}`);
    await kubectlOk(['apply', '-n', ns, '-f', '-'], { kubeconfig: admin(), input: example });
    // The realserver agents' reports (no agents run here): web1 and web2 hold the VIP on lo, so the
    // director's plan gives them their weight (it is 0 until a node reports the VIP prepared).
    for (const n of [node.web1, node.web2]) {
      const [p] = await eventually(`${n} plan`, async () => ((await plansOf(n)).length ? plansOf(n) : undefined));
      await objects.patchStatus(NP, { name: p!.metadata.name ?? '' }, { realServer: [{ service: `${ns}/web`, vip: vip.web, prepared: true }] });
    }
    await eventually('web weights planned', async () => (await plansOf(node.director)).some((p) => p.spec.director.some((s) => s.id === `${ns}/web` && s.destinations.every((d) => d.weight === 1))) || undefined);
  });

  afterAll(async () => {
    await controller?.stop();
    // Nothing runs the teardown handshake for this suite's VirtualServices any more: release them.
    const names = await kubectlOk(['get', 'virtualservices', '-n', ns, '-o', 'name'], { kubeconfig: admin() }).catch(() => '');
    for (const n of names.split('\n').filter(Boolean)) await kubectlOk(['patch', n, '-n', ns, '--type=merge', '-p', '{"metadata":{"finalizers":null}}'], { kubeconfig: admin() }).catch(() => undefined);
    await kubectlOk(['delete', 'node', ...Object.values(node), '--ignore-not-found'], { kubeconfig: admin() }).catch(() => undefined);
    await kubectlOk(['delete', 'vippool', ns, '--ignore-not-found'], { kubeconfig: admin() }).catch(() => undefined);
    await kubectlOk(['delete', 'namespace', ns, '--wait=false'], { kubeconfig: admin() }).catch(() => undefined);
    if (pkg) rmSync(pkg, { recursive: true, force: true });
  });

  it('kubectl finds the built kubectl-lvs bin as a plugin', async () => {
    const main = readFileSync(join(pkg, 'dist', 'cli', 'main.js'), 'utf8');
    expect(main.startsWith('#!/usr/bin/env node\n')).toBe(true);
    const list = await kubectlWithPlugin(['plugin', 'list']);
    expect(list.stdout).toContain(join(pkg, 'bin', 'kubectl-lvs'));
    const help = await lvs(['--help']);
    expect(help).toMatchObject({ code: 0 });
    expect(help.stdout).toContain('kubectl lvs status [-n NAMESPACE | -A]');
    expect(await lvs(['frobnicate'])).toMatchObject({ code: 2, stderr: expect.stringContaining('unknown command "frobnicate"') });
  });

  it('status shows the VirtualService as ipvsadm -Ln would, with director, weights and health from the agent report', async () => {
    const planned = await eventually('director plan', async () => (await plansOf(node.director)).find((p) => p.spec.director.some((s) => s.id === `${ns}/web`)));
    const svc = planned.spec.director.find((s) => s.id === `${ns}/web`)!;
    // The director's agent reports: programmed, holds the VIP, web2 fails its health check.
    await objects.patchStatus(NP, { name: planned.metadata.name ?? '' }, {
      services: [{ id: svc.id, generation: svc.generation, programmed: true, holdsVip: true, unhealthy: svc.destinations.filter((d) => d.address !== '192.168.77.37').map((d) => ({ address: d.address, port: d.port })) }],
    });
    await eventually('active director in status', async () => (await objects.get<VirtualService & { metadata: { name: string } }>(VS, { name: 'web', namespace: ns })).status?.activeDirector === node.director);

    const r = await lvs(['status', '-n', ns]);
    expect(r.code).toBe(0);
    // No agent pods run here (no kubelet): the connection columns say so instead of inventing numbers.
    expect(r.stderr).toContain('connection counts unavailable');
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(new RegExp(`^${ns}/web  mode DirectRouting  director ${node.director} \\(standby: ${node.standby}\\)  ready 1/2`));
    expect(lines.slice(1, 6)).toEqual([
      'Prot LocalAddress:Port Scheduler Flags',
      '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn Health  RealServer',
      `TCP  ${vip.web}:80 rr`,
      '  -> 192.168.77.37:80             Route   1      -          -         healthy web1',
      '  -> 192.168.77.38:80             Route   1      -          -         failing web2',
    ]);

    const json = JSON.parse((await lvs(['status', '-n', ns, '-o', 'json', '--no-connections'])).stdout) as { items: Array<Record<string, unknown>> };
    expect(json.items).toEqual([expect.objectContaining({
      namespace: ns, name: 'web', vip: vip.web, port: 80, protocol: 'TCP', scheduler: 'rr', forwarding: 'DirectRouting',
      activeDirector: node.director, directors: [node.director, node.standby].sort(), source: 'nodeplans', ready: '1/2',
      realServers: [
        { realServer: `${ns}/web1`, address: '192.168.77.37', port: 80, weight: 1, healthy: true },
        { realServer: `${ns}/web2`, address: '192.168.77.38', port: 80, weight: 1, healthy: false },
      ],
    })]);
    const yaml = await lvs(['status', '-n', ns, '-o', 'yaml', '--no-connections']);
    expect(yaml.stdout).toContain(`activeDirector: ${node.director}`);
    // -A lists other namespaces too; this suite's service is among them.
    expect((await lvs(['status', '-A', '--no-connections'])).stdout).toContain(`${ns}/web  mode DirectRouting`);
  });

  it('export --node prints the rules the controller planned for that director, also from the objects', async () => {
    const expected = `-A -t ${vip.web}:80 -s rr\n-a -t ${vip.web}:80 -r 192.168.77.37:80 -g -w 1\n-a -t ${vip.web}:80 -r 192.168.77.38:80 -g -w 1\n`;
    for (const n of [node.director, node.standby]) {
      const fromPlans = await lvs(['export', '--node', n]);
      expect(fromPlans).toMatchObject({ code: 0, stdout: expected });
    }
    // The realservers direct nothing.
    expect(await lvs(['export', '--node', node.web1])).toMatchObject({ code: 0, stdout: '' });
    // --source objects: the planner on the cluster's VirtualServices, RealServers and Nodes.
    await kubectlOk(['patch', 'virtualservice', 'web', '-n', ns, '--type=merge', '-p', JSON.stringify({ spec: { directors: { nodeSelector: { 'lvs-test/cli-director': sfx } } } })], { kubeconfig: admin() });
    const fromObjects = await lvs(['export', '--source', 'objects', '--node', node.director]);
    expect(fromObjects.code).toBe(0);
    expect(fromObjects.stdout).toBe(expected);
  });

  it('import output is accepted by the API server, and export gives the imported rules back', async () => {
    const rules = readFileSync(join(ROOT, 'test/fixtures/ipvsadm/persistence.rules'), 'utf8').split('\n').filter((l) => l.includes('192.168.56.41:443')).join('\n').replaceAll('192.168.56.41', vip.imported);
    const imported = await lvs(['import', '-', '--namespace', ns], rules);
    expect(imported).toMatchObject({ code: 0, stderr: '' });
    await kubectlOk(['apply', '-f', '-'], { kubeconfig: admin(), input: imported.stdout });
    const exported = await eventually('imported service planned', async () => {
      const r = await lvs(['export', '--node', node.director]);
      return r.stdout.includes(vip.imported) ? r.stdout : undefined;
    });
    const mine = exported.split('\n').filter((l) => l.includes(vip.imported)).join('\n');
    expect(canonicalRules(mine).lines).toEqual(canonicalRules(rules).lines);
    expect(mine).toContain(`-A -t ${vip.imported}:443 -s wlc -p 600 -M 255.255.255.0`);
  });
});

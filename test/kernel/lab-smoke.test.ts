// Proves the lab VM environment (run with `npm run test:vm`): IPVS with every scheduler, ipvsadm, network
// namespaces with veth + bridge, TCP inside a netns, the IPVS generic netlink family from Node.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createGenericNetlink, genl } from 'netlink';
import { NetLab, assertInLabVm, exec, httpGet } from '../vm/netns.ts';

assertInLabVm();

const SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh'];
// Everything is slow under TCG, and much slower when the host is busy: generous per-test limits.
const T = 60_000;

async function ipvsadm(ns: string | null, ...args: string[]): Promise<string> {
  return (await exec(ns, ['ipvsadm', ...args])).stdout;
}

describe('lab VM kernel', () => {
  test('runs the Debian kernel with IPVS sysctls under /proc/sys/net/ipv4/vs', () => {
    expect(fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8')).toMatch(/-amd64\n$/);
    const entries = fs.readdirSync('/proc/sys/net/ipv4/vs');
    expect(entries).toEqual(expect.arrayContaining(['conntrack', 'conn_reuse_mode', 'expire_nodest_conn', 'sloppy_tcp']));
    expect(fs.readFileSync('/proc/sys/net/ipv4/vs/conn_reuse_mode', 'utf8').trim()).toBe('1');
  }, T);

  test('ipvsadm adds a service that ipvsadm -Sn shows', async () => {
    await ipvsadm(null, '-A', '-t', '10.0.0.1:80', '-s', 'rr');
    try {
      expect((await ipvsadm(null, '-Sn')).split('\n')).toContain('-A -t 10.0.0.1:80 -s rr');
      await ipvsadm(null, '-a', '-t', '10.0.0.1:80', '-r', '10.0.0.11:80', '-g', '-w', '3');
      expect((await ipvsadm(null, '-Sn')).split('\n')).toContain('-a -t 10.0.0.1:80 -r 10.0.0.11:80 -g -w 3');
    } finally {
      await ipvsadm(null, '-D', '-t', '10.0.0.1:80');
    }
    expect(await ipvsadm(null, '-Sn')).not.toContain('10.0.0.1:80');
  }, T);

  test.each(SCHEDULERS)('scheduler %s can back a service', async (sched) => {
    const port = 1000 + SCHEDULERS.indexOf(sched);
    await ipvsadm(null, '-A', '-t', `10.0.0.2:${port}`, '-s', sched);
    try {
      expect((await ipvsadm(null, '-Sn')).split('\n')).toContain(`-A -t 10.0.0.2:${port} -s ${sched}`);
      expect(fs.readFileSync('/proc/net/ip_vs', 'utf8')).toMatch(new RegExp(`TCP\\s+0A000002:${port.toString(16).toUpperCase().padStart(4, '0')} ${sched}\\b`));
    } finally {
      await ipvsadm(null, '-D', '-t', `10.0.0.2:${port}`);
    }
  }, T);

  test('an unknown scheduler is refused', async () => {
    const r = await exec(null, ['ipvsadm', '-A', '-t', '10.0.0.3:80', '-s', 'nosuchsched'], { allowFailure: true });
    expect(r.code).not.toBe(0);
    expect(await ipvsadm(null, '-Sn')).not.toContain('10.0.0.3:80');
  }, T);

  test('the netlink package resolves the IPVS generic netlink family', async () => {
    const sock = createGenericNetlink();
    try {
      const [family] = await sock.ctrlRequest(genl.Commands.GET_FAMILY, { familyName: 'IPVS' });
      expect(family?.familyName).toBe('IPVS');
      expect(family?.familyId).toBeGreaterThanOrEqual(16); // dynamic genl ids start after the reserved ones
      // Every IPVS_CMD_* except SET_INFO (14), which is only a reply.
      expect(family?.ops?.map((o) => o.id).sort((x, y) => (x ?? 0) - (y ?? 0)))
        .toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 17]);
    } finally {
      sock.socket.close();
    }
  }, T);

  test('Node runs WebAssembly without tier-up here (test/vm/guest-node.mjs, preloaded through NODE_OPTIONS)', async () => {
    // Loading TypeScript modules runs Node's type stripping, which is WebAssembly: hot functions tier up to
    // TurboFan unless the preload turned that off. The tier-up compiles in the background (seconds here): wait.
    // Without the compile cache, which would skip the stripping of modules it has seen.
    const load = (env: Record<string, string>) => exec(null, [process.execPath, '--no-warnings', '--trace-wasm-compilation-times', '--input-type=module', '-e',
      `await import(${JSON.stringify(path.resolve(import.meta.dirname, '../../src/controller/controller.ts'))}); await new Promise((r) => setTimeout(r, 5000));`],
    // Importing the controller strips every module's types in Liftoff code: 20-40 s here under a loaded TCG VM,
    // beyond exec's 30 s default (a SIGKILL, code 137, in CI on 2026-12-04).
    { env: { ...env, NODE_DISABLE_COMPILE_CACHE: '1' }, allowFailure: true, timeoutMs: 2 * T });
    const compiled = (out: string, tier: string): number => out.split('\n').filter((l) => l.includes(`using ${tier}`)).length;
    expect(process.env.NODE_OPTIONS).toContain('guest-node.mjs');
    const preloaded = await load({});
    // Its exit code next to the end of its stderr, so that a failure shows why.
    expect({ code: preloaded.code, timedOut: preloaded.timedOut, stderr: preloaded.stderr.slice(-2000) })
      .toEqual({ code: 0, timedOut: false, stderr: expect.any(String) });
    expect(compiled(preloaded.stdout + preloaded.stderr, 'Liftoff')).toBeGreaterThan(100);
    expect(compiled(preloaded.stdout + preloaded.stderr, 'TurboFan')).toBe(0);
    // Without the preload, hot functions tier up, and now and then V8 aborts in that tier-up under emulation
    // (a fatal "Check failed", SIGTRAP: what the preload is for, seen in CI on 2026-12-03): either shows it.
    const plain = await load({ NODE_OPTIONS: '' });
    const aborted = plain.signal === 'SIGTRAP' && /Fatal error/.test(plain.stderr);
    if (!aborted) {
      expect({ code: plain.code, timedOut: plain.timedOut }).toEqual({ code: 0, timedOut: false });
      expect(compiled(plain.stdout + plain.stderr, 'TurboFan')).toBeGreaterThan(0);
    }
  }, 5 * T);
});

describe('lab VM networking', () => {
  const lab = new NetLab('smoke');
  afterAll(() => lab.destroy(), T);

  test('TCP over loopback inside a netns', async () => {
    const ns = await lab.addNetns('lo');
    expect((await exec(ns, ['ip', '-o', 'link', 'show', 'lo'])).stdout).toMatch(/state UNKNOWN|LOWER_UP/);
    await lab.startHttpServer(ns, { name: 'loopback', host: '127.0.0.1', port: 8080 });
    expect(await httpGet(ns, 'http://127.0.0.1:8080/')).toBe('loopback\n');
    // The namespace is isolated: nothing listens on that port in the root netns.
    expect(await httpGet(null, 'http://127.0.0.1:8080/', { allowFailure: true, timeoutSec: 2 })).toBeNull();
  }, 2 * T);

  test('client, director, web1, web2 on a bridge (192.168.56.0/24)', async () => {
    const br = await lab.addBridge('br56');
    const hosts = { client: '192.168.56.10', director: '192.168.56.34', web1: '192.168.56.37', web2: '192.168.56.38' };
    const add = async (name: keyof typeof hosts): Promise<string> => {
      const ns = await lab.addNetns(name);
      await lab.connect(ns, br, { addresses: [`${hosts[name]}/24`] });
      return ns;
    };
    const client = await add('client');
    const director = await add('director');
    const web1 = await add('web1');
    const web2 = await add('web2');
    const ports = (await exec(null, ['ip', '-o', 'link', 'show', 'master', 'br56'])).stdout.trim().split('\n');
    expect(ports).toHaveLength(4);
    await Promise.all([lab.startHttpServer(web1, { name: 'web1' }), lab.startHttpServer(web2, { name: 'web2' })]);
    expect(await httpGet(client, 'http://192.168.56.37/')).toBe('web1\n');
    expect(await httpGet(client, 'http://192.168.56.38/')).toBe('web2\n');
    expect(await httpGet(director, 'http://192.168.56.38/')).toBe('web2\n');
    // IPVS tables are per netns: a service in the director is invisible in the root netns.
    await exec(director, ['ipvsadm', '-A', '-t', '192.168.56.40:80', '-s', 'rr']);
    expect((await exec(director, ['ipvsadm', '-Sn'])).stdout).toContain('-A -t 192.168.56.40:80 -s rr');
    expect(await ipvsadm(null, '-Sn')).not.toContain('192.168.56.40');
  }, 4 * T);
});

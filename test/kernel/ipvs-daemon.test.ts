// Sync daemons (NEW/DEL/GET_DAEMON) on the lab kernel, compared with `ipvsadm -L --daemon`.
// Uses a dummy interface in the VM's root netns (removed afterwards) and `lo`.
import { jest } from '@jest/globals';
import { assertInLabVm, exec } from '../vm/netns.ts';
import { IpvsClient } from '../../src/ipvs/client.ts';
import { IpvsError } from '../../src/ipvs/errors.ts';
import { parseIpvsadmDaemons } from '../../src/ipvs/ipvsadm.ts';
import type { Destination, Service } from '../../src/ipvs/types.ts';

assertInLabVm();
jest.setTimeout(180_000);

const IFACE = 'ipvssync0';
const daemonsByIpvsadm = async (): Promise<unknown> => parseIpvsadmDaemons((await exec(null, ['ipvsadm', '-L', '--daemon'])).stdout);

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (e instanceof IpvsError) return e.code;
    throw e;
  }
}

describe('sync daemons', () => {
  const client = new IpvsClient();

  beforeAll(async () => {
    await exec(null, ['ip', 'link', 'add', IFACE, 'type', 'dummy']);
    await exec(null, ['ip', 'addr', 'add', '10.250.0.1/24', 'dev', IFACE]);
    await exec(null, ['ip', 'link', 'set', IFACE, 'up']);
  });
  afterEach(async () => {
    for (const d of await client.listSyncDaemons()) await client.stopSyncDaemon(d.role);
    await client.flushAllServices();
  });
  afterAll(async () => {
    client.close();
    await exec(null, ['ip', 'link', 'del', IFACE], { allowFailure: true });
  });

  it('master and backup start, list with the kernel defaults filled in, stop', async () => {
    expect(await client.listSyncDaemons()).toEqual([]);
    await client.startSyncDaemon({ role: 'master', interface: IFACE, syncId: 5 });
    await client.startSyncDaemon({ role: 'backup', interface: 'lo', syncId: 7 });
    const listed = await client.listSyncDaemons();
    expect(listed).toEqual(await daemonsByIpvsadm());
    expect(listed).toEqual([
      { role: 'master', interface: IFACE, syncId: 5, maxLen: 1472, group: '224.0.0.81', port: 8848, ttl: 1 },
      expect.objectContaining({ role: 'backup', interface: 'lo', syncId: 7, group: '224.0.0.81', port: 8848, ttl: 1 }),
    ]);
    await client.stopSyncDaemon('master');
    expect((await client.listSyncDaemons()).map((d) => d.role)).toEqual(['backup']);
    expect(await daemonsByIpvsadm()).toEqual(await client.listSyncDaemons());
  });

  it('explicit group, port (host order on the wire), TTL and max length', async () => {
    await client.startSyncDaemon({ role: 'master', interface: IFACE, syncId: 9, group: '239.1.2.3', port: 9000, ttl: 4, maxLen: 1200 });
    const [d] = await client.listSyncDaemons();
    expect(d).toEqual({ role: 'master', interface: IFACE, syncId: 9, maxLen: 1200, group: '239.1.2.3', port: 9000, ttl: 4 });
    expect(await daemonsByIpvsadm()).toEqual([d]);
  });

  it('errnos: EEXIST for a running role, ESRCH for a stopped one, ENODEV for a missing interface, EINVAL for a unicast group', async () => {
    await client.startSyncDaemon({ role: 'master', interface: IFACE, syncId: 1 });
    expect(await codeOf(client.startSyncDaemon({ role: 'master', interface: IFACE, syncId: 2 }))).toBe('EEXIST');
    expect(await codeOf(client.stopSyncDaemon('backup'))).toBe('ESRCH');
    expect(await codeOf(client.startSyncDaemon({ role: 'backup', interface: 'nosuch0', syncId: 1 }))).toBe('ENODEV');
    expect(await codeOf(client.startSyncDaemon({ role: 'backup', interface: IFACE, syncId: 1, group: '10.0.0.1' }))).toBe('EINVAL');
    const e = await client.stopSyncDaemon('backup').catch((x: unknown) => x as IpvsError);
    expect((e as IpvsError).message).toBe('ESRCH: DEL_DAEMON backup sync daemon: sync daemon not running');
  });

  it('mixed-family destinations are refused while a sync daemon runs', async () => {
    const svc: Service = { af: 'ipv4', protocol: 'tcp', address: '10.250.0.40', port: 80, scheduler: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff };
    const d6: Destination = {
      address: '2001:db8::5',
      port: 80,
      af: 'ipv6',
      forwarding: 'tunnel',
      weight: 1,
      upperThreshold: 0,
      lowerThreshold: 0,
      tunnelType: 'ipip',
      tunnelPort: 0,
      tunnelFlags: 0,
    };
    await client.addService(svc);
    await client.startSyncDaemon({ role: 'master', interface: IFACE, syncId: 1 });
    expect(await codeOf(client.addDestination(svc, d6))).toBe('EINVAL');
    await client.stopSyncDaemon('master');
    expect(await codeOf(client.addDestination(svc, d6))).toBe('ok');
  });
});

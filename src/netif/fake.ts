/** In-memory NetInterfaceOps and ArpAnnouncer for the agent's unit tests; same errors and idempotency as the kernel. */
import { NetifError } from './errors.ts';
import { cidr, hostAddress } from './ip.ts';
import { TUNL0, type ArpAnnouncer, type InterfaceAddress, type LocalRoute, type NetInterface, type NetInterfaceOps, type VipAdd, type VipOptions } from './types.ts';

interface FakeLink {
  index: number;
  name: string;
  up: boolean;
  kind: string | undefined;
  addresses: InterfaceAddress[];
}

export interface FakeNetifOptions {
  /** Whether ensureTunl0 can create tunl0 (a kernel with ipip); default true. */
  ipip?: boolean;
}

export class FakeNetif implements NetInterfaceOps {
  readonly #links = new Map<string, FakeLink>();
  readonly #ipip: boolean;
  readonly #faults = new Map<string, string>();
  #nextIndex = 1;
  /** Mutating calls that changed something, e.g. `add 192.168.56.40/32 dev lo`, for assertions. */
  readonly changes: string[] = [];
  /** setVipLifetimes refreshes applied (not in `changes`: they are periodic). */
  lifetimeRefreshes = 0;

  constructor(options: FakeNetifOptions = {}) {
    this.#ipip = options.ipip ?? true;
    this.addLink('lo', { up: true });
  }

  /** Test setup: an interface that exists on the host. */
  addLink(name: string, opts: { kind?: string; up?: boolean } = {}): NetInterface {
    const link: FakeLink = { index: this.#nextIndex++, name, up: opts.up ?? false, kind: opts.kind, addresses: [] };
    this.#links.set(name, link);
    return snapshot(link);
  }

  /** Test setup: the interface disappears (with its addresses, as in the kernel). */
  deleteLink(name: string): void {
    this.#links.delete(name);
  }

  /** The next call of `method` rejects with NetifError `errno` (e.g. EPERM). */
  failNext(method: keyof NetInterfaceOps, errno: string): void {
    this.#faults.set(method, errno);
  }

  async getInterface(name: string): Promise<NetInterface> {
    this.#fault('getInterface', 'get', `dev ${name}`);
    return snapshot(this.#link(name));
  }

  async listInterfaces(): Promise<NetInterface[]> {
    this.#fault('listInterfaces', 'list', 'links');
    return [...this.#links.values()].map(snapshot);
  }

  async listAddresses(ifname: string): Promise<InterfaceAddress[]> {
    this.#fault('listAddresses', 'list', `addresses dev ${ifname}`);
    return [...this.#link(ifname).addresses];
  }

  async addVip(ifname: string, vip: string, opts: VipOptions = {}): Promise<boolean> {
    const a = hostAddress(vip);
    const object = `${cidr(a)} dev ${ifname}`;
    const link = this.#link(ifname);
    this.#fault('addVip', 'add', object);
    if (link.addresses.some((x) => x.address === a.address && (a.family === 6 || x.prefixlen === a.prefixlen))) return false;
    link.addresses.push({ family: a.family, address: a.address, prefixlen: a.prefixlen, ...(opts.lifetimeSeconds !== undefined ? { validLifetimeSeconds: opts.lifetimeSeconds } : {}) });
    this.changes.push(`add ${object}${opts.lifetimeSeconds !== undefined ? ` valid_lft ${opts.lifetimeSeconds}` : ''}`);
    return true;
  }

  /** addVip for each item (so an override of addVip sees every add); a `failNext('addVips')` fails them all. */
  async addVips(items: readonly VipAdd[]): Promise<(boolean | NetifError)[]> {
    const errno = this.#faults.get('addVips');
    this.#faults.delete('addVips');
    const out: (boolean | NetifError)[] = [];
    for (const { ifname, vip, ...opts } of items) {
      if (errno) {
        out.push(new NetifError(errno, 'add', `${cidrOf(vip)} dev ${ifname}`, 'injected'));
        continue;
      }
      try {
        out.push(await this.addVip(ifname, vip, opts));
      } catch (err) {
        // Not a NetifError: hostAddress refused the literal, as RtNetif.addVips reports it.
        out.push(err instanceof NetifError ? err : new NetifError('EINVAL', 'add', `${vip} dev ${ifname}`, (err as Error).message, { cause: err }));
      }
    }
    return out;
  }

  async setVipLifetimes(ifname: string, vips: readonly string[], lifetimeSeconds: number | undefined): Promise<string[]> {
    const link = this.#link(ifname);
    this.#fault('setVipLifetimes', 'change', `dev ${ifname}`);
    const done: string[] = [];
    for (const vip of vips) {
      const a = hostAddress(vip);
      const i = link.addresses.findIndex((x) => x.address === a.address && x.prefixlen === a.prefixlen);
      if (i < 0) continue;
      const { validLifetimeSeconds: _old, ...rest } = link.addresses[i]!;
      link.addresses[i] = { ...rest, ...(lifetimeSeconds !== undefined ? { validLifetimeSeconds: lifetimeSeconds } : {}) };
      this.lifetimeRefreshes++;
      done.push(vip);
    }
    return done;
  }

  /** Test helper: the kernel let the address's lifetime run out (deleted it). */
  expire(ifname: string, vip: string): boolean {
    const a = hostAddress(vip);
    const link = this.#link(ifname);
    const i = link.addresses.findIndex((x) => x.address === a.address && x.prefixlen === a.prefixlen && x.validLifetimeSeconds !== undefined);
    if (i < 0) return false;
    link.addresses.splice(i, 1);
    return true;
  }

  async removeVip(ifname: string, vip: string): Promise<boolean> {
    const a = hostAddress(vip);
    const object = `${cidr(a)} dev ${ifname}`;
    const link = this.#links.get(ifname);
    this.#fault('removeVip', 'del', object);
    if (!link) return false;
    const i = link.addresses.findIndex((x) => x.address === a.address && x.prefixlen === a.prefixlen);
    if (i < 0) return false;
    link.addresses.splice(i, 1);
    this.changes.push(`del ${object}`);
    return true;
  }

  async setUp(ifname: string): Promise<void> {
    const link = this.#link(ifname);
    this.#fault('setUp', 'up', `dev ${ifname}`);
    if (link.up) return;
    link.up = true;
    this.changes.push(`up dev ${ifname}`);
  }

  async ensureTunl0(): Promise<NetInterface> {
    this.#fault('ensureTunl0', 'create', `dev ${TUNL0} type ipip`);
    let link = this.#links.get(TUNL0);
    if (!link) {
      if (!this.#ipip) throw new NetifError('ENOTSUP', 'create', `dev ${TUNL0} type ipip`, 'kernel has no ipip support (CONFIG_NET_IPIP, modprobe ipip)');
      this.addLink(TUNL0, { kind: 'ipip' });
      this.changes.push(`create dev ${TUNL0} type ipip`);
      link = this.#link(TUNL0);
    }
    if (link.kind !== 'ipip') throw new NetifError('EEXIST', 'create', `dev ${TUNL0} type ipip`, `${TUNL0} exists with kind ${link.kind ?? 'none'}`);
    await this.setUp(TUNL0);
    return snapshot(link);
  }

  async listLocalRoutes(): Promise<LocalRoute[]> {
    this.#fault('listLocalRoutes', 'list', 'routes table local');
    // Every address, whatever its prefix, gets a host route of type local.
    return [...this.#links.values()].flatMap((l) => l.addresses.map((a) => ({ family: a.family, address: a.address, ifindex: l.index })));
  }

  close(): void {}

  #link(name: string): FakeLink {
    const link = this.#links.get(name);
    if (!link) throw new NetifError('ENODEV', 'get', `dev ${name}`, 'no such interface');
    return link;
  }

  #fault(method: keyof NetInterfaceOps, op: string, object: string): void {
    const errno = this.#faults.get(method);
    if (errno === undefined) return;
    this.#faults.delete(method);
    throw new NetifError(errno, op, object, 'injected');
  }
}

function snapshot(l: FakeLink): NetInterface {
  return { index: l.index, name: l.name, up: l.up, kind: l.kind };
}

export class FakeArpAnnouncer implements ArpAnnouncer {
  readonly announcements: { ifname: string; vip: string; count: number | undefined }[] = [];

  async announce(ifname: string, vip: string, count?: number): Promise<void> {
    this.announcements.push({ ifname, vip: hostAddress(vip).address, count });
  }
}

/** `vip/32` or `vip/128` as errors name it, or the literal as given when it is not an address. */
function cidrOf(vip: string): string {
  try {
    return cidr(hostAddress(vip));
  } catch {
    return vip;
  }
}

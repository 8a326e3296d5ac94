/**
 * NetInterfaceOps over rtnetlink (netlink@0.3.0). The only file of src/netif that talks to the kernel.
 *
 * Host route: none is added. Binding VIP/32 (or /128) makes the kernel install `local VIP dev <if> table local
 * proto kernel scope host`, and table local is consulted before main, so the LVS-HOWTO's extra
 * `route add -host VIP dev NIC` (a main-table route, from 2.2-era kernels) never takes effect on a modern
 * kernel. listLocalRoutes() exposes the route the kernel did create, to check or discover bindings.
 */
import { AttrStream, FlagsNew, createRtNetlink, ifla, rt, type RtNetlinkSocket } from 'netlink';
import { NetlinkTransport, openNetlinkSocket, type OutgoingMessage } from '../ipvs/transport.ts';
import type { Logger } from '../util/log.ts';
import { addressDumpRequest, decodeAddressPart, NETLINK_ROUTE } from './addrdump.ts';
import { newAddressRequest } from './addrwrite.ts';
import { NetifError, errnoOf, toNetifError } from './errors.ts';
import { afOf, cidr, formatAddress, hostAddress, type AddressFamily, type HostAddress } from './ip.ts';
import { TUNL0, type InterfaceAddress, type LocalRoute, type NetInterface, type NetInterfaceOps, type VipAdd, type VipOptions } from './types.ts';

export interface RtNetifOptions {
  /** Deadline of one netlink request; after a timeout the socket is replaced (late replies would confuse it). */
  timeoutMs?: number;
  logger?: Logger;
  /** An address dump lets the event loop run whenever it has read and decoded for this long (default 10 ms). */
  sliceMs?: number;
}

const TABLE_LOCAL = 255;
const TIMEOUT_MESSAGE = 'Timeout has been reached'; // netlink@0.3.0's own text
const IFNAMSIZ = 16;

export class RtNetif implements NetInterfaceOps {
  readonly #timeoutMs: number;
  readonly #log: Logger | undefined;
  #sock: RtNetlinkSocket | undefined;
  // One request in flight per socket: netlink@0.3.0 mixes up a dump with a concurrent reply (reference §7).
  #tail: Promise<unknown> = Promise.resolve();
  readonly #sliceMs: number;
  /** Address dumps: our own framing (addrdump.ts) on a socket of their own, opened on first use. */
  #dumps: NetlinkTransport | undefined;
  /** Pipelined address writes (addrwrite.ts), on another socket: a dump's replies never mix with their ACKs. */
  #writes: NetlinkTransport | undefined;

  constructor(options: RtNetifOptions = {}) {
    this.#timeoutMs = options.timeoutMs ?? 5000;
    this.#log = options.logger;
    this.#sliceMs = options.sliceMs ?? 10;
  }

  async getInterface(name: string): Promise<NetInterface> {
    return toInterface(await this.#link(name));
  }

  async listInterfaces(): Promise<NetInterface[]> {
    const links = await this.#call((s, o) => s.getLinks({}, {}, o)).catch((err: unknown) => {
      throw toNetifError(err, 'list', 'links');
    });
    return links.map(toInterface);
  }

  async listAddresses(ifname: string): Promise<InterfaceAddress[]> {
    return this.#addresses(ifname, (await this.#link(ifname)).data.index);
  }

  /** The addresses of interface `index` (named `ifname`), from one address dump of the host. */
  async #addresses(ifname: string, index: number | undefined): Promise<InterfaceAddress[]> {
    const object = `addresses dev ${ifname}`;
    const out: InterfaceAddress[] = [];
    this.#dumps ??= new NetlinkTransport({ socketFactory: openNetlinkSocket(NETLINK_ROUTE), timeoutMs: this.#timeoutMs });
    try {
      await this.#dumps.dumpEach({ buf: addressDumpRequest(), command: 'RTM_GETADDR', target: object }, (part) => decodeAddressPart(part, index ?? -1, out, object), this.#sliceMs);
    } catch (err) {
      throw toNetifError(err, 'list', object);
    }
    return out;
  }

  async addVip(ifname: string, vip: string, opts: VipOptions = {}): Promise<boolean> {
    // The same request as addVips, a batch of one: one framing of RTM_NEWADDR for both.
    const [result] = await this.addVips([{ ifname, vip, ...opts }]);
    if (result instanceof Error) throw result;
    return result === true;
  }

  async addVips(items: readonly VipAdd[]): Promise<(boolean | NetifError)[]> {
    const out = new Array<boolean | NetifError>(items.length);
    const indexes = new Map<string, number | NetifError>();
    const msgs: OutgoingMessage[] = [];
    const sent: { at: number; vip: string; ifname: string; object: string }[] = [];
    for (const [at, item] of items.entries()) {
      const { ifname, vip } = item;
      let a: HostAddress;
      try {
        a = hostAddress(vip);
      } catch (err) {
        out[at] = new NetifError('EINVAL', 'add', `${vip} dev ${ifname}`, (err as Error).message, { cause: err });
        continue;
      }
      const object = `${cidr(a)} dev ${ifname}`;
      let index = indexes.get(ifname);
      if (index === undefined) {
        index = await this.#link(ifname).then(
          (l) => l.data.index ?? 0,
          (err: unknown) => toNetifError(err, 'get', `dev ${ifname}`),
        );
        indexes.set(ifname, index);
      }
      if (index instanceof NetifError) {
        out[at] = index;
        continue;
      }
      let lifetime: number;
      try {
        lifetime = checkLifetime(item.lifetimeSeconds, object);
      } catch (err) {
        out[at] = err as NetifError;
        continue;
      }
      msgs.push({ buf: newAddressRequest(a, index, 'create', lifetime === FOREVER ? undefined : lifetime), command: 'RTM_NEWADDR', target: object });
      sent.push({ at, vip: a.address, ifname, object });
    }
    if (msgs.length === 0) return out;
    // One job of the request queue, so that a removeVip queued after it runs after every add of it.
    const results = await this.#call(() => this.#writer().pipeline(msgs));
    for (const [i, { at, vip, ifname, object }] of sent.entries()) {
      const err = results[i];
      if (err === undefined) {
        out[at] = true;
        this.#log?.info({ vip, ifname }, 'bound VIP');
      } else {
        out[at] = err.code === 'EEXIST' ? false : new NetifError(err.code, 'add', object, undefined, { cause: err });
      }
    }
    return out;
  }

  async setVipLifetimes(ifname: string, vips: readonly string[], lifetimeSeconds: number | undefined): Promise<string[]> {
    if (vips.length === 0) return [];
    const lifetime = checkLifetime(lifetimeSeconds, `dev ${ifname}`);
    const index = (await this.#link(ifname)).data.index ?? 0;
    // Only addresses bound now: RTM_NEWADDR with NLM_F_REPLACE adds a missing IPv4 address (devinet.c
    // ignores the absent NLM_F_CREATE), and a VIP the kernel let expire must come back through the reconciler.
    // The read and the replaces are ONE job of the request queue: a removeVip queued meanwhile (a release)
    // runs before or after all of it, never between the read and a replace that would bind the VIP again.
    return this.#call(async () => {
      const bound = new Set((await this.#addresses(ifname, index)).map((x) => `${x.address}/${x.prefixlen}`));
      const done: string[] = [];
      const msgs: OutgoingMessage[] = [];
      for (const vip of vips) {
        const a = hostAddress(vip);
        if (!bound.has(`${a.address}/${a.prefixlen}`)) continue;
        msgs.push({ buf: newAddressRequest(a, index, 'replace', lifetime), command: 'RTM_NEWADDR', target: `${cidr(a)} dev ${ifname}` });
        done.push(vip);
      }
      const results = msgs.length ? await this.#writer().pipeline(msgs) : [];
      const i = results.findIndex((err) => err !== undefined);
      if (i >= 0) {
        const err = results[i] as NonNullable<(typeof results)[number]>;
        throw new NetifError(err.code, 'change', (msgs[i] as OutgoingMessage).target as string, undefined, { cause: err });
      }
      return done;
    });
  }

  async removeVip(ifname: string, vip: string): Promise<boolean> {
    const a = hostAddress(vip);
    const object = `${cidr(a)} dev ${ifname}`;
    let index: number | undefined;
    try {
      index = (await this.#link(ifname)).data.index;
    } catch (err) {
      // The interface is gone, and with it every address it held: nothing left to unbind.
      if (err instanceof NetifError && err.errno === 'ENODEV') return false;
      throw err;
    }
    try {
      await this.#call((s, o) =>
        s.delAddress({ family: afOf(a.family), prefixlen: a.prefixlen, index }, addressAttrs(a.family, a.bytes), o),
      );
    } catch (err) {
      if (errnoOf(err) === 'EADDRNOTAVAIL') return false;
      throw toNetifError(err, 'del', object);
    }
    this.#log?.info({ vip: a.address, ifname }, 'unbound VIP');
    return true;
  }

  async setUp(ifname: string): Promise<void> {
    const link = await this.#link(ifname);
    if (link.data.flags?.up) return;
    const index = link.data.index;
    await this.#call((s, o) => s.setLink({ index, flags: { up: true }, change: { up: true } }, {}, o)).catch(
      (err: unknown) => {
        throw toNetifError(err, 'up', `dev ${ifname}`);
      },
    );
  }

  async ensureTunl0(): Promise<NetInterface> {
    let tunl = await this.#findLink(TUNL0);
    if (!tunl) {
      // Asking for an ipip link autoloads the module (rtnl-link-ipip alias), which creates the fallback tunl0
      // itself, so EEXIST is the usual answer; where fallback devices are suppressed
      // (net.core.fb_tunnels_only_for_init_net in a non-init netns) this creates an equivalent
      // unbound (local any, remote any) ipip device, which receives every IP-in-IP packet.
      const linkinfo = new AttrStream();
      linkinfo.emit(ifla.formatInfo({ kind: 'ipip' }));
      try {
        await this.#call((s, o) =>
          s.newLink({}, { ifname: TUNL0, linkinfo: Buffer.concat(linkinfo.bufs) }, { ...o, flags: FlagsNew.CREATE | FlagsNew.EXCL }),
        );
      } catch (err) {
        const errno = errnoOf(err);
        if (errno === 'ENOTSUP' || errno === 'EOPNOTSUPP') {
          throw new NetifError(errno, 'create', `dev ${TUNL0} type ipip`, 'kernel has no ipip support (CONFIG_NET_IPIP, modprobe ipip)', { cause: err });
        }
        if (errno !== 'EEXIST') throw toNetifError(err, 'create', `dev ${TUNL0} type ipip`);
      }
      tunl = await this.#link(TUNL0);
    }
    const iface = toInterface(tunl);
    if (iface.kind !== 'ipip') {
      throw new NetifError('EEXIST', 'create', `dev ${TUNL0} type ipip`, `${TUNL0} exists with kind ${iface.kind ?? 'none'}`);
    }
    if (!iface.up) await this.setUp(TUNL0);
    return { ...iface, up: true };
  }

  async listLocalRoutes(): Promise<LocalRoute[]> {
    const routes = await this.#call((s, o) => s.getRoutes({}, {}, o)).catch((err: unknown) => {
      throw toNetifError(err, 'list', 'routes table local');
    });
    const out: LocalRoute[] = [];
    for (const r of routes) {
      const family = familyOfAf(r.data.family);
      const table = r.attrs.table ?? r.data.table;
      const isLocal = r.data.type === 'LOCAL' || r.data.type === rt.RouteType.LOCAL;
      if (!family || table !== TABLE_LOCAL || !isLocal || !r.attrs.dst) continue;
      if (r.data.dstLen !== (family === 4 ? 32 : 128)) continue;
      out.push({ family, address: formatAddress(r.attrs.dst), ifindex: r.attrs.oif ?? 0 });
    }
    return out;
  }

  close(): void {
    this.#sock?.socket.close();
    this.#sock = undefined;
    this.#dumps?.close();
    this.#dumps = undefined;
    this.#writes?.close();
    this.#writes = undefined;
  }

  #writer(): NetlinkTransport {
    return (this.#writes ??= new NetlinkTransport({ socketFactory: openNetlinkSocket(NETLINK_ROUTE), timeoutMs: this.#timeoutMs }));
  }

  async #findLink(name: string): Promise<rt.LinkMessage | undefined> {
    try {
      return await this.#link(name);
    } catch (err) {
      if (err instanceof NetifError && err.errno === 'ENODEV') return undefined;
      throw err;
    }
  }

  async #link(name: string): Promise<rt.LinkMessage> {
    if (!name || name.length >= IFNAMSIZ || /[\s/:]/.test(name) || name === '.' || name === '..') {
      throw new NetifError('EINVAL', 'get', `dev ${JSON.stringify(name)}`, 'invalid interface name');
    }
    try {
      const [link] = await this.#call((s, o) => s.getLink({}, { ifname: name }, o));
      if (!link) throw new NetifError('ENODEV', 'get', `dev ${name}`, 'no such interface');
      return link;
    } catch (err) {
      if (errnoOf(err) === 'ENODEV') throw new NetifError('ENODEV', 'get', `dev ${name}`, 'no such interface', { cause: err });
      throw toNetifError(err, 'get', `dev ${name}`);
    }
  }

  #call<T>(fn: (sock: RtNetlinkSocket, options: { timeout: number }) => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      const sock = (this.#sock ??= createRtNetlink());
      try {
        return await fn(sock, { timeout: this.#timeoutMs });
      } catch (err) {
        if (err instanceof Error && err.message === TIMEOUT_MESSAGE) {
          this.#log?.warn({ timeoutMs: this.#timeoutMs }, 'rtnetlink request timed out; reopening socket');
          this.close();
          throw new NetifError('ETIMEDOUT', 'request', 'rtnetlink', `no reply within ${this.#timeoutMs} ms`, { cause: err });
        }
        throw err;
      }
    };
    const result = this.#tail.then(run, run);
    this.#tail = result.catch(() => undefined);
    return result;
  }
}

function toInterface(link: rt.LinkMessage): NetInterface {
  return {
    index: link.data.index ?? 0,
    name: link.attrs.ifname ?? '',
    up: link.data.flags?.up === true,
    kind: link.attrs.linkinfo ? ifla.parseInfo(link.attrs.linkinfo).kind : undefined,
  };
}

function familyOfAf(af: number | undefined): AddressFamily | undefined {
  return af === 2 ? 4 : af === 10 ? 6 : undefined;
}

/** INFINITY_LIFE_TIME: an address that never expires. */
const FOREVER = 0xffffffff;

function checkLifetime(seconds: number | undefined, object: string): number {
  if (seconds === undefined) return FOREVER;
  if (!Number.isInteger(seconds) || seconds < 1 || seconds >= FOREVER) throw new NetifError('EINVAL', 'add', object, `lifetime must be a whole number of seconds ≥ 1, got ${seconds}`);
  return seconds;
}

function addressAttrs(family: AddressFamily, bytes: Buffer): rt.AddressAttrs {
  // IPv4 needs IFA_LOCAL (the address) and IFA_ADDRESS (same, not point-to-point); IPv6 only IFA_ADDRESS.
  return family === 4 ? { local: bytes, address: bytes } : { address: bytes };
}

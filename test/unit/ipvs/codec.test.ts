import { describe, expect, it } from '@jest/globals';
import {
  decodeDaemonReply,
  decodeDestReply,
  decodeFamilyReply,
  decodeInfoReply,
  decodeServiceReply,
  decodeTimeoutsReply,
  encodeGetFamily,
  encodeRequest,
  isDump,
  requestTarget,
  type IpvsRequest,
} from '../../../src/ipvs/codec.ts';
import { Cmd, CmdAttr, DaemonAttr, DestAttr, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, SvcAttr, SvcFlag } from '../../../src/ipvs/constants.ts';
import { IpvsError } from '../../../src/ipvs/errors.ts';
import type { Destination, Service, Stats } from '../../../src/ipvs/types.ts';
import { AttrCursor, parseAttrs, parseNetlinkMessages, type Attr } from '../../../src/ipvs/wire.ts';
import { configReply, daemonReply, destReply, familyReply, infoReply, LE, serviceReply } from './replies.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\(|\)|\s+/g, ''), 'hex');

const svc: Service = { af: 'ipv4', protocol: 'tcp', address: '10.0.0.1', port: 80, scheduler: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff };
const dr: Destination = {
  address: '192.168.1.10',
  port: 8080,
  af: 'ipv4',
  forwarding: 'droute',
  weight: 1,
  upperThreshold: 0,
  lowerThreshold: 0,
  tunnelType: 'ipip',
  tunnelPort: 0,
  tunnelFlags: 0,
};

/** Attributes of nest `type` in an encoded request. */
function nest(msg: Buffer, type: number): Attr[] {
  const top = parseAttrs(msg.subarray(20), 'request');
  const n = top.find((a) => a.type === type);
  if (!n) throw new Error(`no nest ${type}`);
  return parseAttrs(n.data, 'nest');
}
const attr = (attrs: Attr[], type: number): Buffer | undefined => attrs.find((a) => a.type === type)?.data;

const describeLE = LE ? describe : describe.skip;

describeLE('wire images verified in the reference doc (x86-64, family 0x1d, seq 1, portid 0)', () => {
  it('§5.1 NEW_SERVICE tcp 10.0.0.1:80 rr: byte for byte', () => {
    const expected = hex(`
      5c000000 1d00 0500 01000000 00000000
      01 01 0000
      4800 0100
        0600 0100 0200 0000
        0600 0200 0600 0000
        0800 0300 0a000001
        0600 0400 0050 0000
        0700 0600 72720000
        0c00 0700 00000000 ffffffff
        0800 0800 00000000
        0800 0900 ffffffff`);
    expect(encodeRequest({ cmd: 'NEW_SERVICE', service: svc }, { familyId: 0x1d, seq: 1 }).toString('hex')).toBe(expected.toString('hex'));
  });

  it('§5.5 NEW_DEST 192.168.1.10:8080 DR weight 1 on tcp 10.0.0.1:80: byte for byte (nest lengths exclude trailing pad)', () => {
    const expected = hex(`
      72000000 1d00 0500 02000000 00000000  05 01 0000
      2200 0100  0600 0100 0200 0000  0600 0200 0600 0000  0800 0300 0a000001  0600 0400 0050 (0000)
      3a00 0200  0800 0100 c0a8010a  0600 0200 1f90 0000  0800 0300 03000000  0800 0400 01000000
                 0800 0500 00000000  0800 0600 00000000  0600 0b00 0200`);
    const got = encodeRequest({ cmd: 'NEW_DEST', service: svc, destination: dr }, { familyId: 0x1d, seq: 2 });
    expect(got.toString('hex')).toBe(expected.toString('hex'));
    expect(got.length).toBe(0x72); // nlmsg_len = 114, not padded to 116
  });
});

describeLE('byte-order traps (§2)', () => {
  it('service and destination ports are be16; tunnel port be16', () => {
    const m = encodeRequest(
      { cmd: 'SET_DEST', service: { ...svc, port: 0x1234 }, destination: { ...dr, port: 8080, forwarding: 'tunnel', tunnelType: 'gue', tunnelPort: 6080 } },
      { familyId: 0x1d },
    );
    expect(attr(nest(m, CmdAttr.SERVICE), SvcAttr.PORT)?.toString('hex')).toBe('1234');
    const d = nest(m, CmdAttr.DEST);
    expect(attr(d, DestAttr.PORT)?.toString('hex')).toBe('1f90');
    expect(attr(d, DestAttr.TUN_PORT)?.toString('hex')).toBe('17c0'); // 6080
    expect(attr(d, DestAttr.TUN_TYPE)?.toString('hex')).toBe('01');
  });

  it('IPv4 netmask is a be32 mask', () => {
    const m = encodeRequest({ cmd: 'NEW_SERVICE', service: { ...svc, flags: SvcFlag.PERSISTENT, timeout: 300, netmask: 0xffffff00 } }, { familyId: 0x1d });
    expect(attr(nest(m, CmdAttr.SERVICE), SvcAttr.NETMASK)?.toString('hex')).toBe('ffffff00');
  });

  it('IPv6 netmask is a host-order u32 prefix length, addresses are 16 bytes', () => {
    const s6: Service = { af: 'ipv6', protocol: 'tcp', address: '2001:db8::1', port: 80, scheduler: 'rr', flags: 1, timeout: 60, netmask: 64 };
    const n = nest(encodeRequest({ cmd: 'NEW_SERVICE', service: s6 }, { familyId: 0x1d }), CmdAttr.SERVICE);
    expect(attr(n, SvcAttr.NETMASK)?.toString('hex')).toBe('40000000');
    expect(attr(n, SvcAttr.ADDR)?.toString('hex')).toBe('20010db8000000000000000000000001');
    expect(attr(n, SvcAttr.AF)?.toString('hex')).toBe('0a00');
  });

  it('sync daemon port is host-order u16, group in network order, ttl u8', () => {
    const m = encodeRequest(
      { cmd: 'NEW_DAEMON', daemon: { role: 'backup', interface: 'eth1', syncId: 9, maxLen: 1400, group: '224.0.0.81', port: 8848, ttl: 3 } },
      { familyId: 0x1d },
    );
    const d = nest(m, CmdAttr.DAEMON);
    expect(attr(d, DaemonAttr.MCAST_PORT)?.toString('hex')).toBe('9022'); // 8848 = 0x2290, little-endian
    expect(attr(d, DaemonAttr.MCAST_GROUP)?.toString('hex')).toBe('e0000051');
    expect(attr(d, DaemonAttr.MCAST_TTL)?.toString('hex')).toBe('03');
    expect(attr(d, DaemonAttr.STATE)?.toString('hex')).toBe('02000000');
    expect(attr(d, DaemonAttr.MCAST_IFN)?.toString()).toBe('eth1\0');
    expect(attr(d, DaemonAttr.SYNC_MAXLEN)?.toString('hex')).toBe('7805');
  });

  it('service flags are host-order {flags, mask=~0}, HASHED never sent', () => {
    const m = encodeRequest({ cmd: 'SET_SERVICE', service: { ...svc, flags: SvcFlag.PERSISTENT | SvcFlag.HASHED | SvcFlag.SH_PORT } }, { familyId: 0x1d });
    expect(attr(nest(m, CmdAttr.SERVICE), SvcAttr.FLAGS)?.toString('hex')).toBe('11000000ffffffff');
  });
});

describe('encodeRequest', () => {
  const flagsOf = (m: Buffer): number => parseNetlinkMessages(m)[0]?.flags ?? -1;

  it('dumps carry NLM_F_DUMP, doits do not', () => {
    const dumps: IpvsRequest[] = [{ cmd: 'GET_SERVICE' }, { cmd: 'GET_DEST', service: svc }, { cmd: 'GET_DAEMON' }];
    const doits: IpvsRequest[] = [{ cmd: 'GET_SERVICE', service: svc }, { cmd: 'GET_INFO' }, { cmd: 'GET_CONFIG' }, { cmd: 'FLUSH' }, { cmd: 'ZERO' }];
    for (const r of dumps) {
      expect(isDump(r)).toBe(true);
      expect(flagsOf(encodeRequest(r, { familyId: 30 }))).toBe(NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP);
    }
    for (const r of doits) {
      expect(isDump(r)).toBe(false);
      expect(flagsOf(encodeRequest(r, { familyId: 30 }))).toBe(NLM_F_REQUEST | NLM_F_ACK);
    }
  });

  it('every command number and the genl version', () => {
    const reqs: IpvsRequest[] = [
      { cmd: 'NEW_SERVICE', service: svc },
      { cmd: 'SET_SERVICE', service: svc },
      { cmd: 'DEL_SERVICE', service: svc },
      { cmd: 'GET_SERVICE', service: svc },
      { cmd: 'NEW_DEST', service: svc, destination: dr },
      { cmd: 'SET_DEST', service: svc, destination: dr },
      { cmd: 'DEL_DEST', service: svc, destination: dr },
      { cmd: 'GET_DEST', service: svc },
      { cmd: 'NEW_DAEMON', daemon: { role: 'master', interface: 'lo', syncId: 1 } },
      { cmd: 'DEL_DAEMON', role: 'master' },
      { cmd: 'GET_DAEMON' },
      { cmd: 'SET_CONFIG', timeouts: { tcp: 1 } },
      { cmd: 'GET_CONFIG' },
      { cmd: 'GET_INFO' },
      { cmd: 'ZERO', service: svc },
      { cmd: 'FLUSH' },
    ];
    for (const r of reqs) {
      const m = encodeRequest(r, { familyId: 30, seq: 7, port: 99 });
      const [msg] = parseNetlinkMessages(m);
      expect(msg?.type).toBe(30);
      expect(msg?.seq).toBe(7);
      expect(msg?.port).toBe(99);
      expect(m[16]).toBe(Cmd[r.cmd]);
      expect(m[17]).toBe(1);
    }
  });

  it('SET_DEST always carries the tunnel fields; NEW_DEST only when not default', () => {
    const set = nest(encodeRequest({ cmd: 'SET_DEST', service: svc, destination: dr }, { familyId: 30 }), CmdAttr.DEST);
    expect(set.map((a) => a.type)).toEqual([1, 2, 3, 4, 5, 6, 11, 13, 14, 15]);
    const add = nest(encodeRequest({ cmd: 'NEW_DEST', service: svc, destination: dr }, { familyId: 30 }), CmdAttr.DEST);
    expect(add.map((a) => a.type)).toEqual([1, 2, 3, 4, 5, 6, 11]);
    const tun = nest(encodeRequest({ cmd: 'NEW_DEST', service: svc, destination: { ...dr, forwarding: 'tunnel' } }, { familyId: 30 }), CmdAttr.DEST);
    expect(tun.map((a) => a.type)).toEqual([1, 2, 3, 4, 5, 6, 11, 13, 14, 15]);
  });

  it('DEL_DEST sends the key and ADDR_FAMILY (needed for mixed-family dests)', () => {
    const del = nest(encodeRequest({ cmd: 'DEL_DEST', service: svc, destination: { address: '2001:db8::9', port: 80, af: 'ipv6' } }, { familyId: 30 }), CmdAttr.DEST);
    expect(del.map((a) => a.type)).toEqual([1, 2, 11]);
    expect(attr(del, 11)?.toString('hex')).toBe(LE ? '0a00' : '000a');
  });

  it('fwmark services are keyed by AF + FWMARK only', () => {
    const n = nest(encodeRequest({ cmd: 'DEL_SERVICE', service: { af: 'ipv6', fwmark: 7 } }, { familyId: 30 }), CmdAttr.SERVICE);
    expect(n.map((a) => a.type)).toEqual([SvcAttr.AF, SvcAttr.FWMARK]);
    expect(attr(n, SvcAttr.FWMARK)?.length).toBe(4);
  });

  it('PE name only when set, NUL-terminated', () => {
    const n = nest(encodeRequest({ cmd: 'NEW_SERVICE', service: { ...svc, protocol: 'udp', pe: 'sip' } }, { familyId: 30 }), CmdAttr.SERVICE);
    expect(attr(n, SvcAttr.PE_NAME)?.toString()).toBe('sip\0');
    expect(attr(n, SvcAttr.PROTOCOL)?.toString('hex')).toBe(LE ? '1100' : '0011');
  });

  it('SET_CONFIG sends only the given timeouts', () => {
    const m = encodeRequest({ cmd: 'SET_CONFIG', timeouts: { tcpFin: 30 } }, { familyId: 30 });
    expect(parseAttrs(m.subarray(20), 't').map((a) => a.type)).toEqual([CmdAttr.TIMEOUT_TCP_FIN]);
  });

  it.each<[string, IpvsRequest]>([
    ['port out of range', { cmd: 'NEW_SERVICE', service: { ...svc, port: 70000 } }],
    ['bad address', { cmd: 'NEW_SERVICE', service: { ...svc, address: '10.0.0.256' } }],
    ['v6 address in a v4 service', { cmd: 'NEW_SERVICE', service: { ...svc, address: '::1' } }],
    ['scheduler too long', { cmd: 'NEW_SERVICE', service: { ...svc, scheduler: 'x'.repeat(16) } }],
    ['fwmark 0', { cmd: 'DEL_SERVICE', service: { af: 'ipv4', fwmark: 0 } }],
    ['negative weight', { cmd: 'NEW_DEST', service: svc, destination: { ...dr, weight: -1 } }],
    ['fractional timeout', { cmd: 'NEW_SERVICE', service: { ...svc, timeout: 1.5 } }],
    ['interface name too long', { cmd: 'NEW_DAEMON', daemon: { role: 'master', interface: 'x'.repeat(16), syncId: 0 } }],
    ['sync id > 255', { cmd: 'NEW_DAEMON', daemon: { role: 'master', interface: 'lo', syncId: 256 } }],
  ])('refuses what the wire cannot carry: %s (IpvsError EINVAL)', (_name, req) => {
    let err: unknown;
    try {
      encodeRequest(req, { familyId: 30 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IpvsError);
    expect((err as IpvsError).code).toBe('EINVAL');
    expect((err as IpvsError).command).toBe(req.cmd);
  });

  it('requestTarget names the object in ipvsadm notation', () => {
    expect(requestTarget({ cmd: 'NEW_SERVICE', service: { ...svc, address: '192.168.56.40' } })).toBe('192.168.56.40:80/TCP');
    expect(requestTarget({ cmd: 'NEW_DEST', service: svc, destination: dr })).toBe('10.0.0.1:80/TCP -> 192.168.1.10:8080');
    expect(requestTarget({ cmd: 'DEL_SERVICE', service: { af: 'ipv4', fwmark: 1 } })).toBe('fwmark 1/IPv4');
    expect(requestTarget({ cmd: 'GET_SERVICE', service: { ...svc, af: 'ipv6', address: '2001:DB8:0::1' } })).toBe('[2001:db8::1]:80/TCP');
    expect(requestTarget({ cmd: 'GET_INFO' })).toBeUndefined();
  });

  it('GETFAMILY for "IPVS" goes to nlctrl (16) with CTRL_ATTR_FAMILY_NAME', () => {
    const m = encodeGetFamily('IPVS', 5, 6);
    const [msg] = parseNetlinkMessages(m);
    expect(msg?.type).toBe(16);
    expect(m[16]).toBe(3);
    expect(parseAttrs(m.subarray(20), 'f')).toEqual([{ type: 2, data: Buffer.from('IPVS\0') }]);
  });
});

const stats: Stats = {
  conns: 5_000_000_000n,
  inpkts: 2n ** 40n,
  outpkts: 3n,
  inbytes: 2n ** 63n + 1n,
  outbytes: 12345n,
  cps: 1n,
  inpps: 2n,
  outpps: 3n,
  inbps: 4n,
  outbps: 5n,
};

describe('decoding replies (round trips through kernel-shaped messages)', () => {
  const payload = (msg: Buffer): Buffer => msg.subarray(16);
  const services: Service[] = [
    { ...svc, flags: SvcFlag.HASHED },
    { af: 'ipv4', protocol: 'udp', address: '192.168.56.40', port: 53, scheduler: 'sh', flags: SvcFlag.HASHED | SvcFlag.PERSISTENT | SvcFlag.SH_FALLBACK | SvcFlag.SH_PORT, timeout: 300, netmask: 0xffffff00 },
    { af: 'ipv4', protocol: 'sctp', address: '192.168.56.40', port: 5000, scheduler: 'mh', flags: SvcFlag.HASHED | SvcFlag.MH_PORT, timeout: 0, netmask: 0xffffffff },
    { af: 'ipv6', protocol: 'tcp', address: '2001:db8::1', port: 443, scheduler: 'wrr', flags: SvcFlag.HASHED | SvcFlag.PERSISTENT, timeout: 60, netmask: 64, pe: 'sip' },
    { af: 'ipv4', fwmark: 1, scheduler: 'rr', flags: SvcFlag.HASHED, timeout: 0, netmask: 0xffffffff },
    { af: 'ipv6', fwmark: 0xffffffff, scheduler: 'none', flags: SvcFlag.HASHED | SvcFlag.ONEPACKET, timeout: 0, netmask: 128 },
  ];

  it.each(services.map((s): [string, Service] => [s.fwmark !== undefined ? `fwmark ${s.fwmark}/${s.af}` : `${s.address}:${s.port}/${s.protocol}`, s]))('service %s', (_n, s) => {
    expect(decodeServiceReply(payload(serviceReply(s, stats)))).toEqual({ service: s, stats });
  });

  it('legacy STATS only (kernel < 4.1): 32-bit conns/pkts, 64-bit bytes', () => {
    const got = decodeServiceReply(payload(serviceReply(svc, stats, { legacyOnly: true })));
    expect(got.stats.conns).toBe(5_000_000_000n & 0xffffffffn);
    expect(got.stats.inbytes).toBe(2n ** 63n + 1n);
  });

  const dests: Destination[] = [
    dr,
    { ...dr, address: '10.0.0.2', forwarding: 'masq', weight: 0x7fffffff, upperThreshold: 100, lowerThreshold: 50 },
    { ...dr, forwarding: 'tunnel', tunnelType: 'gue', tunnelPort: 6080, tunnelFlags: 1 },
    { ...dr, forwarding: 'tunnel', tunnelType: 'gre', tunnelFlags: 2 },
    { ...dr, forwarding: 'local' },
    { address: '2001:db8::10', port: 80, af: 'ipv6', forwarding: 'droute', weight: 3, upperThreshold: 0, lowerThreshold: 0, tunnelType: 'ipip', tunnelPort: 0, tunnelFlags: 0 },
  ];

  it.each(dests.map((d): [string, Destination] => [`${d.address}:${d.port} ${d.forwarding}/${d.tunnelType}`, d]))('destination %s', (_n, d) => {
    const counters = { activeConns: 7, inactiveConns: 8, persistConns: 9 };
    expect(decodeDestReply(payload(destReply(d, counters, stats)), 'ipv4')).toEqual({ destination: d, counters, stats });
  });

  it('destination without ADDR_FAMILY (kernel < 3.18) takes the service family', () => {
    const got = decodeDestReply(payload(destReply(dr, undefined, undefined, { noAf: true })), 'ipv4');
    expect(got.destination.af).toBe('ipv4');
    expect(got.destination.address).toBe('192.168.1.10');
  });

  it('sync daemons, info, timeouts, family id', () => {
    const d = { role: 'backup' as const, interface: 'eth1', syncId: 7, maxLen: 65507, group: '224.0.0.81', port: 8848, ttl: 1 };
    expect(decodeDaemonReply(payload(daemonReply(d)))).toEqual(d);
    const d6 = { ...d, role: 'master' as const, group: 'ff02::1234' };
    expect(decodeDaemonReply(payload(daemonReply(d6)))).toEqual(d6);
    expect(decodeInfoReply(payload(infoReply(0x010201, 4096)))).toEqual({ version: '1.2.1', versionCode: 0x010201, connTableSize: 4096 });
    expect(decodeTimeoutsReply(payload(configReply(900, 120, 300)))).toEqual({ tcp: 900, tcpFin: 120, udp: 300 });
    expect(decodeFamilyReply(payload(familyReply(0x2a)))).toBe(0x2a);
  });

  it('ignores unknown attribute types and the NESTED/NET_BYTEORDER type bits', () => {
    const b = Buffer.from(serviceReply(svc));
    // Set NLA_F_NESTED on the outer SERVICE nest (bit 15 of its type at offset 20+2).
    const t = LE ? b.readUInt16LE(22) : b.readUInt16BE(22);
    if (LE) b.writeUInt16LE(t | 0x8000, 22);
    else b.writeUInt16BE(t | 0x8000, 22);
    expect(decodeServiceReply(payload(b)).service).toEqual(svc);
    const c = new AttrCursor(Buffer.from('08006300010000000500018001000000', 'hex'), 0, 16, 'x');
    expect(c.next() && c.type).toBe(0x63);
    expect(c.next() && c.type).toBe(1); // NLA_F_NESTED masked off
    expect(c.u8('x')).toBe(1);
    expect(c.next()).toBe(false);
  });
});

import { describe, expect, it } from '@jest/globals';
import { familyOf, formatIPv6, netmaskFromPrefix, normalizeAddress, parseIPv4, parseIPv6 } from '../../../src/ipvs/addr.ts';
import { errnoFromNetlinkError, errnoName, IpvsError, isIpvsError, toIpvsError } from '../../../src/ipvs/errors.ts';
import { destKey, formatNetmask, keyOf, sameDestination, sameService, serviceFlagNames, serviceKey, userFlags } from '../../../src/ipvs/keys.ts';
import type { Destination, Service } from '../../../src/ipvs/types.ts';
import { destination } from '../../../src/ipvs/types.ts';

describe('IpvsError', () => {
  it('message: CODE: COMMAND object: reason', () => {
    const e = IpvsError.fromCode('EEXIST', 'NEW_SERVICE', '192.168.56.40:80/TCP');
    expect(e.message).toBe('EEXIST: NEW_SERVICE 192.168.56.40:80/TCP: service already exists');
    expect(e).toMatchObject({ name: 'IpvsError', code: 'EEXIST', errno: 17, command: 'NEW_SERVICE', target: '192.168.56.40:80/TCP' });
    expect(e).toBeInstanceOf(Error);
  });

  it.each([
    [17, 'NEW_DEST', 'EEXIST: NEW_DEST s -> d: destination already exists'],
    [3, 'SET_SERVICE', 'ESRCH: SET_SERVICE s -> d: service does not exist'],
    [3, 'NEW_DEST', 'ESRCH: NEW_DEST s -> d: service does not exist'],
    [2, 'DEL_DEST', 'ENOENT: DEL_DEST s -> d: destination does not exist'],
    [2, 'NEW_SERVICE', 'ENOENT: NEW_SERVICE s -> d: unknown scheduler or persistence engine'],
    [17, 'NEW_DAEMON', 'EEXIST: NEW_DAEMON s -> d: sync daemon already running'],
    [3, 'DEL_DAEMON', 'ESRCH: DEL_DAEMON s -> d: sync daemon not running'],
    [19, 'NEW_DAEMON', 'ENODEV: NEW_DAEMON s -> d: no such interface'],
    [34, 'SET_DEST', 'ERANGE: SET_DEST s -> d: weight or threshold out of range'],
    [1, 'GET_INFO', 'EPERM: GET_INFO s -> d: operation not permitted (needs CAP_NET_ADMIN in the initial user namespace)'],
  ])('errno %i on %s', (errno, cmd, msg) => {
    expect(new IpvsError(errno, cmd, 's -> d').message).toBe(msg);
  });

  it('negative errnos (as in NLMSG_ERROR) and unknown numbers', () => {
    expect(new IpvsError(-22, 'NEW_SERVICE').code).toBe('EINVAL');
    expect(new IpvsError(-22, 'NEW_SERVICE').errno).toBe(22);
    expect(errnoName(4095)).toBe('E4095');
  });

  it('maps netlink@0.3.0 errors: "Request rejected: ENOENT", numeric codes, ErrnoException', () => {
    expect(errnoFromNetlinkError(new Error('Request rejected: ENOENT'))).toBe(2);
    expect(errnoFromNetlinkError(new Error('Request rejected: -95'))).toBe(95);
    expect(errnoFromNetlinkError(Object.assign(new Error('recvmsg'), { errno: -105, code: 'ENOBUFS' }))).toBe(105);
    expect(errnoFromNetlinkError(new Error('something else'))).toBeUndefined();
    expect(errnoFromNetlinkError('nope')).toBeUndefined();
    const e = toIpvsError(new Error('Request rejected: ESRCH'), 'DEL_SERVICE', '10.0.0.1:80/TCP');
    expect(e.message).toBe('ESRCH: DEL_SERVICE 10.0.0.1:80/TCP: service does not exist');
    expect(toIpvsError(new Error('boom'), 'GET_INFO').code).toBe('EIO');
    expect(toIpvsError(e, 'X')).toBe(e);
    expect(isIpvsError(e, 'ESRCH')).toBe(true);
    expect(isIpvsError(e, 'EEXIST')).toBe(false);
  });
});

describe('addresses', () => {
  it('parses IPv4 strictly', () => {
    expect([...(parseIPv4('192.168.56.40') ?? [])]).toEqual([192, 168, 56, 40]);
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1..2.3', '01234.1.1.1', ' 1.2.3.4', '1.2.3.4 ', 'a.b.c.d', '1.2.3.']) {
      expect(parseIPv4(bad)).toBeUndefined();
    }
  });

  it('parses IPv6 (compression, embedded v4) and rejects junk', () => {
    expect(parseIPv6('::')?.every((b) => b === 0)).toBe(true);
    expect(Buffer.from(parseIPv6('2001:db8::1') ?? []).toString('hex')).toBe('20010db8000000000000000000000001');
    expect(Buffer.from(parseIPv6('::ffff:1.2.3.4') ?? []).toString('hex')).toBe('00000000000000000000ffff01020304');
    for (const bad of ['', ':::', '1::2::3', '12345::', 'g::1', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '::1.2.3']) {
      expect(parseIPv6(bad)).toBeUndefined();
    }
  });

  it('formats IPv6 like glibc inet_ntop (what ipvsadm prints)', () => {
    const f = (s: string): string => formatIPv6(parseIPv6(s) as Uint8Array);
    expect(f('2001:0db8:0000:0000:0000:0000:0000:0001')).toBe('2001:db8::1');
    expect(f('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1'); // first of equal runs (seen in ipvsadm -Sn)
    expect(f('2001:db8:0:1:0:0:0:1')).toBe('2001:db8:0:1::1'); // longest run wins
    expect(f('2001:db8:0:1:1:1:1:1')).toBe('2001:db8:0:1:1:1:1:1'); // single zero group not compressed
    expect(f('::ffff:1.2.3.4')).toBe('::ffff:1.2.3.4');
    expect(f('::1')).toBe('::1');
    expect(f('::')).toBe('::');
    expect(f('fe80::1:0:0:1')).toBe('fe80::1:0:0:1');
    expect(f('1::')).toBe('1::');
  });

  it('normalises, detects the family, builds netmasks', () => {
    expect(normalizeAddress('ipv6', '2001:DB8:0::0:1')).toBe('2001:db8::1');
    expect(familyOf('10.0.0.1')).toBe('ipv4');
    expect(familyOf('::1')).toBe('ipv6');
    expect(familyOf('x')).toBeUndefined();
    expect(netmaskFromPrefix('ipv4', 24)).toBe(0xffffff00);
    expect(netmaskFromPrefix('ipv4', 32)).toBe(0xffffffff);
    expect(netmaskFromPrefix('ipv4', 0)).toBe(0);
    expect(netmaskFromPrefix('ipv6', 64)).toBe(64);
    expect(() => normalizeAddress('ipv4', '::1')).toThrow(TypeError);
  });
});

describe('keys and formatters (ipvsadm notation)', () => {
  const s: Service = { af: 'ipv4', protocol: 'tcp', address: '192.168.56.40', port: 80, scheduler: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff };
  const d: Destination = destination('10.0.0.1', 80);

  it('service keys', () => {
    expect(serviceKey(s)).toBe('192.168.56.40:80/TCP');
    expect(serviceKey({ ...s, protocol: 'udp' })).toBe('192.168.56.40:80/UDP');
    expect(serviceKey({ ...s, protocol: 'sctp' })).toBe('192.168.56.40:80/SCTP');
    expect(serviceKey({ af: 'ipv6', protocol: 'tcp', address: '2001:db8:0::1', port: 80 })).toBe('[2001:db8::1]:80/TCP');
    expect(serviceKey({ af: 'ipv4', fwmark: 1 })).toBe('fwmark 1/IPv4');
    expect(serviceKey({ af: 'ipv6', fwmark: 2 })).toBe('fwmark 2/IPv6');
  });

  it('destination keys', () => {
    expect(destKey(d)).toBe('10.0.0.1:80');
    expect(destKey({ address: '2001:db8::0:10', port: 8080, af: 'ipv6' })).toBe('[2001:db8::10]:8080');
  });

  it('keyOf strips configuration', () => {
    expect(keyOf(s)).toEqual({ af: 'ipv4', protocol: 'tcp', address: '192.168.56.40', port: 80 });
    expect(keyOf({ af: 'ipv4', fwmark: 3, scheduler: 'rr', flags: 0, timeout: 0, netmask: 0 } as Service)).toEqual({ af: 'ipv4', fwmark: 3 });
  });

  it('sameService ignores HASHED and address spelling, sameDestination covers tunnel fields', () => {
    expect(sameService(s, { ...s, flags: 0x2 })).toBe(true);
    expect(sameService({ ...s, af: 'ipv6', address: '::1', netmask: 128 }, { ...s, af: 'ipv6', address: '0::1', netmask: 128 })).toBe(true);
    expect(sameService(s, { ...s, scheduler: 'wrr' })).toBe(false);
    expect(sameService(s, { ...s, pe: 'sip' })).toBe(false);
    expect(sameDestination(d, { ...d })).toBe(true);
    expect(sameDestination(d, { ...d, tunnelPort: 1 })).toBe(false);
    expect(userFlags(0x3)).toBe(0x1);
  });

  it('flag names depend on the scheduler; netmask shown only when not the default', () => {
    expect(serviceFlagNames('sh', 0x1f)).toEqual(['persistent', 'ops', 'sh-fallback', 'sh-port']);
    expect(serviceFlagNames('mh', 0x18)).toEqual(['mh-fallback', 'mh-port']);
    expect(serviceFlagNames('rr', 0x38)).toEqual(['flag-1', 'flag-2', 'flag-3']);
    expect(formatNetmask(s)).toBeUndefined();
    expect(formatNetmask({ ...s, netmask: 0xffffff00 })).toBe('255.255.255.0');
    expect(formatNetmask({ ...s, af: 'ipv6', address: '::1', netmask: 64 })).toBe('64');
  });
});

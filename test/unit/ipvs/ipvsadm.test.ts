// Expected texts below are verbatim output of ipvsadm 1.31 on the lab VM's 6.1 kernel.
import { describe, expect, it } from '@jest/globals';
import { SvcFlag } from '../../../src/ipvs/constants.ts';
import {
  expectedIpvsadmList,
  formatIpvsadmRules,
  parseIpvsadmDaemons,
  parseIpvsadmList,
  parseIpvsadmTimeouts,
} from '../../../src/ipvs/ipvsadm.ts';
import type { Destination, Service, ServiceState } from '../../../src/ipvs/types.ts';
import { destination, ZERO_COUNTERS, ZERO_STATS } from '../../../src/ipvs/types.ts';

const H = SvcFlag.HASHED;
const base = { flags: H, timeout: 0, netmask: 0xffffffff } as const;
const dest = destination;
const state = (service: Service, dests: Destination[] = []): ServiceState => ({
  service,
  stats: ZERO_STATS,
  destinations: dests.map((destination) => ({ destination, counters: ZERO_COUNTERS, stats: ZERO_STATS })),
});

const table: ServiceState[] = [
  state({ af: 'ipv4', protocol: 'tcp', address: '192.168.56.40', port: 80, scheduler: 'rr', ...base }, [
    dest('10.0.0.1', 80),
    dest('10.0.0.2', 8080, { forwarding: 'masq', weight: 5, upperThreshold: 100, lowerThreshold: 50 }),
    dest('10.0.0.3', 80, { forwarding: 'tunnel', weight: 2, tunnelType: 'gue', tunnelPort: 6080, tunnelFlags: 1 }),
    dest('10.0.0.5', 80, { forwarding: 'tunnel', weight: 0 }),
  ]),
  state({ af: 'ipv4', protocol: 'tcp', address: '192.168.56.41', port: 80, scheduler: 'sh', flags: H | 1 | 8 | 16, timeout: 300, netmask: 0xffffff00 }),
  state({ af: 'ipv4', protocol: 'tcp', address: '192.168.56.42', port: 0, scheduler: 'rr', flags: H | 1, timeout: 360, netmask: 0xffffffff }),
  state({ af: 'ipv4', protocol: 'udp', address: '192.168.56.40', port: 53, scheduler: 'wlc', ...base, flags: H | SvcFlag.ONEPACKET }),
  state({ af: 'ipv4', protocol: 'sctp', address: '192.168.56.40', port: 5000, scheduler: 'mh', ...base, flags: H | SvcFlag.MH_PORT }),
  state({ af: 'ipv6', protocol: 'tcp', address: '2001:db8::1', port: 80, scheduler: 'wrr', flags: H | 1, timeout: 100, netmask: 64 }, [
    dest('2001:db8::10', 80, { weight: 3 }),
  ]),
  state({ af: 'ipv4', fwmark: 1, scheduler: 'rr', ...base }, [dest('10.0.0.9', 0)]),
  state({ af: 'ipv6', fwmark: 2, scheduler: 'lc', flags: H | 1, timeout: 60, netmask: 128 }),
  state({ af: 'ipv4', protocol: 'udp', address: '192.168.56.40', port: 5060, scheduler: 'sh', flags: H | 1 | 4 | 16, timeout: 30, netmask: 0xffffffff, pe: 'sip' }),
  state({ af: 'ipv4', protocol: 'udp', address: '192.168.56.40', port: 5061, scheduler: 'sh', ...base, flags: H | 4 | 8 }),
  state({ af: 'ipv4', protocol: 'tcp', address: '192.168.56.40', port: 81, scheduler: 'none', ...base }, [
    dest('10.0.0.1', 81, { forwarding: 'tunnel', tunnelType: 'gre', tunnelFlags: 1 }),
    dest('10.0.0.2', 81, { forwarding: 'tunnel', tunnelType: 'gue', tunnelPort: 1 }),
    dest('10.0.0.3', 81, { forwarding: 'tunnel', tunnelType: 'gue', tunnelPort: 2, tunnelFlags: 2 }),
    dest('2001:db8::5', 81, { forwarding: 'tunnel' }),
    dest('127.0.0.1', 81),
  ]),
  state({ af: 'ipv6', fwmark: 3, scheduler: 'rr', ...base, netmask: 128 }, [dest('2001:db8::7', 0, { forwarding: 'masq' })]),
  state({ af: 'ipv6', protocol: 'tcp', address: '2001:db8::1:0:0:1', port: 80, scheduler: 'rr', ...base, netmask: 128 }),
];

const SAVED = `-A -t 192.168.56.40:80 -s rr
-a -t 192.168.56.40:80 -r 10.0.0.1:80 -g -w 1
-a -t 192.168.56.40:80 -r 10.0.0.2:8080 -m -w 5
-a -t 192.168.56.40:80 -r 10.0.0.3:80 -i -w 2 --tun-type gue --tun-port 6080 --tun-csum
-a -t 192.168.56.40:80 -r 10.0.0.5:80 -i -w 0 --tun-type ipip
-A -t 192.168.56.41:80 -s sh -p 300 -M 255.255.255.0 -b sh-fallback,sh-port
-A -t 192.168.56.42:0 -s rr -p 360
-A -u 192.168.56.40:53 -s wlc -o
-A --sctp-service 192.168.56.40:5000 -s mh -b mh-port
-A -t [2001:db8::1]:80 -s wrr -p 100 -M 64
-a -t [2001:db8::1]:80 -r [2001:db8::10]:80 -g -w 3
-A -f 1 -s rr
-a -f 1 -r 10.0.0.9:0 -g -w 1
-A -f 2 -6 -s lc -p 60
-A -t 192.168.56.40:81 -s none
-a -t 192.168.56.40:81 -r 10.0.0.1:81 -i -w 1 --tun-type gre --tun-csum
-a -t 192.168.56.40:81 -r 10.0.0.2:81 -i -w 1 --tun-type gue --tun-port 1 --tun-nocsum
-a -t 192.168.56.40:81 -r 10.0.0.3:81 -i -w 1 --tun-type gue --tun-port 2 --tun-remcsum
-a -t 192.168.56.40:81 -r [2001:db8::5]:81 -i -w 1 --tun-type ipip
-a -t 192.168.56.40:81 -r 127.0.0.1:81 -g -w 1
-A -u 192.168.56.40:5060 -s sh -p 30 --pe sip -o -b sh-port
-A -u 192.168.56.40:5061 -s sh -o -b sh-fallback
-A -t [2001:db8::1:0:0:1]:80 -s rr
-A -f 3 -6 -s rr
-a -f 3 -6 -r [2001:db8::7]:0 -m -w 1
`;

const sorted = (lines: string[]): string[] => [...lines].sort();

describe('ipvsadm -S -n rules', () => {
  it('matches ipvsadm 1.31 output line for line (as a set: ipvsadm sorts)', () => {
    expect(sorted(formatIpvsadmRules(table))).toEqual(sorted(SAVED.trim().split('\n')));
  });
});

const LISTING = `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.168.56.40:80 rr
  -> 10.0.0.1:80                  Route   1      0          0         
  -> 10.0.0.2:8080                Masq    5      0          0         
  -> 10.0.0.3:80                  Tunnel  2      0          0         
  -> 10.0.0.5:80                  Tunnel  0      0          0         
TCP  192.168.56.41:80 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0
TCP  192.168.56.42:0 rr persistent 360
UDP  192.168.56.40:53 wlc ops
SCTP 192.168.56.40:5000 mh (mh-port)
TCP  [2001:db8::1]:80 wrr persistent 100 mask 64
  -> [2001:db8::10]:80            Route   3      0          0         
FWM  1 rr
  -> 10.0.0.9:0                   Route   1      0          0         
FWM  2 IPv6 lc persistent 60
`;

const THRESHOLDS = `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  192.168.56.40:80 rr
  -> 10.0.0.1:80                  0          0          0          0         
  -> 10.0.0.2:8080                100        50         0          0         
  -> 10.0.0.3:80                  0          0          0          0         
  -> 10.0.0.5:80                  0          0          0          0         
`;

const TUNINFO = `Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn
TCP  192.168.56.40:81 none
  -> 10.0.0.1:81                  Tunnel  gre:+c        1      0          0         
  -> 10.0.0.2:81                  Tunnel  gue:1:-c      1      0          0         
  -> 10.0.0.3:81                  Tunnel  gue:2:r+c     1      0          0         
  -> [2001:db8::5]:81             Tunnel  ipip          1      0          0         
  -> 127.0.0.1:81                 Route   n/a           1      0          0         
UDP  192.168.56.40:5060 sh (sh-port) persistent 30 pe sip ops
UDP  192.168.56.40:5061 sh (sh-fallback) ops
`;

const STATS = `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  192.168.56.40:80                    7       42        0     2870        0
  -> 10.0.0.1:80                         3       18        0     1230        0
FWM  2 IPv6                              0        0        0        0        0
`;

describe('ipvsadm -L -n listings', () => {
  it('plain listing parses into rows equal to our rendering of the same table', () => {
    expect(parseIpvsadmList(LISTING)).toEqual(expectedIpvsadmList(table.slice(0, 8), 'plain'));
  });

  it('--thresholds', () => {
    expect(parseIpvsadmList(THRESHOLDS)).toEqual(expectedIpvsadmList(table.slice(0, 1), 'thresholds'));
  });

  it('--tun-info (tunnel type, GUE port, checksum flags; mixed-family dest)', () => {
    expect(parseIpvsadmList(TUNINFO)).toEqual(expectedIpvsadmList([table[10], table[8], table[9]] as ServiceState[], 'tun-info'));
  });

  it('--stats --exact (64-bit counters as decimal)', () => {
    const rows = parseIpvsadmList(STATS);
    expect(rows[0]).toEqual({ service: '192.168.56.40:80/TCP', fields: ['7', '42', '0', '2870', '0'], destinations: [{ destination: '10.0.0.1:80', fields: ['3', '18', '0', '1230', '0'] }] });
    expect(rows[1]?.service).toBe('fwmark 2/IPv6');
    const st = { ...ZERO_STATS, conns: 2n ** 40n, inbytes: 5n };
    expect(expectedIpvsadmList([{ ...table[6], stats: st } as ServiceState], 'stats')[0]?.fields).toEqual([String(2n ** 40n), '0', '0', '5', '0']);
  });

  it('rejects unknown lines instead of silently skipping them', () => {
    expect(() => parseIpvsadmList('garbage line')).toThrow('unrecognised');
  });
});

describe('ipvsadm -L --timeout / --daemon', () => {
  it('timeouts', () => {
    expect(parseIpvsadmTimeouts('Timeout (tcp tcpfin udp): 900 120 300\n')).toEqual({ tcp: 900, tcpFin: 120, udp: 300 });
    expect(() => parseIpvsadmTimeouts('')).toThrow();
  });

  it('daemons', () => {
    const text =
      'master sync daemon (mcast=lo, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n' +
      'backup sync daemon (mcast=lo, syncid=7, maxlen=65507, group=224.0.0.81, port=8848, ttl=1)\n';
    expect(parseIpvsadmDaemons(text)).toEqual([
      { role: 'master', interface: 'lo', syncId: 5, maxLen: 1472, group: '224.0.0.81', port: 8848, ttl: 1 },
      { role: 'backup', interface: 'lo', syncId: 7, maxLen: 65507, group: '224.0.0.81', port: 8848, ttl: 1 },
    ]);
    expect(parseIpvsadmDaemons('')).toEqual([]);
  });
});

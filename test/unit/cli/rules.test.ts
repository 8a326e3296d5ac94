// The ipvsadm rules parser (src/ipvs/ipvsadm.ts parseIpvsadmRules/applyIpvsadmRules) against what ipvsadm
// 1.31 itself did with the same input in the lab VM: the *.saved and *.listing fixtures are its output.
import { describe, expect, it } from '@jest/globals';
import { applyIpvsadmRules, parseIpvsadmList, parseIpvsadmRules } from '../../../src/ipvs/ipvsadm.ts';
import { destKey, serviceKey } from '../../../src/ipvs/keys.ts';
import { SvcFlag } from '../../../src/ipvs/constants.ts';
import { canonicalRules } from '../../../src/cli/export.ts';
import { parseServices, portResolver } from '../../../src/cli/services.ts';
import { fixture, RULE_FIXTURES } from './fixtures.ts';

const table = (text: string) => {
  const parsed = parseIpvsadmRules(text);
  const applied = applyIpvsadmRules(parsed.rules);
  return { ...applied, problems: [...parsed.problems, ...applied.problems] };
};
const problemsOf = (text: string) => table(text).problems.map((p) => `${p.line}: ${p.message}`);

describe('parseIpvsadmRules', () => {
  it.each(RULE_FIXTURES)('parses every line of %s.rules', (name) => {
    const text = fixture(`${name}.rules`);
    const t = table(text);
    expect(t.problems).toEqual([]);
    const lines = text.split('\n').filter((l) => l.trim()).length;
    expect(t.services.length + t.services.reduce((n, s) => n + s.destinations.length, 0)).toBe(lines - (name === 'restore-script' ? 6 : 0));
  });

  it('programs what ipvsadm -R programmed for a hand-written restore file (long options, -E/-e, -D/-d, defaults)', () => {
    // restore-script.saved is `ipvsadm -Sn` after `ipvsadm -R < restore-script.rules` on the 6.1 kernel.
    expect(canonicalRules(fixture('restore-script.rules')).lines).toEqual(canonicalRules(fixture('restore-script.saved')).lines);
    const t = table(fixture('restore-script.rules'));
    const svc77 = t.services.find((s) => serviceKey(s.service) === '192.168.56.77:80/TCP')!;
    // -E replaces the whole configuration: the persistence of the -A line is gone, as in the kernel.
    expect(svc77.service).toMatchObject({ scheduler: 'rr', flags: 0, timeout: 0 });
    // DR cannot change the port: ipvsadm programs :80 for `-r 192.168.56.37:8080 -g`.
    expect(svc77.destinations.map((d) => `${destKey(d.destination)} w${d.destination.weight} line ${d.line}`)).toEqual(['192.168.56.37:80 w9 line 5', '192.168.56.38:80 w2 line 3']);
    const svc78 = t.services.find((s) => serviceKey(s.service) === '192.168.56.78:443/TCP')!;
    expect(svc78.service).toMatchObject({ scheduler: 'sh', flags: SvcFlag.PERSISTENT | SvcFlag.SH_FALLBACK, timeout: 360, netmask: 0xffffff00 });
    expect(t.services.map((s) => serviceKey(s.service))).not.toContain('192.168.56.79:80/TCP');
  });

  it('reads ports printed as names (ipvsadm -S without -n) like their numbers', () => {
    const resolve = portResolver('/nonexistent/services');
    expect(canonicalRules(fixture('names.rules'), { resolvePort: resolve }).lines).toEqual(canonicalRules(fixture('names.saved')).lines);
    const etc = parseServices('http\t\t80/tcp\t\twww\t\t# WorldWideWeb HTTP\nhttp-alt\t8080/tcp\twebcache\ndomain\t\t53/udp\n');
    expect(etc.get('www/tcp')).toBe(80);
    expect(etc.get('webcache/tcp')).toBe(8080);
    expect(etc.get('domain/udp')).toBe(53);
  });

  it('keeps the thresholds that ipvsadm -Ln --thresholds showed after restoring thresholds.rules', () => {
    const listing = parseIpvsadmList(fixture('thresholds.listing'));
    const t = table(fixture('thresholds.rules'));
    const ours = t.services.map((s) => ({ service: serviceKey(s.service), dests: s.destinations.map((d) => [destKey(d.destination), String(d.destination.upperThreshold), String(d.destination.lowerThreshold)]) }));
    const theirs = listing.map((r) => ({ service: r.service, dests: r.destinations.map((d) => [d.destination, d.fields[0], d.fields[1]]) }));
    expect(ours).toEqual(theirs);
  });

  it('applies ipvsadm defaults: wlc, -p 360, weight 1, the service port, direct routing', () => {
    const t = table('-A -t 10.1.0.1:80 -p\n-a -t 10.1.0.1:80 -r 10.2.0.1\n-A -u [2001:DB8:0::1]:53 -s rr\n-a -u [2001:db8::1]:53 -r [2001:db8::a]:5353 -m\n');
    expect(t.problems).toEqual([]);
    expect(t.services[0]!.service).toMatchObject({ scheduler: 'wlc', flags: SvcFlag.PERSISTENT, timeout: 360 });
    expect(t.services[0]!.destinations[0]!.destination).toMatchObject({ address: '10.2.0.1', port: 80, weight: 1, forwarding: 'droute' });
    expect(serviceKey(t.services[1]!.service)).toBe('[2001:db8::1]:53/UDP');
    expect(t.services[1]!.destinations[0]!.destination).toMatchObject({ port: 5353, forwarding: 'masq' });
  });

  it('reports every bad line with its number and keeps the good ones', () => {
    const text = [
      '-A -t 10.1.0.1:80 -s rr', // 1 ok
      '-a -t 10.1.0.1:80 -r 10.2.0.1:80 -g -w 70000', // 2 weight out of range
      '-A -t web.example.com:80', // 3 host name
      '-A -t 10.1.0.1:80 -s rr', // 4 duplicate
      '-a -t 10.9.9.9:80 -r 10.2.0.1', // 5 no such service
      '-a -t 10.1.0.1:80', // 6 no -r
      '-A -t 10.1.0.2:80 -o', // 7 ops on TCP
      '-A -t 10.1.0.3:80 -s rr -b sh-port', // 8 incompatible flag
      '-A -t 2001:db8::1:80', // 9 v6 without brackets
      '-A -t 10.1.0.4:http-ish', // 10 unknown service name
      '-X -t 10.1.0.5:80', // 11 unknown option
      '-a -u 10.1.0.1:80 -r 10.2.0.2', // 12 service of another protocol
      '-a -t 10.1.0.1:80 -r [2001:db8::2]:80 -g', // 13 family mixing without tunnel
      '-e -t 10.1.0.1:80 -r 10.2.0.9 -w 2', // 14 edit of a missing realserver
      '-A -t 10.1.0.6:80 -p 0', // 15 timeout 0
      '  # a comment', // 16 skipped
      'ipvsadm -a -t 10.1.0.1:80 -r 10.2.0.3:80 -m -w 2', // 17 ok (with the command name)
    ].join('\n');
    expect(problemsOf(text)).toEqual([
      '2: weight 70000 is out of range 0..65535',
      '3: "web.example.com" is not an IP address (host names cannot be imported: save the rules with ipvsadm -Sn)',
      '6: no real server given (-r)',
      '7: One-Packet Scheduling (-o) is only for UDP virtual services',
      '8: incompatible scheduler flag "sh-port" for scheduler rr',
      '9: IPv6 address "2001:db8::1:80" needs brackets: [address]:port',
      '10: unknown tcp service name "http-ish" (save the rules with ipvsadm -Sn)',
      '11: unknown option -X',
      '13: a realserver of another address family is allowed only with tunnelling (-i)',
      '15: timeout 0 is out of range 1..2147483647',
      '4: service 10.1.0.1:80/TCP already exists (line 1)',
      '5: no such service 10.9.9.9:80/TCP',
      '12: no such service 10.1.0.1:80/UDP',
      '14: no such realserver 10.2.0.9:80 in 10.1.0.1:80/TCP',
    ]);
    const t = table(text);
    expect(t.services.map((s) => `${serviceKey(s.service)} ${s.destinations.map((d) => destKey(d.destination)).join(',')}`)).toEqual(['10.1.0.1:80/TCP 10.2.0.3:80']);
  });
});

/**
 * Which sysctls a node needs for its role and the forwarding method (reference ipvs-netlink.md §10).
 *
 * Kernel rules that shape the lists:
 * - arp_ignore, arp_announce and rp_filter take max(conf/all, conf/<iface>): `all` must be set, an
 *   interface value alone can be overruled.
 * - send_redirects is on if conf/all OR conf/<iface> is 1: both must be 0.
 * - conf/default only seeds interfaces created later (a VLAN, tunl0); it changes nothing existing.
 */
import type { ForwardingMethod } from '../api/v1alpha1/virtualservice.ts';
import { confKey } from './keys.ts';
import type { SysctlSetting } from './types.ts';

export type HostRole = 'director' | 'realserver';

export interface SysctlPolicyOptions {
  /**
   * The service has an IPv6 VIP: a NAT director then also forwards IPv6. Caveat: conf/all/forwarding=1 makes
   * the host a router, which stops accepting router advertisements on interfaces with accept_ra=1.
   */
  ipv6?: boolean;
  /**
   * Keep netfilter conntrack entries for IPVS connections (vs/conntrack=1). Needed only when iptables/nft
   * SNAT/MASQUERADE or stateful rules must see IPVS traffic; off otherwise because it costs throughput.
   * The sysctl exists only with CONFIG_IP_VS_NFCT.
   */
  conntrack?: boolean;
}

/**
 * The sysctls for `role` in forwarding `mode`, `nic` being the interface that faces the realservers
 * (director) or the director and clients (realserver). Apply them before binding the VIP: a DR realserver
 * holding the VIP with arp_ignore=0 answers ARP for it and steals the director's traffic.
 */
export function sysctlsFor(role: HostRole, mode: ForwardingMethod, nic: string, opts: SysctlPolicyOptions = {}): SysctlSetting[] {
  const out: SysctlSetting[] = [];
  const add = (key: string, value: string, reason: string): void => {
    if (!out.some((s) => s.key === key)) out.push({ key, value, reason });
  };
  const conf = (ifaces: readonly string[], name: string, value: string, reason: string): void => {
    for (const iface of ifaces) add(confKey('ipv4', iface, name), value, reason);
  };

  if (role === 'director') {
    // Without it, packets of connections whose realserver was deleted keep going to the dead destination
    // until the connection times out; UDP/SCTP removal relies on it (kube-proxy sets it too).
    add('net/ipv4/vs/expire_nodest_conn', '1', 'drop connections of deleted realservers at once');
    // Persistence templates pointing at a weight-0 (draining) realserver otherwise keep sending clients
    // there (kubernetes #99162).
    add('net/ipv4/vs/expire_quiescent_template', '1', 'let persistent clients leave draining realservers');
    if (opts.conntrack) add('net/ipv4/vs/conntrack', '1', 'netfilter must see IPVS connections (SNAT/MASQUERADE)');

    if (mode === 'NAT') {
      // Replies realserver→client traverse FORWARD, where IPVS un-NATs them.
      add('net/ipv4/ip_forward', '1', 'NAT replies are forwarded through the director');
      if (opts.ipv6) add(confKey('ipv6', 'all', 'forwarding'), '1', 'NAT replies are forwarded through the director (IPv6)');
      // With clients and realservers on the director's subnet, ICMP redirects would tell realservers to
      // bypass the director and break the return path.
      conf(['all', 'default', nic], 'send_redirects', '0', 'no ICMP redirects that route replies around the director');
    } else if (mode === 'DirectRouting') {
      // IPVS itself emits DR frames from LOCAL_IN (no redirects), but the director shares the L2 segment with
      // the realservers and is often their router too; a redirect for traffic it forwards would teach them to
      // bypass it. The DR lab sets this; ip_forward is not needed for DR and is left alone.
      conf(['all', 'default', nic], 'send_redirects', '0', 'no ICMP redirects on the segment shared with realservers');
    }
    // Tunnel: IPVS builds the outer header itself; the director needs nothing beyond the above.
    return out;
  }

  if (mode === 'DirectRouting') {
    // The VIP sits on lo: answer ARP only for addresses of the receiving interface (arp_ignore=1) and never use
    // the VIP as ARP source (arp_announce=2), so only the director answers for the VIP. `all` is what counts
    // (max rule); default covers interfaces created later, lo and the NIC are the LVS-HOWTO's belt and braces.
    conf(['all', 'default', 'lo', nic], 'arp_ignore', '1', 'do not answer ARP for the VIP held on lo');
    conf(['all', 'default', 'lo', nic], 'arp_announce', '2', 'never announce the VIP as ARP source');
  } else if (mode === 'Tunnel') {
    // Decapsulated packets arrive on tunl0 from the client's address, whose route points out the NIC: strict
    // reverse-path filtering drops them. The effective value is max(all, tunl0): both must be 0.
    conf(['all', 'tunl0'], 'rp_filter', '0', 'accept decapsulated packets whose source routes out another interface');
    // Needed when the realserver shares an L2 segment with the VIP: Linux answers ARP on any interface for
    // any local address, tunl0's VIP included.
    conf(['all', nic], 'arp_ignore', '1', 'do not answer ARP for the VIP held on tunl0');
    conf(['all', nic], 'arp_announce', '2', 'never announce the VIP as ARP source');
  }
  // NAT realservers need no sysctl: their route to clients via the director is routing, not a sysctl.
  return out;
}

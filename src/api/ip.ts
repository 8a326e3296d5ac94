/** IP address helpers shared by validation, the controller and the agent. */
import net from 'node:net';

export type AddressFamily = 4 | 6;

/** Like Kubernetes' CEL isIP(): a canonical-enough IPv4/IPv6 literal, no zone, no leading zeros. */
export function isIP(s: string): boolean {
  if (s.includes('%')) return false;
  const family = net.isIP(s);
  if (family === 4) return s.split('.').every((o) => o === '0' || !o.startsWith('0'));
  return family === 6;
}

export function familyOf(s: string): AddressFamily {
  const f = net.isIP(s);
  if (f !== 4 && f !== 6) throw new Error(`not an IP address: "${s}"`);
  return f;
}

/** Go's netip.Addr.IsGlobalUnicast(): not unspecified, loopback, multicast, link-local or broadcast. */
export function isGlobalUnicast(s: string): boolean {
  const f = net.isIP(s);
  if (f === 4) {
    const [a = 0, b = 0] = s.split('.').map(Number);
    if (s === '0.0.0.0' || s === '255.255.255.255') return false;
    if (a === 127 || a >= 224) return false;
    if (a === 169 && b === 254) return false;
    return true;
  }
  if (f === 6) {
    const bytes = ipv6Bytes(s);
    if (bytes.every((x) => x === 0)) return false; // ::
    if (bytes.slice(0, 15).every((x) => x === 0) && bytes[15] === 1) return false; // ::1
    if (bytes[0] === 0xff) return false; // multicast
    if (bytes[0] === 0xfe && ((bytes[1] ?? 0) & 0xc0) === 0x80) return false; // fe80::/10
    return true;
  }
  return false;
}

/** The 16 bytes of an IPv6 address (IPv4-suffixed forms included). */
export function ipv6Bytes(s: string): number[] {
  const sock = new net.SocketAddress({ address: s, family: 'ipv6' });
  // SocketAddress normalises; expand "::" manually from its canonical text.
  const text = sock.address;
  const [head = '', tail] = text.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').flatMap((g) => {
    if (g.includes('.')) return g.split('.').map(Number);
    const v = parseInt(g, 16);
    return [v >> 8, v & 0xff];
  }));
  const h = parse(head);
  const t = tail === undefined ? [] : parse(tail);
  return [...h, ...new Array<number>(16 - h.length - t.length).fill(0), ...t];
}

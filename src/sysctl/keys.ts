/**
 * Sysctl keys are paths below /proc/sys with '/' separators (`net/ipv4/conf/eth0.100/arp_ignore`), never
 * dotted names: interface names may contain dots (VLANs), which the dotted form can only express by the
 * sysctl(8) convention of writing them as '/'.
 */
import { SysctlError } from './errors.ts';

export type SysctlKey = string;

/** Validates a key: relative, no empty, `.` or `..` segments, no whitespace or NUL. */
export function sysctlKey(key: string): SysctlKey {
  const segments = key.split('/');
  const bad = segments.some((s) => s === '' || s === '.' || s === '..' || /[\s\0]/.test(s));
  if (bad) throw new SysctlError('EINVAL', 'parse', key, 'not a sysctl path like net/ipv4/conf/eth0/arp_ignore');
  return key;
}

/** `net/ipv4/conf/<iface>/<name>` (or ipv6). */
export function confKey(family: 'ipv4' | 'ipv6', iface: string, name: string): SysctlKey {
  if (iface.includes('/')) throw new SysctlError('EINVAL', 'parse', iface, 'interface names cannot contain "/"');
  return sysctlKey(`net/${family}/conf/${iface}/${name}`);
}

/** From sysctl(8)'s dotted name: '.' separates, '/' stands for a literal '.' (`net.ipv4.conf.eth0/100.rp_filter`). */
export function fromSysctlName(name: string): SysctlKey {
  return sysctlKey(name.replace(/[./]/g, (c) => (c === '.' ? '/' : '.')));
}

/** To sysctl(8)'s dotted name, the inverse of fromSysctlName. */
export function toSysctlName(key: SysctlKey): string {
  return key.replace(/[./]/g, (c) => (c === '/' ? '.' : '/'));
}

/** Values as compared and recorded: proc prints multi-value sysctls tab-separated (`3\t50`). */
export function normalizeValue(value: string | number): string {
  return String(value).trim().split(/\s+/).join(' ');
}

/**
 * CEL rules too long to write inline in a doc comment, built here from readable parts. A doc comment names
 * one with `@celRule <name>` (or `@itemCelRule <name>` for the items of a list) and the CRD generator
 * inlines it.
 *
 * Kubernetes CEL cannot order IP addresses, so the pool rules turn an address into a list of ints (IPv4
 * octets, IPv6 16-bit groups) with the string library and compare those lists lexicographically. Two
 * constraints of the API server's cost estimator shape the expressions: `[x].map(v, …)[0]` binds a value
 * to a name (CEL in CRDs has no cel.bind), but the estimator forgets the size of what it binds, so only
 * int lists are bound (their comparisons cost the same whatever their size), while strings are always
 * cut from `self` directly (their sizes stay bounded by maxLength). Needs Kubernetes 1.30 (cidr(), ip()).
 */
import type { CelRule } from '../../crdgen/schema.ts';

const HEX_DIGITS = "'0123456789abcdef'";
const IDX8 = '[0, 1, 2, 3, 4, 5, 6, 7]';
const IDX16 = '[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]';
const POW2 = `[${Array.from({ length: 17 }, (_, i) => 2 ** i).join(', ')}]`;

/** Value of a hex group of 0 to 4 lowercase digits (expression `g`). */
function hexValue(g: string): string {
  const padded = `('0000' + ${g}).substring(size(${g}))`;
  const digit = (i: number): string => `${HEX_DIGITS}.indexOf(${padded}.substring(${i}, ${i + 1}))`;
  return `(${digit(0)} * 4096 + ${digit(1)} * 256 + ${digit(2)} * 16 + ${digit(3)})`;
}

/** The eight 16-bit groups of an IPv6 literal without a dotted part, `::` expanded. */
function groups6(x: string): string {
  const low = `${x}.lowerAscii()`;
  const head = `${low}.split('::')[0]`;
  const tail = `${low}.split('::')[1]`;
  const count = (part: string): string => `(${part} == '' ? 0 : size(${part}.split(':')))`;
  // n = [groups before ::, groups after ::]; the groups between are zero.
  const compressed = `[[${count(head)}, ${count(tail)}]].map(n, ${IDX8}.map(k, k < n[0] ? ${hexValue(`${head}.split(':')[k]`)} : (k >= 8 - n[1] ? ${hexValue(`${tail}.split(':')[k - 8 + n[1]]`)} : 0)))[0]`;
  const full = `${IDX8}.map(k, ${hexValue(`${low}.split(':')[k]`)})`;
  return `(${low}.contains('::') ? ${compressed} : ${full})`;
}

/** An IP literal as ints: four octets (IPv4) or eight groups (IPv6). */
const addressInts = (x: string): string => `(${x}.contains(':') ? ${groups6(x)} : [0, 1, 2, 3].map(k, int(${x}.split('.')[k])))`;

/** Whether int list `p` ≤ int list `q` (same length), lexicographically. */
const lessOrEqual = (p: string, q: string): string =>
  `!${IDX8}.exists(i, i < size(${p}) && ${IDX8}.all(j, j >= i || ${p}[j] == ${q}[j]) && ${q}[i] < ${p}[i])`;

const rangeEnds = (x: string): string => `size(${x}.split('-')) == 2 && isIP(${x}.split('-')[0]) && isIP(${x}.split('-')[1])`;
const first = (x: string): string => `${x}.split('-')[0]`;
const last = (x: string): string => `${x}.split('-')[1]`;
const sameFamily = (x: string): string => `ip(${first(x)}).family() == ip(${last(x)}).family()`;
/** No part (an address of a range, or a CIDR) mixes ':' and '.' (IPv6 with a dotted IPv4 tail). */
const noDottedV6 = (x: string): string => `${x}.split('-').all(p, !p.contains(':') || !p.contains('.'))`;

/** An entry every other expression here can evaluate without an error (not necessarily ordered or unicast). */
const parsable = (x: string): string => `(${noDottedV6(x)} && (isCIDR(${x}) || (${rangeEnds(x)} && ${sameFamily(x)})))`;

/** First and last address of a parsable entry, as int lists: [[first…], [last…]]. */
function entryBounds(x: string): string {
  const net = `${x}.split('/')[0]`;
  const prefix = `int(${x}.split('/')[1])`;
  // Host bits in group k of width w: clamp((k + 1)·w − prefix, 0, w); the group's last value adds 2^bits − 1.
  const w = '(size(s) == 4 ? 8 : 16)';
  const bits = `((k + 1) * ${w} - ${prefix} <= 0 ? 0 : ((k + 1) * ${w} - ${prefix} >= ${w} ? ${w} : (k + 1) * ${w} - ${prefix}))`;
  const cidrLast = `[${addressInts(net)}].map(s, ${IDX8}.filter(k, k < size(s)).map(k, s[k] + ${POW2}[${bits}] - 1))[0]`;
  return `(${x}.contains('/') ? [${addressInts(net)}, ${cidrLast}] : [${addressInts(first(x))}, ${addressInts(last(x))}])`;
}

export const celRules: Record<string, CelRule> = {
  poolAddressForm: {
    rule: `isCIDR(self) || (${rangeEnds('self')})`,
    message: 'each address must be a CIDR (192.168.56.40/29, 2001:db8::/120) or a range of two addresses (192.168.56.40-192.168.56.47)',
  },
  poolAddressHex: {
    rule: noDottedV6('self'),
    message: 'IPv6 addresses must be written in hexadecimal groups, without a dotted IPv4 part',
  },
  poolAddressMasked: {
    rule: '!isCIDR(self) || cidr(self).ip() == cidr(self).masked().ip()',
    message: 'a CIDR must not have host bits set: write its network address (e.g. 192.168.56.40/29)',
  },
  poolAddressUnicast: {
    rule: `isCIDR(self) ? cidr(self).ip().isGlobalUnicast() : (!(${rangeEnds('self')}) || (ip(${first('self')}).isGlobalUnicast() && ip(${last('self')}).isGlobalUnicast()))`,
    message: 'pool addresses must be unicast (not loopback, link-local, multicast or unspecified)',
  },
  poolRangeFamily: {
    rule: `isCIDR(self) || !(${rangeEnds('self')}) || ${sameFamily('self')}`,
    message: 'both ends of a range must be of the same address family',
  },
  poolRangeOrder: {
    rule: `isCIDR(self) || !${parsable('self')} || [[${addressInts(first('self'))}, ${addressInts(last('self'))}]].all(w, ${lessOrEqual('w[0]', 'w[1]')})`,
    message: 'a range must not end before it starts',
  },
  poolAddressesDisjoint: {
    // Bounds of every entry once (v[i] = [first, last]); entries of one family overlap when each starts
    // no later than the other ends.
    rule: `!self.all(x, ${parsable('x')}) || [self.map(x, ${entryBounds('x')})].all(v, ${IDX16}.all(a, a >= size(v) || ${IDX16}.all(b, b >= size(v) || a == b || size(v[a][0]) != size(v[b][0]) || !(${lessOrEqual('v[a][0]', 'v[b][1]')} && ${lessOrEqual('v[b][0]', 'v[a][1]')}))))`,
    message: 'the addresses of one pool must not overlap',
  },
};

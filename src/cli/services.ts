/**
 * Service names to ports, as getservbyname(3) resolves them for `ipvsadm -S` (without -n), which prints
 * ports as names: /etc/services when the machine has it, else the built-in table of well-known names.
 */
import fs from 'node:fs';
import { WELL_KNOWN_PORTS } from '../ipvs/ipvsadm.ts';
import type { Protocol } from '../ipvs/types.ts';

/** Parses /etc/services text: `name port/proto [aliases...] [# comment]`. */
export function parseServices(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const m = /^(\S+)\s+(\d+)\/(tcp|udp|sctp)\b\s*(.*)$/.exec(line);
    if (!m) continue;
    for (const name of [m[1] as string, ...(m[4] as string).split(/\s+/).filter(Boolean)]) {
      const key = `${name}/${m[3]}`;
      if (!out.has(key)) out.set(key, Number(m[2]));
    }
  }
  return out;
}

/** A resolver over `file` (default /etc/services) with the built-in names as fallback. */
export function portResolver(file = '/etc/services'): (name: string, protocol: Protocol) => number | undefined {
  let table: Map<string, number> | undefined;
  return (name, protocol) => {
    if (!table) {
      try {
        table = parseServices(fs.readFileSync(file, 'utf8'));
      } catch {
        table = new Map();
      }
    }
    // SCTP entries are rare in /etc/services: fall back to the name's TCP port.
    return table.get(`${name}/${protocol}`) ?? table.get(`${name}/tcp`) ?? WELL_KNOWN_PORTS[name];
  };
}

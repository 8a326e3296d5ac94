/** SysctlOps for the agent's unit tests: the real manager over an in-memory kernel and ledger. */
import { confKey, type SysctlKey } from './keys.ts';
import { MemoryLedgerStore } from './ledger.ts';
import { SysctlManager } from './manager.ts';
import { MemorySysctlStore } from './store.ts';

/** Kernel defaults of the sysctls the agent touches, for `all`, `default`, `lo` and the given interfaces. */
export function defaultSysctls(ifaces: readonly string[] = []): Map<SysctlKey, string> {
  const m = new Map<SysctlKey, string>([
    ['net/ipv4/ip_forward', '0'],
    ['net/ipv4/vs/conntrack', '0'],
    ['net/ipv4/vs/expire_nodest_conn', '0'],
    ['net/ipv4/vs/expire_quiescent_template', '0'],
  ]);
  for (const iface of ['all', 'default', 'lo', ...ifaces]) {
    m.set(confKey('ipv4', iface, 'arp_ignore'), '0');
    m.set(confKey('ipv4', iface, 'arp_announce'), '0');
    m.set(confKey('ipv4', iface, 'rp_filter'), '0');
    m.set(confKey('ipv4', iface, 'send_redirects'), '1');
    m.set(confKey('ipv6', iface, 'forwarding'), '0');
  }
  return m;
}

export class FakeSysctl extends SysctlManager {
  /** The fake kernel: key → value; a missing key behaves like a missing /proc/sys file. */
  readonly kernel: MemorySysctlStore;
  readonly ledgerStore: MemoryLedgerStore;

  constructor(initial: Iterable<[SysctlKey, string | number]> = defaultSysctls(), shared?: { kernel: MemorySysctlStore; ledger: MemoryLedgerStore }) {
    const kernel = shared?.kernel ?? new MemorySysctlStore(initial);
    const ledgerStore = shared?.ledger ?? new MemoryLedgerStore();
    super({ store: kernel, ledger: ledgerStore });
    this.kernel = kernel;
    this.ledgerStore = ledgerStore;
  }

  /** A new manager over the same kernel and saved ledger, as after an agent restart. */
  restarted(): FakeSysctl {
    return new FakeSysctl([], { kernel: this.kernel, ledger: this.ledgerStore });
  }

  /** Test helper: the fake kernel's value (undefined when the sysctl does not exist). */
  value(key: SysctlKey): string | undefined {
    return this.kernel.values.get(key);
  }
}

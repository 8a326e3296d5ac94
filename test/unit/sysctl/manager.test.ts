import { describe, expect, it } from '@jest/globals';
import { SysctlError } from '../../../src/sysctl/errors.ts';
import { FakeSysctl, defaultSysctls } from '../../../src/sysctl/fake.ts';
import { SysctlManager } from '../../../src/sysctl/manager.ts';
import { MemoryLedgerStore } from '../../../src/sysctl/ledger.ts';
import { MemorySysctlStore } from '../../../src/sysctl/store.ts';
import { sysctlsFor } from '../../../src/sysctl/policy.ts';
import type { SysctlSetting } from '../../../src/sysctl/types.ts';

const IGN = 'net/ipv4/conf/all/arp_ignore';
const ANN = 'net/ipv4/conf/all/arp_announce';
const set = (key: string, value: string): SysctlSetting => ({ key, value, reason: 'test' });

describe('SysctlManager', () => {
  it('sets on first claim, restores the original when the last claimant releases', async () => {
    const s = new FakeSysctl();
    await s.claim('vs/a', [set(IGN, '1'), set(ANN, '2')]);
    await s.claim('vs/b', [set(IGN, '1')]);
    expect([s.value(IGN), s.value(ANN)]).toEqual(['1', '2']);
    expect(await s.owners()).toEqual(['vs/a', 'vs/b']);

    await s.release('vs/a');
    expect([s.value(IGN), s.value(ANN)]).toEqual(['1', '0']); // vs/b still needs arp_ignore
    await s.release('vs/b');
    expect(s.value(IGN)).toBe('0');
    expect((await s.snapshot()).entries).toEqual({});
    expect(s.kernel.writes).toEqual([`${IGN}=1`, `${ANN}=2`, `${ANN}=0`, `${IGN}=0`]);
  });

  it('does not write a value that already holds, and restores nothing for it', async () => {
    const s = new FakeSysctl([[IGN, '1']]);
    await s.claim('vs/a', [set(IGN, '1')]);
    await s.release('vs/a');
    expect(s.kernel.writes).toEqual([]);
    expect(s.value(IGN)).toBe('1');
  });

  it('a restarted manager restores the true originals from the ledger, not its own values', async () => {
    const s = new FakeSysctl([[IGN, '0'], [ANN, '1']]);
    await s.claim('vs/a', [set(IGN, '1'), set(ANN, '2')]);
    const after = s.restarted();
    expect(await after.owners()).toEqual(['vs/a']);
    await after.claim('vs/a', [set(IGN, '1'), set(ANN, '2')]); // the reconcile after restart
    await after.release('vs/a');
    expect([s.value(IGN), s.value(ANN)]).toEqual(['0', '1']);
  });

  it('re-applies a drifted value on the next claim', async () => {
    const s = new FakeSysctl();
    await s.claim('vs/a', [set(IGN, '1')]);
    s.kernel.values.set(IGN, '0');
    await s.claim('vs/a', [set(IGN, '1')]);
    expect(s.value(IGN)).toBe('1');
  });

  it('leaves a value someone else changed since', async () => {
    const s = new FakeSysctl();
    await s.claim('vs/a', [set(IGN, '1')]);
    s.kernel.values.set(IGN, '2'); // an administrator
    await s.release('vs/a');
    expect(s.value(IGN)).toBe('2');
    expect((await s.snapshot()).entries).toEqual({});
  });

  it('is declarative per owner: keys no longer listed are released', async () => {
    const s = new FakeSysctl();
    await s.claim('vs/a', [set(IGN, '1'), set(ANN, '2')]);
    await s.claim('vs/a', [set(IGN, '1')]);
    expect([s.value(IGN), s.value(ANN)]).toEqual(['1', '0']);
    expect(Object.keys((await s.snapshot()).entries)).toEqual([IGN]);
  });

  it('refuses a conflicting value held by another owner (EBUSY), allows an owner to change its own', async () => {
    const s = new FakeSysctl();
    await s.claim('vs/a', [set(IGN, '1')]);
    await expect(s.claim('vs/b', [set(IGN, '2')])).rejects.toThrow(`EBUSY: claim ${IGN} (vs/b needs 2 but vs/a hold it at 1)`);
    await s.claim('vs/a', [set(IGN, '2')]);
    expect(s.value(IGN)).toBe('2');
    await s.release('vs/a');
    expect(s.value(IGN)).toBe('0'); // the original, not the first value set
  });

  it('fails on a missing sysctl before changing anything', async () => {
    const s = new FakeSysctl(defaultSysctls().entries());
    s.kernel.values.delete('net/ipv4/vs/conntrack');
    const err = await s.claim('vs/a', [set(IGN, '1'), set('net/ipv4/vs/conntrack', '1')]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SysctlError);
    expect((err as SysctlError).errno).toBe('ENOENT');
    expect((err as Error).message).toMatch(/^ENOENT: read net\/ipv4\/vs\/conntrack \(no such sysctl: .*CONFIG_IP_VS_NFCT/);
    expect(s.kernel.writes).toEqual([]);
    expect(await s.owners()).toEqual([]);
  });

  it('rejects one owner asking for two values of one key', async () => {
    await expect(new FakeSysctl().claim('vs/a', [set(IGN, '1'), set(IGN, '2')])).rejects.toThrow(`EINVAL: claim ${IGN}`);
  });

  it('drops entries whose sysctl vanished (interface deleted)', async () => {
    const s = new FakeSysctl(defaultSysctls(['eth0.100']));
    const key = 'net/ipv4/conf/eth0.100/arp_ignore';
    await s.claim('vs/a', [set(key, '1')]);
    s.kernel.values.delete(key);
    await s.release('vs/a');
    expect((await s.snapshot()).entries).toEqual({});
  });

  it('keeps a failed restore in the ledger and retries it on the next call', async () => {
    const kernel = new MemorySysctlStore([[IGN, '0']]);
    let broken = false;
    const flaky = {
      read: (k: string) => kernel.read(k),
      write: async (k: string, v: string) => {
        if (broken) throw new SysctlError('EPERM', 'write', k, 'injected');
        await kernel.write(k, v);
      },
    };
    const s = new SysctlManager({ store: flaky, ledger: new MemoryLedgerStore() });
    await s.claim('vs/a', [set(IGN, '1')]);
    broken = true;
    await expect(s.release('vs/a')).rejects.toThrow(`EPERM: write ${IGN} (injected)`);
    expect((await s.snapshot()).entries[IGN]).toEqual({ original: '0', value: '1', owners: [] });
    broken = false;
    await s.release('nobody');
    expect(kernel.values.get(IGN)).toBe('0');
    expect((await s.snapshot()).entries).toEqual({});
  });

  it('saves the ledger before writing the kernel', async () => {
    const kernel = new MemorySysctlStore([[IGN, '0']]);
    const ledger = new MemoryLedgerStore();
    const store = {
      read: (k: string) => kernel.read(k),
      write: async (k: string, v: string) => {
        expect(ledger.saved?.entries[k]).toEqual({ original: '0', value: '1', owners: ['vs/a'] });
        await kernel.write(k, v);
      },
    };
    await new SysctlManager({ store, ledger }).claim('vs/a', [set(IGN, '1')]);
    expect(kernel.values.get(IGN)).toBe('1');
  });

  it('ignores a ledger from a previous boot', async () => {
    const kernel = new MemorySysctlStore([[IGN, '0'], ['kernel/random/boot_id', 'boot-1']]);
    const ledger = new MemoryLedgerStore();
    await new SysctlManager({ store: kernel, ledger }).claim('vs/a', [set(IGN, '1')]);
    expect(ledger.saved?.bootId).toBe('boot-1');
    // Reboot: the kernel is back to its boot value, and sysctl.conf now says 2.
    kernel.values.set('kernel/random/boot_id', 'boot-2');
    kernel.values.set(IGN, '2');
    const after = new SysctlManager({ store: kernel, ledger });
    expect(await after.owners()).toEqual([]);
    await after.claim('vs/a', [set(IGN, '1')]);
    await after.release('vs/a');
    expect(kernel.values.get(IGN)).toBe('2');
  });

  it('releaseAll restores everything', async () => {
    const s = new FakeSysctl(defaultSysctls(['eth0']));
    await s.claim('vs/a', sysctlsFor('realserver', 'DirectRouting', 'eth0'));
    await s.claim('vs/b', sysctlsFor('director', 'NAT', 'eth0'));
    await s.releaseAll();
    expect([...s.kernel.values]).toEqual([...defaultSysctls(['eth0'])]);
  });

  it('serializes concurrent claims', async () => {
    const s = new FakeSysctl();
    await Promise.all(['a', 'b', 'c', 'd'].map((o) => s.claim(`vs/${o}`, [set(IGN, '1')])));
    expect(await s.owners()).toEqual(['vs/a', 'vs/b', 'vs/c', 'vs/d']);
    expect(s.kernel.writes).toEqual([`${IGN}=1`]);
  });
});

// SysctlManager against the lab VM's real /proc/sys (root netns of the dedicated VM), with `cat /proc/sys/...`
// as the oracle. Every value touched is captured first and checked restored at the end.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SysctlError } from '../../src/sysctl/errors.ts';
import { confKey } from '../../src/sysctl/keys.ts';
import { FileLedgerStore, type Ledger } from '../../src/sysctl/ledger.ts';
import { SysctlManager } from '../../src/sysctl/manager.ts';
import { sysctlsFor } from '../../src/sysctl/policy.ts';
import { ProcSysctlStore } from '../../src/sysctl/store.ts';
import { assertInLabVm, exec, readSysctl, sysctl } from '../vm/netns.ts';

assertInLabVm();
// Under TCG emulation every spawned ip/arping costs up to seconds.
jest.setTimeout(120_000);

const NIC = 'lvss0.100'; // a dotted (VLAN-style) name: its conf directory is literally net/ipv4/conf/lvss0.100
const dir = mkdtempSync(path.join(tmpdir(), 'lvs-sysctl-k-'));
const ledgerFile = path.join(dir, 'var/lib/lvs-operator/sysctl-ledger.json');
const open = (): SysctlManager => new SysctlManager({ store: new ProcSysctlStore(), ledger: new FileLedgerStore(ledgerFile) });
const cat = (key: string): Promise<string> => readSysctl(null, key);

const DR_RS = sysctlsFor('realserver', 'DirectRouting', NIC);
const NAT_DIR = sysctlsFor('director', 'NAT', NIC);
const TOUCHED = [...new Set([...DR_RS, ...NAT_DIR].map((s) => s.key))];
const before = new Map<string, string>();

beforeAll(async () => {
  await exec(null, ['ip', 'link', 'del', NIC], { allowFailure: true });
  await exec(null, ['ip', 'link', 'add', NIC, 'type', 'dummy']);
  // Start from values that differ from what the roles need, so that every claim really writes.
  await sysctl(null, 'net/ipv4/conf/all/arp_announce', 1);
  await sysctl(null, confKey('ipv4', NIC, 'arp_ignore'), 2);
  for (const key of TOUCHED) before.set(key, await cat(key));
});
afterAll(async () => {
  await exec(null, ['ip', 'link', 'del', NIC], { allowFailure: true });
  await sysctl(null, 'net/ipv4/conf/all/arp_announce', 0);
  rmSync(dir, { recursive: true, force: true });
});

describe('SysctlManager on /proc/sys', () => {
  it('reads through dotted interface names', async () => {
    const m = open();
    expect(await m.read(confKey('ipv4', NIC, 'arp_ignore'))).toBe('2');
    expect(await m.read('net/ipv4/vs/expire_nodest_conn')).toBe(await cat('net/ipv4/vs/expire_nodest_conn'));
  });

  it('names a missing sysctl and changes nothing', async () => {
    const m = open();
    const err = await m
      .claim('vs/x', [...DR_RS, { key: confKey('ipv4', 'nosuch0', 'arp_ignore'), value: '1', reason: 'test' }])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SysctlError);
    expect((err as Error).message).toMatch(/^ENOENT: read net\/ipv4\/conf\/nosuch0\/arp_ignore \(no such sysctl: /);
    for (const key of TOUCHED) expect(await cat(key)).toBe(before.get(key));
  });

  it('reports a value the kernel rejects', async () => {
    const m = open();
    try {
      await expect(m.claim('vs/x', [{ key: 'net/ipv4/conf/all/arp_announce', value: 'two', reason: 'test' }])).rejects.toThrow(
        'EINVAL: write net/ipv4/conf/all/arp_announce (kernel rejected value "two")',
      );
    } finally {
      await m.release('vs/x');
    }
    expect(await cat('net/ipv4/conf/all/arp_announce')).toBe(before.get('net/ipv4/conf/all/arp_announce'));
  });

  it('sets for two claimants, survives a restart, restores originals after the last release', async () => {
    const first = open();
    await first.claim('vs/a', DR_RS);
    await first.claim('vs/b', [...DR_RS, ...NAT_DIR]);
    for (const s of [...DR_RS, ...NAT_DIR]) expect(await cat(s.key)).toBe(s.value);

    const saved = JSON.parse(readFileSync(ledgerFile, 'utf8')) as Ledger;
    expect(saved.bootId).toBe(readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
    expect(saved.entries[confKey('ipv4', NIC, 'arp_ignore')]).toEqual({ original: '2', value: '1', owners: ['vs/a', 'vs/b'] });
    expect(saved.entries['net/ipv4/ip_forward']).toEqual({ original: before.get('net/ipv4/ip_forward'), value: '1', owners: ['vs/b'] });

    // "Restart": a new manager knows only the ledger file. It must restore the originals, not the values set.
    const second = open();
    expect(await second.owners()).toEqual(['vs/a', 'vs/b']);
    await second.release('vs/b');
    for (const s of DR_RS) expect(await cat(s.key)).toBe(s.value); // vs/a still holds them
    for (const s of NAT_DIR) expect(await cat(s.key)).toBe(before.get(s.key));

    const third = open();
    await third.release('vs/a');
    for (const key of TOUCHED) expect(await cat(key)).toBe(before.get(key));
    expect((JSON.parse(readFileSync(ledgerFile, 'utf8')) as Ledger).entries).toEqual({});
  });

  it('leaves alone a value changed by someone else, forgets a sysctl whose interface vanished', async () => {
    const m = open();
    await m.claim('vs/a', DR_RS);
    await sysctl(null, 'net/ipv4/conf/all/arp_ignore', 2); // an administrator steps in
    await exec(null, ['ip', 'link', 'del', NIC]);
    await m.release('vs/a');
    expect(await cat('net/ipv4/conf/all/arp_ignore')).toBe('2');
    expect(await cat('net/ipv4/conf/all/arp_announce')).toBe(before.get('net/ipv4/conf/all/arp_announce'));
    expect((await m.snapshot()).entries).toEqual({});
    await sysctl(null, 'net/ipv4/conf/all/arp_ignore', before.get('net/ipv4/conf/all/arp_ignore') ?? '0');
    await exec(null, ['ip', 'link', 'add', NIC, 'type', 'dummy']);
  });
});

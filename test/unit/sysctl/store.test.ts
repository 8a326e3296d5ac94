import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FileLedgerStore, type Ledger } from '../../../src/sysctl/ledger.ts';
import { SysctlManager } from '../../../src/sysctl/manager.ts';
import { ProcSysctlStore } from '../../../src/sysctl/store.ts';

let dir: string;
let root: string;
const put = async (key: string, value: string) => {
  await mkdir(path.dirname(path.join(root, key)), { recursive: true });
  await writeFile(path.join(root, key), `${value}\n`);
};

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'lvs-sysctl-'));
  root = path.join(dir, 'proc-sys');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('ProcSysctlStore (over a directory laid out like /proc/sys)', () => {
  it('reads normalized, writes with a newline, keeps dotted interface names literal', async () => {
    await put('net/ipv4/conf/eth0.100/arp_ignore', '0');
    await put('net/ipv4/vs/sync_threshold', '3\t50');
    const s = new ProcSysctlStore(root);
    expect(await s.read('net/ipv4/vs/sync_threshold')).toBe('3 50');
    await s.write('net/ipv4/conf/eth0.100/arp_ignore', '1');
    expect(await readFile(path.join(root, 'net/ipv4/conf/eth0.100/arp_ignore'), 'utf8')).toBe('1\n');
  });

  it('truncates on write (a shorter value leaves no tail)', async () => {
    await put('net/ipv4/vs/sync_threshold', '100 500');
    await new ProcSysctlStore(root).write('net/ipv4/vs/sync_threshold', '3 50');
    expect(await readFile(path.join(root, 'net/ipv4/vs/sync_threshold'), 'utf8')).toBe('3 50\n');
  });

  it('fails ENOENT on a missing sysctl, and never creates one', async () => {
    const s = new ProcSysctlStore(root);
    await expect(s.read('net/ipv4/vs/conntrack')).rejects.toThrow(/^ENOENT: read net\/ipv4\/vs\/conntrack \(no such sysctl/);
    await mkdir(path.join(root, 'net/ipv4/vs'), { recursive: true });
    await expect(s.write('net/ipv4/vs/conntrack', '1')).rejects.toThrow(/^ENOENT: write net\/ipv4\/vs\/conntrack/);
  });
});

describe('FileLedgerStore', () => {
  const ledger: Ledger = { version: 1, bootId: 'b', entries: { 'net/ipv4/ip_forward': { original: '0', value: '1', owners: ['vs/a'] } } };

  it('is empty before the first save, then round-trips, creating its directory', async () => {
    const f = new FileLedgerStore(path.join(dir, 'var/lib/lvs-operator/sysctl-ledger.json'));
    expect(await f.load()).toBeUndefined();
    await f.save(ledger);
    expect(await f.load()).toEqual(ledger);
  });

  it.each([
    ['{not json', /corrupt ledger: /],
    ['{"version":2,"entries":{}}', /corrupt ledger: expected/],
    ['{"version":1,"entries":{"k":{"original":0,"value":"1","owners":[]}}}', /corrupt ledger: bad entry k/],
  ])('refuses a corrupt ledger %j', async (text, msg) => {
    const file = path.join(dir, 'ledger.json');
    await writeFile(file, text);
    await expect(new FileLedgerStore(file).load()).rejects.toThrow(msg);
  });
});

describe('SysctlManager on files', () => {
  it('restores originals after a restart (new instance, same ledger file)', async () => {
    await put('net/ipv4/conf/all/arp_ignore', '0');
    await put('net/ipv4/conf/eth0.100/arp_ignore', '2');
    await put('kernel/random/boot_id', 'boot-1');
    const ledgerFile = path.join(dir, 'state/ledger.json');
    const open = () => new SysctlManager({ store: new ProcSysctlStore(root), ledger: new FileLedgerStore(ledgerFile) });
    const settings = ['all', 'eth0.100'].map((i) => ({ key: `net/ipv4/conf/${i}/arp_ignore`, value: '1', reason: 'test' }));

    await open().claim('vs/a', settings);
    const saved = JSON.parse(await readFile(ledgerFile, 'utf8')) as Ledger;
    expect(saved.bootId).toBe('boot-1');
    expect(saved.entries['net/ipv4/conf/eth0.100/arp_ignore']).toEqual({ original: '2', value: '1', owners: ['vs/a'] });

    await open().release('vs/a');
    const proc = new ProcSysctlStore(root);
    expect(await proc.read('net/ipv4/conf/all/arp_ignore')).toBe('0');
    expect(await proc.read('net/ipv4/conf/eth0.100/arp_ignore')).toBe('2');
  });
});

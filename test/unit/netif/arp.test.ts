import { describe, expect, it } from '@jest/globals';
import { BackgroundAnnouncer, CommandArpAnnouncer, CommandVipConflictProbe, announceCommands, conflictProbeCommand, execRunner, parseArpingReplies, type Command, type OutputRunner } from '../../../src/netif/arp.ts';
import { FakeNetif } from '../../../src/netif/fake.ts';
import { syncVipChanges } from '../../../src/agent/vips.ts';
import { emptyState } from '../../../src/agent/state.ts';
import type { ArpAnnouncer } from '../../../src/netif/types.ts';
import { NetifError } from '../../../src/netif/errors.ts';

describe('announceCommands', () => {
  it('IPv4: one arping -U sending count gratuitous requests', () => {
    expect(announceCommands('eth0', '192.168.56.40', 3)).toEqual([
      { file: 'arping', args: ['-q', '-U', '-c', '3', '-I', 'eth0', '192.168.56.40'] },
    ]);
  });

  it('IPv6: one na6 per announcement, override flag, target LLA, to all-nodes', () => {
    const cmds = announceCommands('eth0.100', '2001:DB8::40', 2);
    expect(cmds).toHaveLength(2);
    expect(cmds[0]).toEqual({
      file: 'na6',
      args: ['-i', 'eth0.100', '-s', '2001:db8::40', '-d', 'ff02::1', '-t', '2001:db8::40', '-o', '-e'],
    });
  });

  it.each([0, -1, 1.5])('rejects count %p', (count) => {
    expect(() => announceCommands('eth0', '192.168.56.40', count)).toThrow('positive integer');
  });
});

describe('CommandArpAnnouncer', () => {
  const recorder = () => {
    const ran: Command[] = [];
    return { ran, runner: async (cmd: Command) => void ran.push(cmd) };
  };

  it('runs the commands with the default count', async () => {
    const { ran, runner } = recorder();
    await new CommandArpAnnouncer({ runner, defaultCount: 5 }).announce('eth0', '192.168.56.40');
    expect(ran.map((c) => c.args.join(' '))).toEqual(['-q -U -c 5 -I eth0 192.168.56.40']);
  });

  it('names the apt package when the tool is missing', async () => {
    const runner = async () => {
      throw Object.assign(new Error('spawn arping ENOENT'), { code: 'ENOENT' });
    };
    const err = await new CommandArpAnnouncer({ runner }).announce('eth0', '192.168.56.40').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetifError);
    expect((err as Error).message).toBe('ENOENT: announce 192.168.56.40 dev eth0 (arping not found: apt-get install iputils-arping)');
  });

  it('reports exit code and stderr', async () => {
    const runner = async () => {
      throw Object.assign(new Error('Command failed'), { code: 2, stderr: 'arping: bind: Cannot assign requested address' });
    };
    await expect(new CommandArpAnnouncer({ runner }).announce('eth0', '2001:db8::40', 1)).rejects.toThrow(
      'EIO: announce 2001:db8::40 dev eth0 (na6 exited 2: arping: bind: Cannot assign requested address)',
    );
  });

  it('reports a timeout', async () => {
    const runner = async () => {
      throw Object.assign(new Error('killed'), { killed: true, signal: 'SIGTERM' });
    };
    await expect(new CommandArpAnnouncer({ runner }).announce('eth0', '192.168.56.40')).rejects.toThrow('ETIMEDOUT: announce 192.168.56.40 dev eth0');
  });

  it('runs real processes through execRunner', async () => {
    // `true` ignores its arguments: proves the spawn path resolves on exit 0; a missing tool maps to ENOENT.
    const as = (file: string) => new CommandArpAnnouncer({ runner: (cmd, t) => execRunner({ file, args: cmd.args }, t) });
    await expect(as('true').announce('eth0', '192.168.56.40', 1)).resolves.toBeUndefined();
    await expect(as('false').announce('eth0', '192.168.56.40', 1)).rejects.toThrow('EIO: announce 192.168.56.40 dev eth0 (arping exited 1)');
    await expect(as('no-such-tool-lvs').announce('eth0', '192.168.56.40', 1)).rejects.toThrow(/^ENOENT: announce 192\.168\.56\.40 dev eth0/);
  });
});

/** An announcer whose announcements finish only when the test says so (or are aborted). */
class GatedAnnouncer implements ArpAnnouncer {
  readonly started: string[] = [];
  readonly aborted: string[] = [];
  readonly #gates = new Map<string, { resolve: () => void; reject: (e: unknown) => void }>();

  announce(ifname: string, vip: string, _count?: number, signal?: AbortSignal): Promise<void> {
    const key = `${ifname}|${vip}`;
    this.started.push(key);
    return new Promise((resolve, reject) => {
      this.#gates.set(key, { resolve, reject });
      signal?.addEventListener('abort', () => {
        this.aborted.push(key);
        reject(new Error('aborted'));
      });
    });
  }

  finish(key: string, err?: unknown): void {
    const g = this.#gates.get(key)!;
    this.#gates.delete(key);
    if (err) g.reject(err);
    else g.resolve();
  }
}

describe('BackgroundAnnouncer', () => {
  it('returns before the announcement ends, runs at most `concurrency` at once, and announces a VIP queued twice once', async () => {
    const inner = new GatedAnnouncer();
    const bg = new BackgroundAnnouncer(inner, { concurrency: 2 });
    await bg.announce('eth0', '192.168.56.40');
    await bg.announce('eth0', '192.168.56.41');
    await bg.announce('eth0', '192.168.56.42');
    await bg.announce('eth0', '192.168.56.41');
    expect(inner.started).toEqual(['eth0|192.168.56.40', 'eth0|192.168.56.41']);
    expect(bg.pending).toBe(3);
    inner.finish('eth0|192.168.56.40');
    await new Promise((r) => setImmediate(r));
    expect(inner.started).toEqual(['eth0|192.168.56.40', 'eth0|192.168.56.41', 'eth0|192.168.56.42']);
    inner.finish('eth0|192.168.56.41');
    inner.finish('eth0|192.168.56.42');
    await bg.idle();
    expect(bg.pending).toBe(0);
  });

  it('withdraw drops a queued announcement and aborts a running one, without reporting an error', async () => {
    const inner = new GatedAnnouncer();
    const errors: string[] = [];
    const bg = new BackgroundAnnouncer(inner, { concurrency: 1, onError: (e) => errors.push(e.message) });
    await bg.announce('eth0', '192.168.56.40');
    await bg.announce('eth0', '192.168.56.41');
    bg.withdraw('eth0', '192.168.56.41');
    bg.withdraw('eth0', '192.168.56.40');
    await bg.idle();
    expect(inner.started).toEqual(['eth0|192.168.56.40']);
    expect(inner.aborted).toEqual(['eth0|192.168.56.40']);
    expect(errors).toEqual([]);
  });

  it('reports a failure with the NetifError of the announcer (errno, VIP, interface)', async () => {
    const runner = async () => {
      throw Object.assign(new Error('spawn arping ENOENT'), { code: 'ENOENT' });
    };
    const seen: { errno: string; ifname: string; vip: string }[] = [];
    const bg = new BackgroundAnnouncer(new CommandArpAnnouncer({ runner }), { onError: (e, ifname, vip) => seen.push({ errno: e.errno, ifname, vip }) });
    await bg.announce('eth1', '192.168.56.40');
    await bg.idle();
    expect(seen).toEqual([{ errno: 'ENOENT', ifname: 'eth1', vip: '192.168.56.40' }]);
  });

  it('rejects a malformed VIP at once, in the caller', () => {
    const bg = new BackgroundAnnouncer(new GatedAnnouncer());
    expect(() => bg.announce('eth0', 'not-an-ip')).toThrow();
    expect(bg.pending).toBe(0);
  });

  it('kills a real running process on withdraw (execRunner with the abort signal)', async () => {
    const errors: string[] = [];
    const started = Date.now();
    const inner = new CommandArpAnnouncer({ runner: (cmd, t, signal) => execRunner({ file: 'sleep', args: ['30'] }, t, signal), timeoutMs: 60_000 });
    const bg = new BackgroundAnnouncer(inner, { onError: (e) => errors.push(e.message) });
    await bg.announce('eth0', '192.168.56.40');
    await new Promise((r) => setTimeout(r, 100));
    bg.withdraw('eth0', '192.168.56.40');
    await bg.idle();
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(errors).toEqual([]);
  });

  it('syncVipChanges withdraws the announcement of a VIP it unbinds', async () => {
    const inner = new GatedAnnouncer();
    const bg = new BackgroundAnnouncer(inner);
    const netif = new FakeNetif();
    netif.addLink('eth0', { up: true });
    const state = emptyState();
    const want = { ifname: 'eth0', vip: '192.168.56.40', owner: 'director:default/web' };
    const added = await syncVipChanges(netif, state, { add: [want], remove: [] }, bg);
    expect(added.added).toEqual(['eth0|192.168.56.40']);
    expect(inner.started).toEqual(['eth0|192.168.56.40']);
    const removed = await syncVipChanges(netif, state, { add: [], remove: [want] }, bg);
    expect(removed.removed).toEqual(['eth0|192.168.56.40']);
    expect(inner.aborted).toEqual(['eth0|192.168.56.40']);
    await bg.idle();
  });
});

describe('CommandVipConflictProbe (arping -D)', () => {
  // iputils-arping's DAD output: exit 1 with a reply line when someone answers, 0 when nobody does.
  const REPLY = 'ARPING 192.168.56.40 from 0.0.0.0 eth0\nUnicast reply from 192.168.56.40 [02:00:00:00:56:35]  0.711ms\nSent 1 probes (1 broadcast(s))\nReceived 1 response(s)\n';
  const runner = (r: { code: number; stdout?: string; stderr?: string } | Error, seen: Command[] = []): OutputRunner => async (cmd) => {
    seen.push(cmd);
    if (r instanceof Error) throw r;
    return { stdout: '', stderr: '', ...r };
  };

  it('the command: DAD mode, count requests within count seconds, IPv4 only', () => {
    expect(conflictProbeCommand('eth0', '192.168.56.40', 1)).toEqual({ file: 'arping', args: ['-D', '-c', '1', '-w', '1', '-I', 'eth0', '192.168.56.40'] });
    expect(conflictProbeCommand('eth0', '2001:db8::40', 1)).toBeUndefined();
  });

  it('parses the MACs of the reply lines, lowercase, once each', () => {
    expect(parseArpingReplies(REPLY)).toEqual(['02:00:00:00:56:35']);
    expect(parseArpingReplies(REPLY + 'Unicast reply from 192.168.56.40 [02:00:00:00:56:35]  0.9ms\nUnicast reply from 192.168.56.40 [AA:BB:CC:00:00:01]  1.0ms\n')).toEqual(['02:00:00:00:56:35', 'aa:bb:cc:00:00:01']);
    expect(parseArpingReplies('Sent 1 probes (1 broadcast(s))\nReceived 0 response(s)\n')).toEqual([]);
  });

  it('answers the MACs on a reply, [] when nobody answers or for IPv6 (no command run)', async () => {
    const seen: Command[] = [];
    expect(await new CommandVipConflictProbe({ runner: runner({ code: 1, stdout: REPLY }, seen) }).answeredBy('eth0', '192.168.56.40')).toEqual(['02:00:00:00:56:35']);
    expect(await new CommandVipConflictProbe({ runner: runner({ code: 0, stdout: 'Received 0 response(s)\n' }) }).answeredBy('eth0', '192.168.56.40')).toEqual([]);
    const none: Command[] = [];
    expect(await new CommandVipConflictProbe({ runner: runner({ code: 1, stdout: REPLY }, none) }).answeredBy('eth0', '2001:db8::40')).toEqual([]);
    expect(none).toEqual([]);
    expect(seen[0]!.args).toContain('-D');
  });

  it('errors name the VIP, the interface and the cause: bad interface, missing arping, timeout', async () => {
    await expect(new CommandVipConflictProbe({ runner: runner({ code: 2, stderr: 'arping: Device nosuch0 not available.' }) }).answeredBy('nosuch0', '192.168.56.40'))
      .rejects.toThrow('EIO: probe 192.168.56.40 dev nosuch0 (arping exited 2: arping: Device nosuch0 not available.)');
    // Exit 1 without a reply line is not a conflict either.
    await expect(new CommandVipConflictProbe({ runner: runner({ code: 1, stdout: 'Sent 1 probes\n' }) }).answeredBy('eth0', '192.168.56.40')).rejects.toThrow('arping exited 1');
    await expect(new CommandVipConflictProbe({ runner: runner(Object.assign(new Error('spawn arping ENOENT'), { code: 'ENOENT' })) }).answeredBy('eth0', '192.168.56.40'))
      .rejects.toThrow('ENOENT: probe 192.168.56.40 dev eth0 (arping not found: apt-get install iputils-arping)');
    await expect(new CommandVipConflictProbe({ runner: runner(Object.assign(new Error('killed'), { killed: true })) }).answeredBy('eth0', '192.168.56.40'))
      .rejects.toThrow('ETIMEDOUT: probe 192.168.56.40 dev eth0 (arping timed out)');
  });
});

import { describe, expect, it } from '@jest/globals';
import { CommandArpAnnouncer, announceCommands, execRunner, type Command } from '../../../src/netif/arp.ts';
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

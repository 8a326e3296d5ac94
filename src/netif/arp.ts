/**
 * Gratuitous ARP / unsolicited Neighbor Advertisement for a VIP, so that neighbours re-point their caches
 * after a failover. Node has no raw or packet sockets, and the kernel sends neither when an address is
 * added (arp_notify / ndisc_notify only fire on link up or MAC change, and never for nodad addresses), so
 * the agent runs the classic tools:
 *   IPv4: `arping -U` from iputils-arping — ARP requests with sender = target = VIP, as keepalived sends;
 *   IPv6: `na6` from ipv6toolkit — NA to ff02::1 with the Override flag and the interface MAC as target LLA.
 * Receivers update existing entries only (arp_accept / accept_untracked_na default to 0), which is all a
 * failover needs.
 */
import { execFile } from 'node:child_process';
import { NetifError } from './errors.ts';
import { hostAddress } from './ip.ts';
import type { ArpAnnouncer } from './types.ts';

export interface Command {
  readonly file: string;
  readonly args: readonly string[];
}

/** Which apt package provides each tool (for error messages and the agent image). */
export const ANNOUNCE_PACKAGES: Readonly<Record<string, string>> = { arping: 'iputils-arping', na6: 'ipv6toolkit' };

/** The commands that announce `vip` on `ifname` `count` times. */
export function announceCommands(ifname: string, vip: string, count: number): Command[] {
  const a = hostAddress(vip);
  if (!Number.isInteger(count) || count < 1) throw new Error(`announce count must be a positive integer, got ${count}`);
  if (a.family === 4) {
    // -U: unsolicited (gratuitous) request; one process sends `count` of them, 1 s apart.
    return [{ file: 'arping', args: ['-q', '-U', '-c', String(count), '-I', ifname, a.address] }];
  }
  // na6 sends one NA per run; -e adds the Target Link-Layer Address option with the interface's MAC.
  const na = { file: 'na6', args: ['-i', ifname, '-s', a.address, '-d', 'ff02::1', '-t', a.address, '-o', '-e'] };
  return Array.from({ length: count }, () => na);
}

export type CommandRunner = (cmd: Command, timeoutMs: number) => Promise<void>;

/** Runs a command; rejects with the exit code or spawn errno and its stderr. */
export const execRunner: CommandRunner = (cmd, timeoutMs) =>
  new Promise((resolve, reject) => {
    execFile(cmd.file, cmd.args, { timeout: timeoutMs }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      reject(Object.assign(err, { stderr: String(stderr).trim() }));
    });
  });

export interface CommandArpAnnouncerOptions {
  runner?: CommandRunner;
  /** Per command; arping -c N takes about N seconds. */
  timeoutMs?: number;
  /** Announcements per call (keepalived sends 5). */
  defaultCount?: number;
}

export class CommandArpAnnouncer implements ArpAnnouncer {
  readonly #run: CommandRunner;
  readonly #timeoutMs: number;
  readonly #count: number;

  constructor(options: CommandArpAnnouncerOptions = {}) {
    this.#run = options.runner ?? execRunner;
    this.#timeoutMs = options.timeoutMs ?? 15_000;
    this.#count = options.defaultCount ?? 3;
  }

  async announce(ifname: string, vip: string, count: number = this.#count): Promise<void> {
    for (const cmd of announceCommands(ifname, vip, count)) {
      try {
        await this.#run(cmd, this.#timeoutMs);
      } catch (err) {
        throw announceError(err, cmd, `${hostAddress(vip).address} dev ${ifname}`);
      }
    }
  }
}

function announceError(err: unknown, cmd: Command, object: string): NetifError {
  const e = err as NodeJS.ErrnoException & { stderr?: string; killed?: boolean };
  if (e.code === 'ENOENT') {
    return new NetifError('ENOENT', 'announce', object, `${cmd.file} not found: apt-get install ${ANNOUNCE_PACKAGES[cmd.file] ?? cmd.file}`, { cause: err });
  }
  if (e.killed) return new NetifError('ETIMEDOUT', 'announce', object, `${cmd.file} timed out`, { cause: err });
  const detail = `${cmd.file} exited ${String(e.code ?? '?')}${e.stderr ? `: ${e.stderr}` : ''}`;
  return new NetifError('EIO', 'announce', object, detail, { cause: err });
}

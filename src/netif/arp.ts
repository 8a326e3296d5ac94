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
import type { ArpAnnouncer, VipConflictProbe } from './types.ts';

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

export type CommandRunner = (cmd: Command, timeoutMs: number, signal?: AbortSignal) => Promise<void>;

/** Runs a command; rejects with the exit code or spawn errno and its stderr. */
export const execRunner: CommandRunner = (cmd, timeoutMs, signal) =>
  new Promise((resolve, reject) => {
    execFile(cmd.file, cmd.args, { timeout: timeoutMs, ...(signal ? { signal } : {}) }, (err, _stdout, stderr) => {
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

  async announce(ifname: string, vip: string, count: number = this.#count, signal?: AbortSignal): Promise<void> {
    for (const cmd of announceCommands(ifname, vip, count)) {
      if (signal?.aborted) return;
      try {
        await this.#run(cmd, this.#timeoutMs, signal);
      } catch (err) {
        if (signal?.aborted) return;
        throw announceError(err, cmd, `${hostAddress(vip).address} dev ${ifname}`);
      }
    }
  }
}

export interface BackgroundAnnouncerOptions {
  /** Announcements running at once (each `arping -c 3` lasts about 2 s). */
  concurrency?: number;
  /** A failed announcement: the VIP is bound, but neighbours may keep the old MAC until their entry ages out. */
  onError?: (err: NetifError, ifname: string, vip: string) => void;
}

/**
 * Announces in the background so that binding a VIP never waits for `arping` (about 2 s a VIP: a takeover
 * of many VIPs, or the first sync of thousands, would otherwise bind them one per 2 s). The first
 * gratuitous ARP of each still goes out at once; a VIP queued twice is announced once; a withdrawn VIP's
 * announcement is dropped or killed, so a node that just released a VIP never claims it again.
 */
export class BackgroundAnnouncer implements ArpAnnouncer {
  readonly #inner: ArpAnnouncer;
  readonly #concurrency: number;
  readonly #onError: ((err: NetifError, ifname: string, vip: string) => void) | undefined;
  readonly #queued = new Map<string, { ifname: string; vip: string; count: number | undefined }>();
  readonly #running = new Map<string, AbortController>();
  #idle: { promise: Promise<void>; resolve: () => void } | undefined;

  constructor(inner: ArpAnnouncer, options: BackgroundAnnouncerOptions = {}) {
    this.#inner = inner;
    this.#concurrency = Math.max(1, options.concurrency ?? 32);
    this.#onError = options.onError;
  }

  /** Queues the announcement and returns at once. */
  announce(ifname: string, vip: string, count?: number): Promise<void> {
    const key = announceKey(ifname, vip);
    // Validate now, so a bad address fails the caller instead of the background.
    announceCommands(ifname, vip, count ?? 1);
    if (!this.#queued.has(key) && !this.#running.has(key)) {
      this.#queued.set(key, { ifname, vip, count });
      this.#pump();
    }
    return Promise.resolve();
  }

  withdraw(ifname: string, vip: string): void {
    const key = announceKey(ifname, vip);
    this.#queued.delete(key);
    this.#running.get(key)?.abort();
  }

  /** Announcements queued or running. */
  get pending(): number {
    return this.#queued.size + this.#running.size;
  }

  /** Resolves when nothing is queued or running (shutdown, tests). */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    if (!this.#idle) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#idle = { promise, resolve };
    }
    return this.#idle.promise;
  }

  #pump(): void {
    while (this.#running.size < this.#concurrency && this.#queued.size > 0) {
      const [key, a] = this.#queued.entries().next().value as [string, { ifname: string; vip: string; count: number | undefined }];
      this.#queued.delete(key);
      const ac = new AbortController();
      this.#running.set(key, ac);
      this.#inner.announce(a.ifname, a.vip, a.count, ac.signal)
        .catch((err: unknown) => {
          if (ac.signal.aborted) return;
          const e = err instanceof NetifError ? err : new NetifError('EIO', 'announce', `${a.vip} dev ${a.ifname}`, String(err), { cause: err });
          this.#onError?.(e, a.ifname, a.vip);
        })
        .finally(() => {
          if (this.#running.get(key) === ac) this.#running.delete(key);
          this.#pump();
          if (this.pending === 0 && this.#idle) {
            this.#idle.resolve();
            this.#idle = undefined;
          }
        });
    }
  }
}

const announceKey = (ifname: string, vip: string): string => `${ifname}|${hostAddress(vip).address}`;

function announceError(err: unknown, cmd: Command, object: string, op: 'announce' | 'probe' = 'announce'): NetifError {
  const e = err as NodeJS.ErrnoException & { stderr?: string; killed?: boolean };
  if (e.code === 'ENOENT') {
    return new NetifError('ENOENT', op, object, `${cmd.file} not found: apt-get install ${ANNOUNCE_PACKAGES[cmd.file] ?? cmd.file}`, { cause: err });
  }
  if (e.killed || e.code === 'ABORT_ERR') return new NetifError('ETIMEDOUT', op, object, `${cmd.file} timed out`, { cause: err });
  const detail = `${cmd.file} exited ${String(e.code ?? '?')}${e.stderr ? `: ${e.stderr}` : ''}`;
  return new NetifError('EIO', op, object, detail, { cause: err });
}

/**
 * `arping -D` (duplicate address detection, iputils): ARP requests with sender 0.0.0.0 for the VIP, so only
 * hosts that have it bound and answer ARP for it reply (DR realservers hold it on lo with arp_ignore=1 and
 * stay silent); it stops at the first reply. IPv4 only: for an IPv6 VIP the probe answers [] (the Lease alone
 * decides).
 */
export function conflictProbeCommand(ifname: string, vip: string, count: number): Command | undefined {
  const a = hostAddress(vip);
  if (a.family !== 4) return undefined;
  return { file: 'arping', args: ['-D', '-c', String(count), '-w', String(count), '-I', ifname, a.address] };
}

/** The MACs in arping's reply lines ("Unicast reply from 192.168.56.40 [02:00:00:00:56:35]  0.7ms"). */
export function parseArpingReplies(stdout: string): string[] {
  const macs = new Set<string>();
  for (const m of stdout.matchAll(/reply from \S+ \[([0-9a-f]{2}(?::[0-9a-f]{2}){5})\]/gi)) macs.add(m[1]!.toLowerCase());
  return [...macs];
}

export type OutputRunner = (cmd: Command, timeoutMs: number, signal?: AbortSignal) => Promise<{ code: number; stdout: string; stderr: string }>;

/** Runs a command and resolves with its exit code and output (rejects only when it cannot run or times out). */
export const outputRunner: OutputRunner = (cmd, timeoutMs, signal) =>
  new Promise((resolve, reject) => {
    execFile(cmd.file, cmd.args, { timeout: timeoutMs, ...(signal ? { signal } : {}) }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string; killed?: boolean }) | null;
      if (e && (typeof e.code !== 'number' || e.killed)) return reject(Object.assign(e, { stderr: String(stderr).trim() }));
      resolve({ code: e ? Number(e.code) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });

export interface CommandVipConflictProbeOptions {
  runner?: OutputRunner;
  /** ARP requests per probe, 1 s apart; the probe ends at the first reply (default 1). */
  count?: number;
}

export class CommandVipConflictProbe implements VipConflictProbe {
  readonly #run: OutputRunner;
  readonly #count: number;

  constructor(options: CommandVipConflictProbeOptions = {}) {
    this.#run = options.runner ?? outputRunner;
    this.#count = options.count ?? 1;
  }

  async answeredBy(ifname: string, vip: string, signal?: AbortSignal): Promise<string[]> {
    const cmd = conflictProbeCommand(ifname, vip, this.#count);
    if (!cmd) return [];
    const object = `${hostAddress(vip).address} dev ${ifname}`;
    let r: { code: number; stdout: string; stderr: string };
    try {
      // Generous: a reply ends it at once, and a starved node must not read a slow start as an error.
      r = await this.#run(cmd, (this.#count + 9) * 1000, signal);
    } catch (err) {
      throw announceError(err, cmd, object, 'probe');
    }
    // 0: nobody answered; 1: a reply (a duplicate); anything else (2: bad interface...) is an error.
    if (r.code === 0) return [];
    const macs = parseArpingReplies(r.stdout);
    if (r.code === 1 && macs.length > 0) return macs;
    throw new NetifError('EIO', 'probe', object, `${cmd.file} exited ${r.code}${r.stderr.trim() ? `: ${r.stderr.trim()}` : ''}`);
  }
}


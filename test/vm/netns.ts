// Network-namespace helpers for kernel suites (test/kernel/**), which run as root inside the QEMU lab VM
// (test/vm/lab.ts). They wrap `ip` (iproute2) and busybox; every resource a NetLab creates is removed by
// NetLab.destroy(), so a suite can build a fresh topology per test file.
//
// Typical DR/NAT/TUN lab (client -> director -> web1/web2 on one L2 segment):
//
//   import { NetLab, assertInLabVm } from '../vm/netns.ts';
//   assertInLabVm();
//   const lab = new NetLab();
//   const br = await lab.addBridge('br56');                       // bridge in the VM's root netns
//   const client = await lab.addNetns('client');                  // netns names are prefixed: lab.nsName('client')
//   const director = await lab.addNetns('director');
//   await lab.connect(client, br, { addresses: ['192.168.56.10/24'] });    // eth0 inside the netns
//   await lab.connect(director, br, { addresses: ['192.168.56.34/24', '192.168.56.40/32'] });
//   await lab.exec(director, ['ipvsadm', '-A', '-t', '192.168.56.40:80', '-s', 'rr']);
//   const web1 = await lab.addNetns('web1');
//   await lab.connect(web1, br, { addresses: ['192.168.56.37/24'] });
//   await lab.startHttpServer(web1, { name: 'web1', port: 80 });   // answers "web1\n"
//   expect(await lab.httpGet(client, 'http://192.168.56.37/')).toBe('web1\n');
//   await lab.destroy();                                           // in afterAll
//
// IPVS state is per network namespace: run ipvsadm / the agent inside the director's netns (lab.exec /
// lab.spawn), not in the VM's root netns, so suites do not see each other's services.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { randomBytes } from 'node:crypto';

/** A network namespace handle: its full name as shown by `ip netns list`; `null` = the VM's root netns. */
export type Netns = string | null;

export interface ExecOptions {
  /** Written to the command's stdin. */
  input?: string;
  /** Kill the command (SIGKILL) after this long and reject. Default 30 s. */
  timeoutMs?: number;
  /** Resolve with the result instead of rejecting when the command exits non-zero. */
  allowFailure?: boolean;
  /** Extra environment variables (merged over process.env). */
  env?: Record<string, string>;
}

export interface ExecResult {
  /** Exit code; 128 + signal number when killed by a signal. */
  code: number;
  /** Signal that killed the command, if any. */
  signal: NodeJS.Signals | null;
  /** True when the command was killed because timeoutMs expired. */
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

export class ExecError extends Error {
  readonly result: ExecResult;
  readonly argv: string[];
  constructor(argv: string[], result: ExecResult, why?: string) {
    super(`${why ?? `exit code ${result.code}`}: ${argv.join(' ')}\n${result.stderr.trim() || result.stdout.trim()}`);
    this.name = 'ExecError';
    this.argv = argv;
    this.result = result;
  }
}

/** Throws unless running inside the lab VM: kernel suites create namespaces and IPVS services as root. */
export function assertInLabVm(): void {
  if (process.env.LVS_VM !== '1') {
    throw new Error('kernel suites must run inside the lab VM: use `npm run test:vm` (test/vm/run-kernel-suites.ts)');
  }
}

/** argv prefixed so that it runs in `ns` (`ip netns exec`, which keeps the pid: kill() hits the real process). */
export function inNetns(ns: Netns, argv: string[]): string[] {
  return ns === null ? argv : ['ip', 'netns', 'exec', ns, ...argv];
}

/** Runs a command to completion (in `ns` if given) and returns its output; rejects on non-zero exit. */
export function exec(ns: Netns, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const full = inNetns(ns, argv);
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = full as [string, ...string[]];
    // stdin is /dev/null unless there is input: a pipe to a command that exits without reading it makes the
    // write fail with EPIPE, an 'error' event that would otherwise crash the test process.
    const child = spawn(cmd, args, {
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 30_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${full.join(' ')}: ${e.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const result: ExecResult = {
        code: code ?? 128 + (signal ? os.constants.signals[signal] : 0), signal, timedOut, stdout, stderr,
      };
      if (result.code === 0 || opts.allowFailure) resolve(result);
      else if (timedOut) reject(new ExecError(full, result, `timed out after ${opts.timeoutMs ?? 30_000} ms`));
      else reject(new ExecError(full, result, signal ? `killed by ${signal}` : undefined));
    });
    if (child.stdin) {
      child.stdin.on('error', () => {
        // EPIPE / ECONNRESET: the command did not read all of its input; its exit status tells what happened.
      });
      child.stdin.end(opts.input);
    }
  });
}

export interface SpawnOptions {
  /** Extra environment variables (merged over process.env). */
  env?: Record<string, string>;
  /** Label used in error messages. */
  label?: string;
}

/** A process running in the background (see spawnIn / NetLab.spawn). */
export class BackgroundProcess {
  readonly pid: number;
  readonly label: string;
  /** Resolves with the exit code (or null when killed by a signal) once the process has exited. */
  readonly exited: Promise<number | null>;
  #output = '';
  #running = true;
  #waiters: Array<() => void> = [];
  readonly #child: ReturnType<typeof spawn>;

  constructor(argv: string[], opts: SpawnOptions = {}) {
    const [cmd, ...args] = argv as [string, ...string[]];
    this.label = opts.label ?? argv.join(' ');
    this.#child = spawn(cmd, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
    });
    if (this.#child.pid === undefined) throw new Error(`cannot spawn ${argv.join(' ')}`);
    this.pid = this.#child.pid;
    const onData = (d: Buffer): void => {
      this.#output += d.toString('utf8');
      for (const w of this.#waiters) w();
    };
    this.#child.stdout?.on('data', onData);
    this.#child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) => {
      this.#child.once('error', (e) => {
        this.#output += `\nspawn error: ${e.message}\n`;
      });
      this.#child.once('close', (code) => {
        this.#running = false;
        for (const w of this.#waiters) w();
        resolve(code);
      });
    });
  }

  /** Everything the process has written to stdout and stderr so far. */
  get output(): string {
    return this.#output;
  }

  get running(): boolean {
    return this.#running;
  }

  /** Waits until the output matches `pattern`; rejects if the process exits first or on timeout. */
  waitForOutput(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const m = this.#output.match(pattern);
        if (m) {
          done();
          resolve(m);
          return true;
        }
        if (!this.#running) {
          done();
          reject(new Error(`${this.label} exited before printing ${pattern}; output:\n${this.#output}`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.label}: ${pattern} not seen within ${timeoutMs} ms; output:\n${this.#output}`));
      }, timeoutMs);
      const waiter = (): void => {
        check();
      };
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
      };
      this.#waiters.push(waiter);
      check();
    });
  }

  /** Sends `signal` (default SIGTERM), then SIGKILL after graceMs, and waits for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000): Promise<void> {
    if (!this.#running) return;
    this.#child.kill(signal);
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Starts a long-running command in `ns` (null = root netns). Stop it with `.stop()`. */
export function spawnIn(ns: Netns, argv: string[], opts: SpawnOptions = {}): BackgroundProcess {
  return new BackgroundProcess(inNetns(ns, argv), { label: `${argv.join(' ')}${ns ? ` (netns ${ns})` : ''}`, ...opts });
}

/**
 * Tiny HTTP server (CommonJS for `node -e`): answers every request with "<name>\n", prints "listening".
 * GET /stream?lines=N&ms=M is a long-lived download: "<name> 1\n" ... "<name> N\n" one line every M ms,
 * then "END\n" (Content-Length set up front, so a client knows a cut-short body), for connection-survival tests.
 */
const HTTP_SERVER_JS = `
const http = require('node:http');
const [name, port, host] = process.argv.slice(1);
const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  if (u.pathname === '/stream') {
    const n = Math.max(0, Number(u.searchParams.get('lines') ?? 10));
    const ms = Math.max(1, Number(u.searchParams.get('ms') ?? 200));
    const body = Array.from({ length: n }, (_, i) => name + ' ' + (i + 1) + '\\n');
    const length = body.reduce((a, l) => a + Buffer.byteLength(l), 0) + 4;
    res.writeHead(200, { 'content-type': 'text/plain', connection: 'close', 'content-length': length });
    let i = 0;
    const t = setInterval(() => {
      if (i < n) res.write(body[i++]);
      else { clearInterval(t); res.end('END\\n'); }
    }, ms);
    res.on('close', () => clearInterval(t));
    return;
  }
  res.setHeader('content-type', 'text/plain');
  res.setHeader('connection', 'close');
  res.end(name + '\\n');
});
server.listen(Number(port), host, () => console.log('listening ' + host + ':' + port));
process.on('SIGTERM', () => { server.close(() => process.exit(0)); server.closeAllConnections(); });
`;

export interface HttpServerOptions {
  /** Body of every answer (followed by "\n"). */
  name: string;
  port?: number;
  /** Address to bind; default 0.0.0.0 (also catches a VIP on lo for DR/TUN realservers). */
  host?: string;
  /** How long to wait for the server to listen (Node starts slowly under TCG). Default 60 s. */
  readyTimeoutMs?: number;
}

/** Starts the tiny HTTP server in `ns` and waits until it listens. */
export async function startHttpServer(ns: Netns, opts: HttpServerOptions): Promise<BackgroundProcess> {
  const port = opts.port ?? 80;
  const host = opts.host ?? '0.0.0.0';
  const proc = spawnIn(ns, [process.execPath, '-e', HTTP_SERVER_JS, opts.name, String(port), host],
    { label: `http server ${opts.name} ${host}:${port}${ns ? ` in ${ns}` : ''}` });
  await proc.waitForOutput(/^listening /m, opts.readyTimeoutMs ?? 60_000);
  return proc;
}

export interface HttpGetOptions {
  /** Per-request timeout in seconds (the client is killed when it expires). Default 10. */
  timeoutSec?: number;
  /** Resolve with null instead of rejecting when the request fails. */
  allowFailure?: boolean;
}

/**
 * GET `url` from inside `ns` with busybox wget (starts in milliseconds, unlike node); returns the body.
 * (Not `wget -T`: Debian's busybox-static 1.35 wget segfaults with -T; the timeout kills the client instead.)
 */
export async function httpGet(ns: Netns, url: string, opts: HttpGetOptions & { allowFailure: true }): Promise<string | null>;
export async function httpGet(ns: Netns, url: string, opts?: HttpGetOptions): Promise<string>;
export async function httpGet(ns: Netns, url: string, opts: HttpGetOptions = {}): Promise<string | null> {
  const t = opts.timeoutSec ?? 10;
  const r = await exec(ns, ['busybox', 'wget', '-q', '-O', '-', url], { allowFailure: true, timeoutMs: t * 1000 });
  if (r.code === 0) return r.stdout;
  if (opts.allowFailure) return null;
  throw new Error(`GET ${url}${ns ? ` from netns ${ns}` : ''} failed (${r.timedOut ? `no answer within ${t} s`
    : `wget exit ${r.code}`}): ${r.stderr.trim()}`);
}

/**
 * Sets a sysctl inside `ns` by writing /proc/sys directly (works for dotted interface names such as eth0.100:
 * pass the key with '/' separators, e.g. 'net/ipv4/conf/eth0.100/arp_ignore'; dotted keys are converted).
 */
export async function sysctl(ns: Netns, key: string, value: string | number): Promise<void> {
  const rel = key.includes('/') ? key : key.replaceAll('.', '/');
  await exec(ns, ['sh', '-c', 'printf "%s\\n" "$1" > "/proc/sys/$2"', 'sysctl', String(value), rel]);
}

/** Reads a sysctl inside `ns` (key as for sysctl()). */
export async function readSysctl(ns: Netns, key: string): Promise<string> {
  const rel = key.includes('/') ? key : key.replaceAll('.', '/');
  return (await exec(ns, ['cat', `/proc/sys/${rel}`])).stdout.trim();
}

export interface ConnectOptions {
  /** Interface name inside the namespace. Default eth0 (then eth1, ... for further links of the same netns). */
  ifname?: string;
  /** CIDR addresses for the namespace side, e.g. ['192.168.56.34/24', '192.168.56.40/32']. */
  addresses?: string[];
  /** Fixed MAC address for the namespace side. */
  mac?: string;
}

export interface Link {
  /** Namespace side of the veth pair. */
  netns: Netns;
  ifname: string;
  /** Bridge side (a bridge port) of the veth pair, in the bridge's netns. */
  peer: string;
}

export interface Bridge {
  name: string;
  /** Namespace the bridge lives in (null = VM root netns). */
  netns: Netns;
}

export interface BridgeOptions {
  /** Put the bridge in this netns (created with addNetns) instead of the VM root netns. */
  netns?: Netns;
  /** Addresses on the bridge itself (makes its netns a host on the segment). */
  addresses?: string[];
}

/**
 * Builds a lab topology and tears it down again. Namespace names are prefixed with a per-lab id
 * (`lab.nsName('client')` → e.g. "lx3f-client") so labs never collide, even with leftovers of a crashed run.
 */
export class NetLab {
  /** Prefix of every namespace and host-side interface this lab creates. */
  readonly id: string;
  readonly #namespaces: string[] = [];
  readonly #bridges: Bridge[] = [];
  readonly #procs: BackgroundProcess[] = [];
  readonly #ifCount = new Map<string, number>();
  #vethCount = 0;

  constructor(id?: string) {
    this.id = id ?? `l${randomBytes(2).toString('hex')}`;
    if (!/^[a-z][a-z0-9]{0,5}$/.test(this.id)) throw new Error(`NetLab id must match [a-z][a-z0-9]{0,5}: ${this.id}`);
  }

  /** Full name of the namespace `short` of this lab. */
  nsName(short: string): string {
    return `${this.id}-${short}`;
  }

  /** Creates the namespace `short` (full name: nsName(short)) with lo up; returns the full name. */
  async addNetns(short: string): Promise<string> {
    const ns = this.nsName(short);
    await exec(null, ['ip', 'netns', 'add', ns]);
    this.#namespaces.push(ns);
    await exec(ns, ['ip', 'link', 'set', 'lo', 'up']);
    return ns;
  }

  /** Creates a bridge (up, STP off, no forwarding delay) in the root netns or `opts.netns`. */
  async addBridge(name: string, opts: BridgeOptions = {}): Promise<Bridge> {
    if (name.length > 15) throw new Error(`interface name too long (max 15): ${name}`);
    const ns = opts.netns ?? null;
    await exec(ns, ['ip', 'link', 'add', name, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
    const br: Bridge = { name, netns: ns };
    this.#bridges.push(br);
    for (const a of opts.addresses ?? []) await exec(ns, ['ip', 'addr', 'add', a, 'dev', name]);
    await exec(ns, ['ip', 'link', 'set', name, 'up']);
    return br;
  }

  /** Connects `ns` to `bridge` with a veth pair; the namespace side gets `opts.ifname` and the addresses. */
  async connect(ns: string, bridge: Bridge, opts: ConnectOptions = {}): Promise<Link> {
    const n = this.#ifCount.get(ns) ?? 0;
    const ifname = opts.ifname ?? `eth${n}`;
    this.#ifCount.set(ns, n + 1);
    const peer = `${this.id}v${this.#vethCount++}`;
    // Create both ends in the bridge's netns, then move one into `ns` (its name there cannot clash).
    const tmp = `${this.id}t${this.#vethCount}`;
    await exec(bridge.netns, ['ip', 'link', 'add', peer, 'type', 'veth', 'peer', 'name', tmp]);
    await exec(bridge.netns, ['ip', 'link', 'set', tmp, 'netns', ns]);
    await exec(ns, ['ip', 'link', 'set', tmp, 'name', ifname]);
    if (opts.mac) await exec(ns, ['ip', 'link', 'set', ifname, 'address', opts.mac]);
    for (const a of opts.addresses ?? []) await exec(ns, ['ip', 'addr', 'add', a, 'dev', ifname]);
    await exec(bridge.netns, ['ip', 'link', 'set', peer, 'master', bridge.name]);
    await exec(bridge.netns, ['ip', 'link', 'set', peer, 'up']);
    await exec(ns, ['ip', 'link', 'set', ifname, 'up']);
    return { netns: ns, ifname, peer };
  }

  /** `ip addr add <cidr> dev <ifname>` in ns (e.g. a VIP on lo for a DR realserver: addAddress(web1, 'lo', 'VIP/32')). */
  async addAddress(ns: Netns, ifname: string, cidr: string): Promise<void> {
    await exec(ns, ['ip', 'addr', 'add', cidr, 'dev', ifname]);
  }

  /** `ip route replace <args>` in ns, e.g. addRoute(web1, ['default', 'via', '192.168.56.34']). */
  async addRoute(ns: Netns, args: string[]): Promise<void> {
    await exec(ns, ['ip', 'route', 'replace', ...args]);
  }

  /** See sysctl(). */
  sysctl(ns: Netns, key: string, value: string | number): Promise<void> {
    return sysctl(ns, key, value);
  }

  /** See exec(). */
  exec(ns: Netns, argv: string[], opts?: ExecOptions): Promise<ExecResult> {
    return exec(ns, argv, opts);
  }

  /** See spawnIn(); the process is stopped by destroy(). */
  spawn(ns: Netns, argv: string[], opts?: SpawnOptions): BackgroundProcess {
    const p = spawnIn(ns, argv, opts);
    this.#procs.push(p);
    return p;
  }

  /** See startHttpServer(); the server is stopped by destroy(). */
  async startHttpServer(ns: Netns, opts: HttpServerOptions): Promise<BackgroundProcess> {
    const p = await startHttpServer(ns, opts);
    this.#procs.push(p);
    return p;
  }

  /** See httpGet(). */
  httpGet(ns: Netns, url: string, opts?: HttpGetOptions): Promise<string> {
    return httpGet(ns, url, opts);
  }

  /** Stops every process, deletes the namespaces (their veth ends and IPVS tables go with them) and bridges. */
  async destroy(): Promise<void> {
    const errors: string[] = [];
    await Promise.all(this.#procs.splice(0).map((p) => p.stop().catch((e: unknown) => { errors.push(String(e)); })));
    for (const ns of this.#namespaces.splice(0).reverse()) {
      // Kill anything still running in the namespace (spawned by hand) so that it really goes away.
      const pids = await exec(null, ['ip', 'netns', 'pids', ns], { allowFailure: true });
      for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      }
      const r = await exec(null, ['ip', 'netns', 'del', ns], { allowFailure: true });
      if (r.code !== 0) errors.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
    }
    for (const br of this.#bridges.splice(0).reverse()) {
      if (br.netns !== null && !fs.existsSync(`/run/netns/${br.netns}`)) continue;
      const r = await exec(br.netns, ['ip', 'link', 'del', br.name], { allowFailure: true });
      if (r.code !== 0) errors.push(`ip link del ${br.name}: ${r.stderr.trim()}`);
    }
    if (errors.length) throw new Error(`NetLab.destroy: ${errors.join('; ')}`);
  }
}

// A real kube-apiserver (+ embedded etcd, RBAC on) for integration tests.
//
//   const api = await startApiServer();
//   // api.url, api.kubeconfigs.{admin,controller,agent}, api.dir
//   await api.restart();              // stop + start kube-apiserver: same port, same etcd data
//   await api.proxy.cutAll();         // drop every client connection (watches end)
//   await api.proxy.pause();          // stall every connection (half-open TCP), then resume()
//   await api.expireResourceVersions(); // old resourceVersions now get 410 Gone
//   await api.stop();
//
// The Go program is test/apiserver/harness/main.go (built and cached by build.ts).
// Clients go through a TCP proxy on `url` (that is what the kubeconfigs point at);
// `directUrl` bypasses the proxy. Fault injection goes through the harness's
// control endpoint (`controlUrl`), so a test file can also drive the apiserver that
// jest's global setup started: see sharedApiServer().
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ensureApiServerBinary } from './build.ts';

export interface Identity {
  name: string;
  user: string;
  groups?: string[];
}

export interface StartOptions {
  /** Public port on 127.0.0.1 (the proxy clients use). Default: a free port. */
  port?: number;
  /** State dir (PKI, tokens, etcd data, kubeconfigs, logs). Default: a new temp dir, removed by stop(). */
  dir?: string;
  /** Keep `dir` after stop() (default false, or LVS_TEST_KEEP_APISERVER_DIR=1). */
  keepDir?: boolean;
  /** kube-apiserver watch cache (default true, as in real clusters). With it off, compact() alone expires resourceVersions. */
  watchCache?: boolean;
  /** Run the namespace controller so deleted namespaces go away (default true). */
  namespaceController?: boolean;
  /** Extra identities besides admin/controller/agent; each gets <name>.kubeconfig. */
  identities?: Identity[];
  /** Extra kube-apiserver flags, e.g. ['--feature-gates=Foo=true']. */
  extraArgs?: string[];
  /** kube-apiserver -v level (default 0). */
  verbosity?: number;
  /** Time to wait for the ready line (default 120 s; does not include a cold build). */
  readyTimeoutMs?: number;
  /** Progress messages (build, start); default: stderr. */
  log?: (msg: string) => void;
}

export interface Kubeconfigs {
  admin: string;
  controller: string;
  agent: string;
  [name: string]: string;
}

/** Fault injection, usable from any process that knows controlUrl. */
export interface ApiServerControl {
  controlUrl: string;
  /** Stop and start kube-apiserver on the same port against the same etcd data; resolves when /readyz is OK again. */
  restart(): Promise<{ ms: number }>;
  /** Stop kube-apiserver only (the proxy keeps accepting and drops connections). */
  stopApiServer(): Promise<void>;
  startApiServer(): Promise<{ ms: number }>;
  proxy: {
    /** Close every client connection through the proxy (watches end). rst: send TCP RST instead of FIN. */
    cutAll(opts?: { rst?: boolean }): Promise<number>;
    /** Stop forwarding bytes in both directions; connections stay open (a silent, half-open network). */
    pause(): Promise<void>;
    resume(): Promise<void>;
  };
  /** Compact etcd at its head revision (after a dummy write): older resourceVersions are gone in etcd. */
  compact(): Promise<{ revision: number }>;
  /**
   * Make every resourceVersion seen so far expire, so list/watch from it gets 410 Gone.
   * Compacts etcd; with the watch cache on (default) also restarts kube-apiserver, because
   * the watch cache keeps serving old events until it is rebuilt (which cuts all watches too).
   */
  expireResourceVersions(): Promise<{ revision: number; restarted: boolean }>;
  status(): Promise<Record<string, unknown>>;
}

export interface ApiServer extends ApiServerControl {
  /** https://127.0.0.1:<port>, through the proxy; the kubeconfigs use it. */
  url: string;
  /** kube-apiserver itself, bypassing the proxy (not affected by cutAll/pause). */
  directUrl: string;
  etcdUrl: string;
  kubeconfigs: Kubeconfigs;
  tokens: Record<string, string>;
  caFile: string;
  dir: string;
  /** kube-apiserver log (all starts, appended). */
  logFile: string;
  /** Supervisor log (harness, etcd warnings, namespace controller). */
  harnessLogFile: string;
  watchCache: boolean;
  /** k8s.io/kubernetes module version the binary was built from. */
  version: string;
  pid: number;
  /** ms from spawn to ready. */
  startupMs: number;
  /** Stop everything (SIGTERM, then SIGKILL after 40 s) and remove the dir unless kept. Idempotent. */
  stop(): Promise<void>;
}

interface ReadyLine {
  event: 'ready';
  url: string;
  directUrl: string;
  controlUrl: string;
  etcdUrl: string;
  dir: string;
  caFile: string;
  kubeconfigs: Kubeconfigs;
  tokens: Record<string, string>;
  log: string;
  watchCache: boolean;
  version: string;
  pid: number;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function tailFile(file: string, lines = 60): string {
  try {
    if (!existsSync(file)) return `(${file} does not exist)`;
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch (e) {
    return `(cannot read ${file}: ${String(e)})`;
  }
}

async function post(controlUrl: string, path: string, timeoutMs = 180_000): Promise<Record<string, unknown>> {
  const res = await fetch(`${controlUrl}${path}`, { method: 'POST', signal: AbortSignal.timeout(timeoutMs) });
  const body = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(`lvs-test-apiserver ${path}: HTTP ${res.status}: ${String(body['error'] ?? JSON.stringify(body))}`);
  return body;
}

/** Fault-injection client for a running harness (e.g. LVS_TEST_APISERVER_CONTROL_URL). */
export function controlClient(controlUrl: string, watchCache = true): ApiServerControl {
  const ctl: ApiServerControl = {
    controlUrl,
    async restart() {
      const r = await post(controlUrl, '/restart');
      return { ms: Number(r['ms']) };
    },
    async stopApiServer() {
      await post(controlUrl, '/apiserver/stop');
    },
    async startApiServer() {
      const r = await post(controlUrl, '/apiserver/start');
      return { ms: Number(r['ms']) };
    },
    proxy: {
      async cutAll(opts = {}) {
        const r = await post(controlUrl, `/proxy/cut${opts.rst ? '?rst=1' : ''}`);
        return Number(r['closed']);
      },
      async pause() {
        await post(controlUrl, '/proxy/pause');
      },
      async resume() {
        await post(controlUrl, '/proxy/resume');
      },
    },
    async compact() {
      const r = await post(controlUrl, '/compact');
      return { revision: Number(r['revision']) };
    },
    async expireResourceVersions() {
      const { revision } = await ctl.compact();
      if (watchCache) await ctl.restart();
      return { revision, restarted: watchCache };
    },
    async status() {
      const res = await fetch(`${controlUrl}/status`, { signal: AbortSignal.timeout(10_000) });
      return (await res.json()) as Record<string, unknown>;
    },
  };
  return ctl;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort if a test run dies without stop(): the harness also exits when its stdin closes.
  process.on('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
}

export async function startApiServer(opts: StartOptions = {}): Promise<ApiServer> {
  const log = opts.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const bin = ensureApiServerBinary({ log });
  const ownDir = !opts.dir;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'lvs-apiserver-'));
  const keepDir = opts.keepDir ?? process.env['LVS_TEST_KEEP_APISERVER_DIR'] === '1';
  const port = opts.port ?? (await freePort());
  const watchCache = opts.watchCache ?? true;
  const args = ['run', '--dir', dir, '--port', String(port), '--exit-on-stdin-close',
    `--watch-cache=${watchCache}`, `--namespace-controller=${opts.namespaceController ?? true}`,
    `--v=${opts.verbosity ?? 0}`, `--ready-timeout=${Math.ceil((opts.readyTimeoutMs ?? 120_000) / 1000)}s`];
  if (ownDir && !keepDir) args.push('--remove-dir'); // also when we die without stop()
  for (const id of opts.identities ?? []) args.push('--identity', JSON.stringify({ name: id.name, user: id.user, groups: id.groups ?? [] }));
  if (opts.extraArgs?.length) args.push('--', ...opts.extraArgs);

  const harnessLogFile = join(dir, 'harness.log');
  const logFile = join(dir, 'apiserver.log');
  const errFd = openSync(harnessLogFile, 'a');
  const t0 = Date.now();
  let child: ChildProcess;
  try {
    child = spawn(bin.path, args, { stdio: ['pipe', 'pipe', errFd] });
  } finally {
    closeSync(errFd);
  }
  installExitHook();
  live.add(child);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code, sig) => resolve(code ?? (sig ? -1 : null))));
  exited.then(() => live.delete(child), () => undefined);

  const cleanupDir = () => {
    if (ownDir && !keepDir) rmSync(dir, { recursive: true, force: true });
  };
  const diagnostics = () =>
    `--- ${harnessLogFile} (tail) ---\n${tailFile(harnessLogFile, 30)}\n--- ${logFile} (tail) ---\n${tailFile(logFile, 60)}`;

  const timeoutMs = (opts.readyTimeoutMs ?? 120_000) + 10_000;
  let ready: ReadyLine;
  try {
    ready = await new Promise<ReadyLine>((resolve, reject) => {
      const rl = createInterface({ input: child.stdout! });
      const timer = setTimeout(() => reject(new Error(`lvs-test-apiserver not ready after ${timeoutMs} ms`)), timeoutMs);
      rl.on('line', (line) => {
        let ev: { event?: string; error?: string };
        try {
          ev = JSON.parse(line) as { event?: string; error?: string };
        } catch {
          return;
        }
        if (ev.event === 'ready') {
          clearTimeout(timer);
          resolve(ev as ReadyLine);
        } else if (ev.event === 'failed') {
          clearTimeout(timer);
          reject(new Error(`lvs-test-apiserver failed to start: ${ev.error}`));
        } else if (ev.event === 'apiserver-exited') {
          log(`lvs-test-apiserver: kube-apiserver exited unexpectedly: ${ev.error} (log: ${logFile})`);
        }
      });
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot run ${bin.path}: ${e.message}`));
      });
      exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`lvs-test-apiserver exited (code ${code}) before it was ready`));
      }, () => undefined);
    });
  } catch (e) {
    child.kill('SIGKILL');
    await exited;
    const msg = `${(e as Error).message}\n${diagnostics()}`;
    cleanupDir();
    throw new Error(msg);
  }
  const startupMs = Date.now() - t0;
  // Do not keep the test process alive for the harness; stdin EOF ends it if we die.
  child.unref();
  (child.stdin as Socket | null)?.unref?.();
  (child.stdout as Socket | null)?.unref?.();

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killTimer = setTimeout(() => child.kill('SIGKILL'), 40_000);
        await exited;
        clearTimeout(killTimer);
      }
      cleanupDir();
    })();
    return stopping;
  };

  return {
    ...controlClient(ready.controlUrl, ready.watchCache),
    url: ready.url,
    directUrl: ready.directUrl,
    etcdUrl: ready.etcdUrl,
    kubeconfigs: ready.kubeconfigs,
    tokens: ready.tokens,
    caFile: ready.caFile,
    dir,
    logFile,
    harnessLogFile,
    watchCache: ready.watchCache,
    version: ready.version,
    pid: ready.pid,
    startupMs,
    stop,
  };
}

/** Environment variables global-setup.ts exports for test files. */
export const ENV = {
  url: 'LVS_TEST_APISERVER_URL',
  directUrl: 'LVS_TEST_APISERVER_DIRECT_URL',
  controlUrl: 'LVS_TEST_APISERVER_CONTROL_URL',
  caFile: 'LVS_TEST_APISERVER_CA',
  dir: 'LVS_TEST_APISERVER_DIR',
  watchCache: 'LVS_TEST_APISERVER_WATCH_CACHE',
  version: 'LVS_TEST_APISERVER_VERSION',
  admin: 'LVS_TEST_KUBECONFIG_ADMIN',
  controller: 'LVS_TEST_KUBECONFIG_CONTROLLER',
  agent: 'LVS_TEST_KUBECONFIG_AGENT',
} as const;

export interface SharedApiServer extends ApiServerControl {
  url: string;
  directUrl: string;
  caFile: string;
  dir: string;
  watchCache: boolean;
  kubeconfigs: Kubeconfigs;
}

/** The apiserver started by jest's global setup (from the LVS_TEST_* environment). */
export function sharedApiServer(): SharedApiServer {
  const get = (k: string): string => {
    const v = process.env[k];
    if (!v) throw new Error(`${k} is not set: run through \`npm run test:apiserver\` (jest project "apiserver" with its globalSetup)`);
    return v;
  };
  const watchCache = get(ENV.watchCache) === 'true';
  return {
    ...controlClient(get(ENV.controlUrl), watchCache),
    url: get(ENV.url),
    directUrl: get(ENV.directUrl),
    caFile: get(ENV.caFile),
    dir: get(ENV.dir),
    watchCache,
    kubeconfigs: { admin: get(ENV.admin), controller: get(ENV.controller), agent: get(ENV.agent) },
  };
}

/** Export an ApiServer's coordinates into process.env (what global-setup.ts does). */
export function exportEnv(api: ApiServer): void {
  process.env[ENV.url] = api.url;
  process.env[ENV.directUrl] = api.directUrl;
  process.env[ENV.controlUrl] = api.controlUrl;
  process.env[ENV.caFile] = api.caFile;
  process.env[ENV.dir] = api.dir;
  process.env[ENV.watchCache] = String(api.watchCache);
  process.env[ENV.version] = api.version;
  process.env[ENV.admin] = api.kubeconfigs.admin;
  process.env[ENV.controller] = api.kubeconfigs.controller;
  process.env[ENV.agent] = api.kubeconfigs.agent;
}

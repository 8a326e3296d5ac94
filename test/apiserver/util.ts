// Helpers for tests against the harness apiserver: kubectl/helm runners and a raw
// HTTPS client (for asserting wire-level behaviour such as watch ERROR events).
import { spawn } from 'node:child_process';
import { request } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { helmPath, kubectlPath } from '../../scripts/tools.ts';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  kubeconfig?: string;
  input?: string;
  timeoutMs?: number;
  cwd?: string;
}

function run(bin: string, args: string[], opts: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    if (opts.kubeconfig) env['KUBECONFIG'] = opts.kubeconfig;
    // Keep kubectl's discovery/HTTP cache out of ~/.kube (ports are random anyway).
    env['KUBECACHEDIR'] ??= join(tmpdir(), 'lvs-test-kubectl-cache');
    env['HELM_CACHE_HOME'] ??= join(tmpdir(), 'lvs-test-helm-cache');
    const child = spawn(bin, args, { env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      resolve({ code: code ?? (sig ? 128 : 1), stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

export function kubectl(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return run(kubectlPath(), args, opts);
}

export function helm(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return run(helmPath(), args, opts);
}

/** Like kubectl() but throws with stderr unless the exit code is 0. */
export async function kubectlOk(args: string[], opts: RunOptions = {}): Promise<string> {
  const r = await kubectl(args, opts);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

export interface Credentials {
  server: string;
  ca: Buffer;
  token: string;
}

/** Server, CA and bearer token of a harness kubeconfig (they all use token auth). */
export function credentials(kubeconfigPath: string, server?: string): Credentials {
  const kc = parseYaml(readFileSync(kubeconfigPath, 'utf8')) as {
    clusters: Array<{ cluster: { server: string; 'certificate-authority-data': string } }>;
    users: Array<{ user: { token: string } }>;
  };
  const cluster = kc.clusters[0]?.cluster;
  const token = kc.users[0]?.user.token;
  if (!cluster || !token) throw new Error(`${kubeconfigPath}: no cluster/token`);
  return { server: server ?? cluster.server, ca: Buffer.from(cluster['certificate-authority-data'], 'base64'), token };
}

export interface RawResponse {
  status: number;
  body: string;
  json(): Record<string, unknown>;
}

export function rawRequest(c: Credentials, method: string, path: string, body?: unknown): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request(new URL(path, c.server), {
      method,
      ca: c.ca,
      agent: false,
      headers: { Authorization: `Bearer ${c.token}`, Accept: 'application/json', ...(data ? { 'Content-Type': 'application/json' } : {}) },
      timeout: 30_000,
    }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, json: () => JSON.parse(text) as Record<string, unknown> }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timeout`)));
    req.on('error', reject);
    req.end(data);
  });
}

export interface WatchEvent {
  type: string;
  object: Record<string, unknown> & { metadata?: { name?: string; resourceVersion?: string }; code?: number; reason?: string; message?: string };
}

export interface RawWatch {
  /** HTTP status once the response headers arrived. */
  status: Promise<number>;
  events: WatchEvent[];
  /** Resolves when the stream ends: `error` set if it ended abnormally (reset, aborted). */
  closed: Promise<{ error?: Error }>;
  /** Resolves with the first event matching pred (rejects after timeoutMs). */
  next(pred: (e: WatchEvent) => boolean, timeoutMs?: number): Promise<WatchEvent>;
  abort(): void;
}

/** A watch over raw HTTPS: `path` like /api/v1/namespaces/x/configmaps?watch=1&resourceVersion=5. */
export function rawWatch(c: Credentials, path: string): RawWatch {
  const events: WatchEvent[] = [];
  const waiters: Array<{ pred: (e: WatchEvent) => boolean; resolve: (e: WatchEvent) => void }> = [];
  let resolveStatus: (n: number) => void = () => undefined;
  const status = new Promise<number>((r) => (resolveStatus = r));
  let resolveClosed: (v: { error?: Error }) => void = () => undefined;
  const closed = new Promise<{ error?: Error }>((r) => (resolveClosed = r));
  const push = (e: WatchEvent) => {
    events.push(e);
    for (const w of [...waiters]) {
      if (w.pred(e)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(e);
      }
    }
  };
  const req = request(new URL(path, c.server), {
    method: 'GET',
    ca: c.ca,
    agent: false,
    headers: { Authorization: `Bearer ${c.token}`, Accept: 'application/json' },
  }, (res: IncomingMessage) => {
    resolveStatus(res.statusCode ?? 0);
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        if (line) push(JSON.parse(line) as WatchEvent);
      }
    });
    res.on('end', () => resolveClosed({}));
    res.on('error', (error) => resolveClosed({ error }));
    res.on('aborted', () => resolveClosed({ error: new Error('aborted') }));
    res.on('close', () => resolveClosed(res.complete ? {} : { error: new Error('closed before end') }));
  });
  req.on('error', (error) => {
    resolveStatus(0);
    resolveClosed({ error });
  });
  req.end();
  return {
    status,
    events,
    closed,
    next(pred, timeoutMs = 10_000) {
      const hit = events.find(pred);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve: (e: WatchEvent) => { clearTimeout(t); resolve(e); } };
        const t = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`no matching watch event within ${timeoutMs} ms (got ${JSON.stringify(events.map((e) => e.type))})`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
    abort() {
      req.destroy();
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Loading a KubeConfig: `--kubeconfig PATH`, else $KUBECONFIG (a ':'-separated list, merged), else the
 * in-cluster service account, else ~/.kube/config. Unlike client-node's loadFromDefault(), this never
 * silently falls back to http://localhost:8080: it fails with a message that says what was tried.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface LoadKubeConfigOptions {
  /** An explicit kubeconfig file (the --kubeconfig flag). */
  kubeconfig?: string;
  /** Use this context instead of current-context. */
  context?: string;
  /** Default process.env. */
  env?: Record<string, string | undefined>;
  /** Prefix of the service-account mount, '' in a pod (tests point it at a temp dir). */
  inClusterRoot?: string;
  /** Home directory (tests); default os.homedir(). */
  home?: string;
}

export interface LoadedKubeConfig {
  kc: KubeConfig;
  /** 'flag', 'KUBECONFIG', 'in-cluster' or 'home'. */
  source: 'flag' | 'KUBECONFIG' | 'in-cluster' | 'home';
  server: string;
  /** The context's namespace, the service account's namespace in-cluster, or undefined. */
  namespace?: string;
}

/** The value of `--kubeconfig PATH` or `--kubeconfig=PATH` in argv, if any. */
export function kubeconfigFlag(argv: readonly string[] = process.argv.slice(2)): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--kubeconfig') return argv[i + 1];
    if (a.startsWith('--kubeconfig=')) return a.slice('--kubeconfig='.length);
  }
  return undefined;
}

export function loadKubeConfig(opts: LoadKubeConfigOptions = {}): LoadedKubeConfig {
  const env = opts.env ?? process.env;
  const root = opts.inClusterRoot ?? '';
  const saDir = `${root}${SERVICE_ACCOUNT_DIR}`;
  const kc = new KubeConfig();
  let source: LoadedKubeConfig['source'];
  const tried: string[] = [];

  if (opts.kubeconfig) {
    if (!existsSync(opts.kubeconfig)) throw new Error(`--kubeconfig ${opts.kubeconfig}: no such file`);
    loadFile(kc, opts.kubeconfig);
    source = 'flag';
  } else if (env['KUBECONFIG']) {
    const files = env['KUBECONFIG'].split(delimiter).filter(Boolean);
    const present = files.filter((f) => existsSync(f));
    if (present.length === 0) throw new Error(`KUBECONFIG=${env['KUBECONFIG']}: none of these files exists`);
    loadFile(kc, present[0]!);
    for (const f of present.slice(1)) {
      const more = new KubeConfig();
      loadFile(more, f);
      kc.mergeConfig(more, true);
    }
    source = 'KUBECONFIG';
  } else if (env['KUBERNETES_SERVICE_HOST'] && env['KUBERNETES_SERVICE_PORT'] && existsSync(join(saDir, 'token'))) {
    // loadFromCluster reads KUBERNETES_SERVICE_HOST/PORT from process.env.
    const saved = { host: process.env['KUBERNETES_SERVICE_HOST'], port: process.env['KUBERNETES_SERVICE_PORT'] };
    process.env['KUBERNETES_SERVICE_HOST'] = env['KUBERNETES_SERVICE_HOST'];
    process.env['KUBERNETES_SERVICE_PORT'] = env['KUBERNETES_SERVICE_PORT'];
    try {
      kc.loadFromCluster(root);
    } finally {
      restoreEnv('KUBERNETES_SERVICE_HOST', saved.host);
      restoreEnv('KUBERNETES_SERVICE_PORT', saved.port);
    }
    source = 'in-cluster';
  } else {
    tried.push('--kubeconfig (not given)', 'KUBECONFIG (unset)', `in-cluster (KUBERNETES_SERVICE_HOST unset or no ${join(saDir, 'token')})`);
    const file = join(opts.home ?? homedir(), '.kube', 'config');
    if (!existsSync(file)) throw new Error(`no Kubernetes configuration found; tried ${[...tried, file].join(', ')}`);
    loadFile(kc, file);
    source = 'home';
  }

  if (opts.context) {
    if (!kc.getContextObject(opts.context)) throw new Error(`kubeconfig (${source}) has no context ${opts.context}`);
    kc.setCurrentContext(opts.context);
  }
  const cluster = kc.getCurrentCluster();
  if (!kc.getCurrentContext()) throw new Error(`kubeconfig (${source}) has no current-context`);
  if (!cluster) throw new Error(`kubeconfig (${source}): context ${kc.getCurrentContext()} has no cluster`);
  if (!cluster.server) throw new Error(`kubeconfig (${source}): cluster ${cluster.name} has no server`);
  let server: URL;
  try {
    server = new URL(cluster.server);
  } catch {
    throw new Error(`kubeconfig (${source}): cluster ${cluster.name} has an invalid server ${JSON.stringify(cluster.server)}`);
  }
  if (server.protocol !== 'https:' && server.protocol !== 'http:') throw new Error(`kubeconfig (${source}): server ${cluster.server} is not http(s)`);

  let namespace = kc.getContextObject(kc.getCurrentContext())?.namespace?.trim() || undefined;
  if (!namespace && source === 'in-cluster') namespace = inClusterNamespace(env, saDir);
  return { kc, source, server: cluster.server, namespace };
}

/** POD_NAMESPACE (Downward API), else the service account's namespace file, else undefined. */
export function inClusterNamespace(env: Record<string, string | undefined> = process.env, saDir = SERVICE_ACCOUNT_DIR): string | undefined {
  if (env['POD_NAMESPACE']) return env['POD_NAMESPACE'];
  try {
    return readFileSync(join(saDir, 'namespace'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

function restoreEnv(k: string, v: string | undefined): void {
  if (v === undefined) delete process.env[k];
  else process.env[k] = v;
}

function loadFile(kc: KubeConfig, file: string): void {
  try {
    kc.loadFromFile(file);
  } catch (e) {
    throw new Error(`kubeconfig ${file}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

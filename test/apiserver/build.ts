// Builds (once) and caches the Go test control plane in test/apiserver/harness
// (embedded etcd + kube-apiserver from the k8s.io/kubernetes modules).
//
// The binary is cached at $LVS_CACHE_DIR/apiserver/<hash>/lvs-test-apiserver,
// where <hash> covers go.mod, go.sum, every .go file and the build recipe below,
// so a warm run only hashes a few files. A cold build compiles k8s.io/kubernetes
// and takes several minutes on 2 cores; `go` fetches modules from GOPROXY.
//
//   node test/apiserver/build.ts      # or: bash scripts/apiserver-build.sh
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, openSync, closeSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const HARNESS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'harness');
/** Bump when the build command below changes in a way the hash would not see. */
const RECIPE = 'r1 -trimpath -ldflags=-s -w +version';

export function cacheDir(): string {
  return process.env['LVS_CACHE_DIR'] || join(homedir(), '.cache', 'lvs-operator');
}

function sourceFiles(): string[] {
  return readdirSync(HARNESS_DIR)
    .filter((f) => f === 'go.mod' || f === 'go.sum' || f.endsWith('.go'))
    .sort();
}

export function harnessHash(): string {
  const h = createHash('sha256');
  h.update(`${RECIPE}\0${process.arch}\0`);
  for (const f of sourceFiles()) {
    h.update(`${f}\0`);
    h.update(readFileSync(join(HARNESS_DIR, f)));
    h.update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

/** The k8s.io/kubernetes version pinned in go.mod, e.g. v1.35.8. */
export function pinnedKubernetesVersion(): string {
  const m = /^\s*k8s\.io\/kubernetes\s+(v\d+\.\d+\.\d+)\s*$/m.exec(readFileSync(join(HARNESS_DIR, 'go.mod'), 'utf8'));
  if (!m?.[1]) throw new Error('k8s.io/kubernetes not found in test/apiserver/harness/go.mod');
  return m[1];
}

export function binaryPath(): string {
  return join(cacheDir(), 'apiserver', harnessHash(), 'lvs-test-apiserver');
}

function findGo(): string {
  if (process.env['GO']) return process.env['GO'];
  for (const d of (process.env['PATH'] ?? '').split(delimiter)) {
    if (d && existsSync(join(d, 'go'))) return join(d, 'go');
  }
  if (existsSync('/usr/local/go/bin/go')) return '/usr/local/go/bin/go';
  throw new Error('Go toolchain not found: install Go >= 1.25 (PATH, /usr/local/go/bin or $GO)');
}

function tail(file: string, lines = 40): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export interface BuildResult {
  path: string;
  built: boolean;
  ms: number;
}

/** Returns the cached binary, building it first if missing (synchronous; can take minutes cold). */
export function ensureApiServerBinary(opts: { log?: (msg: string) => void } = {}): BuildResult {
  const t0 = Date.now();
  const bin = binaryPath();
  if (existsSync(bin)) return { path: bin, built: false, ms: Date.now() - t0 };
  const log = opts.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const dir = dirname(bin);
  mkdirSync(dir, { recursive: true });
  const logFile = join(dir, 'build.log');
  const tmp = `${bin}.tmp-${process.pid}`;
  const v = pinnedKubernetesVersion();
  const [major, minor] = v.slice(1).split('.');
  const pkg = 'k8s.io/component-base/version';
  // Without these the server reports v0.0.0-master, which breaks `kubectl version`
  // checks and helm charts with a kubeVersion constraint.
  const ldflags = ['-s', '-w', `-X ${pkg}.gitVersion=${v}`, `-X ${pkg}.gitMajor=${major}`, `-X ${pkg}.gitMinor=${minor}`,
    `-X ${pkg}.gitTreeState=clean`, `-X ${pkg}.gitCommit=lvs-test-apiserver`].join(' ');
  const go = findGo();
  log(`lvs-test-apiserver: building ${v} into ${bin} (cold builds take minutes; log: ${logFile})`);
  const env = {
    ...process.env,
    // -mod=readonly: go.sum is committed and complete; -buildvcs=false: no git needed.
    GOFLAGS: [...(process.env['GOFLAGS'] ?? '').split(/\s+/).filter((f) => f && !/^-(mod|buildvcs)=/.test(f)), '-mod=readonly', '-buildvcs=false'].join(' '),
    CGO_ENABLED: '0',
  };
  const fd = openSync(logFile, 'w');
  try {
    for (const args of [['mod', 'download', '-x'], ['build', '-trimpath', '-ldflags', ldflags, '-o', tmp, '.']]) {
      const r = spawnSync(go, args, { cwd: HARNESS_DIR, env, stdio: ['ignore', fd, fd] });
      if (r.status !== 0) {
        rmSync(tmp, { force: true });
        throw new Error(`go ${args[0]} failed (${r.error?.message ?? `exit ${r.status}`}); tail of ${logFile}:\n${tail(logFile)}`);
      }
    }
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, bin); // atomic; a concurrent build of the same hash just overwrites
  return { path: bin, built: true, ms: Date.now() - t0 };
}

if (import.meta.main) {
  const r = ensureApiServerBinary();
  process.stdout.write(`${JSON.stringify(r)}\n`);
}

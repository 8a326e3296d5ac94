// `npm run test:vm [-- <jest args, e.g. a test path filter>]`: boots ONE lab VM (test/vm/lab.ts) and runs the
// jest `kernel` project (test/kernel/**/*.test.ts) inside it, in band. Exits with jest's exit code.
//
// Environment: LVS_VM_TIMEOUT_MS (default 3600000), LVS_VM_MEMORY_MIB (4096), LVS_VM_CPUS (2),
// LVS_VM_VERBOSE_KERNEL=1 (boot log on the console), LVS_CACHE_DIR (cache root, see lab.ts),
// LVS_VM_JEST_CACHE=tmpfs (throw-away jest cache instead of the persistent one, e.g. to rule out a stale cache).
// The jest cache and Node's compile cache live on the host in $LVS_CACHE_DIR/vm/jest-cache (shared read-write
// into the VM), so ts-jest compiles each test file once instead of on every boot (TCG makes that slow).
// Jest runs in band (one process: under TCG a worker costs ~10 s of start-up); pass -w N to get workers.
//
// The whole-stack suites (test/kernel/stack-*.test.ts and failover-*.test.ts: controller + agents in cluster mode) need a Kubernetes
// API: a real kube-apiserver from the test harness (test/apiserver/harness.ts) runs on the HOST, natively, and
// the VM reaches it through QEMU's user-mode network with restrict=on and a single guestfwd (lab.ts
// HostForward): nothing else leaves the VM. Kubeconfigs pointing at the in-VM relay address (see
// test/kernel/cluster-lab.ts) are shared read-only at $LVS_VM_KUBECONFIG_DIR. It starts when the selected
// suites include a stack suite, or always with LVS_VM_APISERVER=1 (never with LVS_VM_APISERVER=0).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { VmTimeoutError, runInVm, vmCacheDir } from './lab.ts';
import { startHostApi, type HostApi } from './host-api.ts';
import { API_RELAY_URL } from '../kernel/cluster-env.ts';

const repo = path.resolve(import.meta.dirname, '..', '..');
const extraArgs = process.argv.slice(2).filter((a, i) => !(i === 0 && a === '--'));
const log = (msg: string): void => {
  process.stderr.write(`[test:vm] ${msg}\n`);
};

const suites = fs.globSync('test/kernel/**/*.test.ts', { cwd: repo });
if (suites.length === 0) {
  log('FAIL: no kernel suites found (test/kernel/**/*.test.ts): refusing to report success');
  process.exit(1);
}

const persistentCache = process.env.LVS_VM_JEST_CACHE !== 'tmpfs';
const jestCache = path.join(vmCacheDir(), 'jest-cache');
const guestJestCache = persistentCache ? '/var/cache/lvs-operator-jest' : '/tmp/jest-cache';
const wantsWorkers = extraArgs.some((a) => /^(-w|--maxWorkers|--max-workers)(=|$)/.test(a));
const envNum = (name: string, dflt: number): number => {
  const v = process.env[name];
  const n = v === undefined ? dflt : Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${v}`);
  return n;
};

/** Jest treats positional arguments as test path regexes: does this run select any suite that needs the API? */
function selectsStackSuite(): boolean {
  const stack = suites.filter((s) => /(^|\/)(stack|failover)-[^/]*\.test\.ts$/.test(s));
  if (stack.length === 0) return false;
  const patterns = extraArgs.filter((a) => !a.startsWith('-'));
  if (patterns.length === 0) return true;
  return stack.some((s) => patterns.some((p) => {
    try {
      return new RegExp(p).test(s);
    } catch {
      return s.includes(p);
    }
  }));
}

const apiMode = process.env.LVS_VM_APISERVER ?? 'auto';
let hostApi: HostApi | undefined;
if (apiMode === '1' || (apiMode !== '0' && selectsStackSuite())) {
  hostApi = await startHostApi({ log });
  log(`kube-apiserver ${hostApi.api.version} on the host at ${hostApi.api.url} (ready in `
    + `${(hostApi.api.startupMs / 1000).toFixed(1)} s), reachable in the VM as ${API_RELAY_URL}`);
}
const stopApi = async (): Promise<void> => {
  await hostApi?.stop();
};

try {
  const t0 = Date.now();
  const result = await runInVm({
    command: [process.execPath, path.join(repo, 'node_modules', 'jest', 'bin', 'jest.js'),
      // Jest's haste map crawls every root with find(1); the default root (the repo, node_modules included:
      // ~24k files) costs ~35 s over 9p under TCG. Test files only live in test/kernel; imports resolve anyway.
      // (--roots and --selectProjects are array options: keep a non-array option between them and extraArgs.)
      '--roots', '<rootDir>/test/kernel', '--selectProjects', 'kernel', '--ci', ...(wantsWorkers ? [] : ['--runInBand']),
      '--cacheDirectory', guestJestCache, ...extraArgs],
    cwd: repo,
    env: {
      NODE_OPTIONS: '--experimental-vm-modules --disable-warning=ExperimentalWarning',
      NODE_COMPILE_CACHE: path.join(guestJestCache, 'node-compile-cache'),
      ...hostApi?.vm.env,
    },
    shares: [...(persistentCache ? [{ hostPath: jestCache, guestPath: guestJestCache }] : []), ...(hostApi?.vm.shares ?? [])],
    hostForwards: hostApi?.vm.hostForwards ?? [],
    timeoutMs: envNum('LVS_VM_TIMEOUT_MS', 60 * 60_000),
    memoryMiB: envNum('LVS_VM_MEMORY_MIB', 4096),
    cpus: envNum('LVS_VM_CPUS', 2),
    verboseKernel: process.env.LVS_VM_VERBOSE_KERNEL === '1',
    stream: true,
    log,
  });
  if (result.kernelWarnings.length > 0) {
    log(`kernel warnings during the run:\n  ${result.kernelWarnings.join('\n  ')}`);
  }
  log(`jest exited with ${result.exitCode}; VM boot ${(result.bootMs / 1000).toFixed(1)} s, `
    + `jest ${((result.durationMs - result.bootMs) / 1000).toFixed(1)} s, total ${((Date.now() - t0) / 1000).toFixed(1)} s`
    + `${Number.isNaN(result.guestClockRatio) ? '' : `, guest clock ${result.guestClockRatio.toFixed(2)}x`}`);
  await stopApi();
  const informational = extraArgs.some((a) => /^--(listTests|showConfig|help|version)$/.test(a));
  if (result.exitCode === 0 && !informational && !/^Tests:\s+.*\d+ passed/m.test(result.output)) {
    log('FAIL: jest exited 0 but reported no passed tests');
    process.exit(1);
  }
  process.exit(result.exitCode);
} catch (e) {
  await stopApi().catch(() => undefined);
  log(e instanceof VmTimeoutError ? e.message : `FAIL: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  process.exit(e instanceof VmTimeoutError ? 124 : 125);
}

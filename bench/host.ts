// The host side of the benchmarks that run inside the lab VM: where results go, running a benchmark file in
// the VM with its knobs, and the host's load average next to the results (the VM's vCPUs are host threads, so
// the host's load shows up in the tail).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const REPO = path.resolve(import.meta.dirname, '..');

/** $LVS_VM_OUT or bench/results (created). */
export function resultsDir(): string {
  const dir = process.env.LVS_VM_OUT ?? path.join(REPO, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** Adds the host's load average before and after a run to `<dir>/<name>.json` and `.md`. */
export function recordHostLoad(dir: string, name: string, before: number[], after: number[] = os.loadavg()): void {
  const load = { before: before.map((x) => Number(x.toFixed(2))), after: after.map((x) => Number(x.toFixed(2))), cores: os.availableParallelism() };
  const json = path.join(dir, `${name}.json`);
  fs.writeFileSync(json, `${JSON.stringify({ ...(JSON.parse(fs.readFileSync(json, 'utf8')) as object), hostLoadAverage: load }, null, 2)}\n`);
  fs.appendFileSync(path.join(dir, `${name}.md`), `\nHost load average (1/5/15 min) before ${load.before.join(' / ')}, after ${load.after.join(' / ')} on ${load.cores} cores.\n`);
}

/**
 * Runs benchmark `file` in the lab VM (test/vm/run.ts), which writes `<name>.json`/`.md` into resultsDir(),
 * then records the host's load with them. The VM does not inherit this environment: the BENCH_* knobs and the
 * results directory are passed on explicitly.
 */
export function runBenchInVm(file: string, name: string, timeoutSeconds: number): void {
  const dir = resultsDir();
  const env = Object.entries(process.env).flatMap(([k, v]) => (k.startsWith('BENCH_') && v !== undefined ? ['--env', `${k}=${v}`] : []));
  const before = os.loadavg();
  execFileSync(process.execPath, [path.join(REPO, 'test/vm/run.ts'), '--timeout', String(timeoutSeconds), '--out', dir, ...env, '--', process.execPath, '--no-warnings', file], { stdio: 'inherit' });
  recordHostLoad(dir, name, before);
}

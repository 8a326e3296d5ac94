// Runs any command inside the lab VM (test/vm/lab.ts) and exits with its exit code.
//
//   node test/vm/run.ts [options] -- <command> [args...]
//
// Options:
//   --timeout <seconds>   hard limit for boot + command (default 1800; QEMU is killed when it expires)
//   --memory <MiB>        guest memory (default 4096)
//   --cpus <n>            vCPUs (default 2)
//   --cwd <dir>           working directory in the guest (default: the current directory)
//   --out <dir>           host directory shared read-write at the SAME path in the guest and exported as
//                         $LVS_VM_OUT (default: <repo>/bench/results); repeatable for more read-write dirs
//   --env NAME=VALUE      extra guest environment (repeatable)
//   --forward G:H         guest connections to 10.0.2.100:G reach the host's 127.0.0.1:H (QEMU user network,
//                         restrict=on: nothing else leaves the VM); repeatable
//   --quiet               do not echo the console (the output is still printed if the command fails)
//   --verbose-kernel      show the kernel boot log
//
// Everything else in the guest is the host's root filesystem, read-only underneath a throw-away tmpfs overlay,
// so results must be written below an --out directory (e.g. bench/*.ts writes bench/results/<file>).
import * as path from 'node:path';
import { VmTimeoutError, runInVm, type HostForward } from './lab.ts';

const repo = path.resolve(import.meta.dirname, '..', '..');

function usage(msg: string): never {
  process.stderr.write(`test/vm/run.ts: ${msg}\nusage: node test/vm/run.ts [--timeout s] [--memory MiB] [--cpus n] `
    + '[--cwd dir] [--out dir]... [--env K=V]... [--forward guestPort:hostPort]... [--quiet] [--verbose-kernel] -- <command> [args...]\n');
  process.exit(2);
}

const argv = process.argv.slice(2);
const sep = argv.indexOf('--');
const optArgs = sep >= 0 ? argv.slice(0, sep) : [];
const command = sep >= 0 ? argv.slice(sep + 1) : argv;
if (command.length === 0) usage('no command given');

let timeoutSec = 1800;
let memoryMiB = 4096;
let cpus = 2;
let cwd = process.cwd();
let quiet = false;
let verboseKernel = false;
const outs: string[] = [];
const env: Record<string, string> = {};
const hostForwards: HostForward[] = [];
for (let i = 0; i < optArgs.length; i++) {
  const a = optArgs[i];
  const value = (): string => {
    const v = optArgs[++i];
    if (v === undefined) usage(`${a} needs a value`);
    return v;
  };
  const num = (): number => {
    const n = Number(value());
    if (!Number.isFinite(n) || n <= 0) usage(`${a} needs a positive number`);
    return n;
  };
  switch (a) {
    case '--timeout': timeoutSec = num(); break;
    case '--memory': memoryMiB = num(); break;
    case '--cpus': cpus = num(); break;
    case '--cwd': cwd = path.resolve(value()); break;
    case '--out': outs.push(path.resolve(value())); break;
    case '--env': {
      const kv = value();
      const eq = kv.indexOf('=');
      if (eq <= 0) usage(`--env needs NAME=VALUE, got ${kv}`);
      env[kv.slice(0, eq)] = kv.slice(eq + 1);
      break;
    }
    case '--forward': {
      const m = /^(\d+):(\d+)$/.exec(value());
      if (!m) usage('--forward needs guestPort:hostPort');
      hostForwards.push({ guestPort: Number(m[1]), hostPort: Number(m[2]) });
      break;
    }
    case '--quiet': quiet = true; break;
    case '--verbose-kernel': verboseKernel = true; break;
    default: usage(`unknown option ${a}`);
  }
}
if (outs.length === 0) outs.push(path.join(repo, 'bench', 'results'));
const [out, ...moreOuts] = outs as [string, ...string[]];

const log = (msg: string): void => {
  process.stderr.write(`[vm] ${msg}\n`);
};
try {
  const r = await runInVm({
    command, cwd, env, memoryMiB, cpus, verboseKernel, hostForwards,
    timeoutMs: timeoutSec * 1000,
    outDir: out,
    outGuestPath: out,
    shares: moreOuts.map((d) => ({ hostPath: d, guestPath: d })),
    stream: !quiet,
    log,
  });
  if (quiet && r.exitCode !== 0) process.stdout.write(r.output);
  if (r.kernelWarnings.length > 0) log(`kernel warnings during the run:\n  ${r.kernelWarnings.join('\n  ')}`);
  log(`exit ${r.exitCode}; boot ${(r.bootMs / 1000).toFixed(1)} s, total ${(r.durationMs / 1000).toFixed(1)} s`);
  process.exit(r.exitCode);
} catch (e) {
  log(e instanceof Error ? e.message : String(e));
  process.exit(e instanceof VmTimeoutError ? 124 : 125);
}

// Runs a benchmark's process under the memory limit its Pod gets: Node sizes its V8 heap from the cgroup's
// limit (768Mi gives 384 MiB old + 48 MiB young generation), which flags only approximate (a plain
// --max-old-space-size leaves the young generation at its 192 MiB host default), and going over the limit
// becomes an OOM kill instead of a number.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';

const ROOT = '/sys/fs/cgroup';

/** A Kubernetes memory quantity ("768Mi", "1Gi", "500M", "1048576") in bytes. */
export function memoryQuantityBytes(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(q.trim());
  if (!m) throw new Error(`not a memory quantity: '${q}'`);
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2] ?? ''] ?? 1;
  return Math.round(Number(m[1]) * unit);
}

/** The chart's default memory limit for a component (`controller`, `agent`), from values.yaml. */
export function chartMemoryLimit(chartDir: string, component: string): string {
  const values = parse(fs.readFileSync(path.join(chartDir, 'values.yaml'), 'utf8')) as Record<string, { resources?: { limits?: { memory?: string } } }>;
  const limit = values[component]?.resources?.limits?.memory;
  if (!limit) throw new Error(`${chartDir}/values.yaml: no ${component}.resources.limits.memory`);
  return limit;
}

export interface MemoryLimit {
  /** The limit as given, and in bytes. */
  readonly quantity: string;
  readonly bytes: number;
  /** How it is enforced: a memory cgroup, or (no writable cgroup) heap flags as Node would pick them. */
  readonly how: 'cgroup v2' | 'cgroup v1' | 'node flags';
  /** Command and arguments that run `argv` under the limit. */
  wrap(argv: readonly string[]): [string, string[]];
  /** V8's heap_size_limit (MiB) of this Node binary started as wrap() starts it, measured when the limit was made. */
  readonly heapLimitMiB: number;
  /** OOM kills in the cgroup so far (0 without one). */
  oomKills(): number;
  /** Removes the cgroup (its processes must have exited). */
  remove(): void;
}

function tryWrite(file: string, value: string): boolean {
  try {
    fs.writeFileSync(file, value);
    return true;
  } catch {
    return false;
  }
}

function counter(file: string, key: string): number {
  try {
    return Number(new RegExp(`^${key} (\\d+)$`, 'm').exec(fs.readFileSync(file, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/**
 * A fresh memory cgroup `name` limited to `quantity` (swap off where the kernel allows), v2 or v1, whichever
 * this host has and lets us write; else Node heap flags (old space half the limit, semi-spaces of 16 MiB: what
 * Node picks under a cgroup limit of 768Mi, measured).
 */
export function memoryLimit(name: string, quantity: string, opts: { cgroup?: boolean } = {}): MemoryLimit {
  const bytes = memoryQuantityBytes(quantity);
  const sh = (dir: string) => (argv: readonly string[]): [string, string[]] =>
    ['/bin/sh', ['-c', `echo $$ > "$0/cgroup.procs" && exec "$@"`, dir, ...argv]];
  const heap = (wrap: (argv: readonly string[]) => [string, string[]]): number => {
    const [cmd, args] = wrap([process.execPath, '-p', 'require("node:v8").getHeapStatistics().heap_size_limit']);
    return Math.round(Number(execFileSync(cmd, args, { encoding: 'utf8' }).trim()) / 2 ** 20);
  };
  const v2 = fs.existsSync(`${ROOT}/cgroup.controllers`) && fs.readFileSync(`${ROOT}/cgroup.controllers`, 'utf8').split(/\s+/).includes('memory');
  const dir = v2 ? path.join(ROOT, name) : path.join(ROOT, 'memory', name);
  let made = false;
  try {
    if (opts.cgroup === false) throw new Error('no cgroup wanted');
    if (!v2 && !fs.existsSync(path.join(ROOT, 'memory', 'memory.limit_in_bytes'))) throw new Error('no memory cgroup');
    if (v2) tryWrite(path.join(ROOT, 'cgroup.subtree_control'), '+memory');
    fs.mkdirSync(dir);
    made = true;
    fs.writeFileSync(path.join(dir, v2 ? 'memory.max' : 'memory.limit_in_bytes'), String(bytes));
    if (v2) tryWrite(path.join(dir, 'memory.swap.max'), '0');
    else tryWrite(path.join(dir, 'memory.memsw.limit_in_bytes'), String(bytes));
    const wrap = sh(dir);
    const heapLimitMiB = heap(wrap); // also shows that entering the cgroup works here (else: flags)
    return {
      quantity, bytes, how: v2 ? 'cgroup v2' : 'cgroup v1', wrap, heapLimitMiB,
      oomKills: () => counter(path.join(dir, v2 ? 'memory.events' : 'memory.oom_control'), 'oom_kill'),
      remove: () => fs.rmdirSync(dir),
    };
  } catch {
    if (made) fs.rmdirSync(dir);
    const flags = [`--max-old-space-size=${Math.floor(bytes / 2 / 2 ** 20)}`, '--max-semi-space-size=16'];
    const wrap = (argv: readonly string[]): [string, string[]] => [argv[0]!, [...flags, ...argv.slice(1)]];
    return { quantity, bytes, how: 'node flags', wrap, heapLimitMiB: heap(wrap), oomKills: () => 0, remove: () => undefined };
  }
}

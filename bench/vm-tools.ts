// Helpers of the benchmarks that run inside the lab VM and time command-line tools against our code.
import { spawnSync } from 'node:child_process';

/** Runs `argv` to its end (stdin `input`), timed; throws with its stderr unless it exits 0. */
export function run(argv: string[], input?: string, env?: NodeJS.ProcessEnv): { ms: number; stdout: string } {
  const t0 = performance.now();
  const r = spawnSync(argv[0] as string, argv.slice(1), { input, encoding: 'utf8', maxBuffer: 1 << 30, env: env ?? process.env });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status}): ${r.stderr}`);
  return { ms, stdout: r.stdout };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

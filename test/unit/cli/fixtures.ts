// The ipvsadm fixtures (test/fixtures/ipvsadm/, see its README) and helpers shared by the CLI suites.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, type Io } from '../../../src/cli/main.ts';

export const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
export const FIXTURES = join(ROOT, 'test', 'fixtures', 'ipvsadm');

/** Every rules fixture (*.rules), by base name. */
export const RULE_FIXTURES = readdirSync(FIXTURES).filter((f) => f.endsWith('.rules')).map((f) => f.slice(0, -'.rules'.length)).sort();

export const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');
export const fixturePath = (name: string): string => join(FIXTURES, name);

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `kubectl lvs ARGV` in-process with `stdin` as standard input. */
export async function cli(argv: string[], stdin = ''): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const io: Io = {
    stdout: (s) => void (stdout += s),
    stderr: (s) => void (stderr += s),
    stdin: () => stdin,
    // No kubeconfig anywhere: offline commands must not need one.
    env: { HOME: '/nonexistent' },
  };
  const code = await run(argv, io);
  return { code, stdout, stderr };
}

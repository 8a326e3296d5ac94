// runMain must keep the process alive while main waits only on unref'd timers (an informer's backoff while
// the apiserver answers 429 at start-up): Node would otherwise exit 0 with main never finished.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const PROCESS_TS = fileURLToPath(new URL('../../../src/util/process.ts', import.meta.url));

const run = (body: string): { status: number | null; stderr: string } => {
  const script = `import { runMain } from ${JSON.stringify(PROCESS_TS)};\n${body}`;
  const r = spawnSync(process.execPath, ['--no-warnings', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stderr: r.stderr };
};

describe('runMain', () => {
  test('waits for a main that only has unref\'d timers pending, and exits with its code', () => {
    const r = run(`runMain(() => new Promise((resolve) => setTimeout(() => resolve(7), 300).unref()));`);
    expect(r.status).toBe(7);
  });

  test('a thrown error becomes one fatal JSON line and exit 1', () => {
    const r = run(`runMain(async () => { throw new Error('boom on node web1'); });`);
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stderr.trim())).toEqual({ level: 'fatal', msg: 'boom on node web1' });
  });
});

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The interface of the IPv4 (else IPv6) default route, as `ip route` reports it. */
export async function defaultRouteInterface(): Promise<string> {
  for (const family of ['-4', '-6']) {
    const { stdout } = await run('ip', ['-j', family, 'route', 'show', 'default']);
    const routes = JSON.parse(stdout || '[]') as Array<{ dev?: string }>;
    const dev = routes.find((r) => r.dev)?.dev;
    if (dev) return dev;
  }
  throw new Error('no default route: set the interface explicitly (--interface, or spec.directors.interface)');
}

// docker cannot run in CI here, so the Dockerfile is checked by reading it: the stages, what the
// runtime image contains, and that what the chart and the controller run exists in it.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, render } from './helm.ts';
import { ANNOUNCE_PACKAGES } from '../../../src/netif/arp.ts';

const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const dockerignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
// instructions, with continuation lines joined
const instructions = dockerfile.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
const stages = instructions.reduce<string[][]>((acc, l) => {
  if (/^FROM\s/i.test(l)) acc.push([]);
  acc.at(-1)?.push(l);
  return acc;
}, []);

describe('Dockerfile', () => {
  it('builds in node:24-bookworm-slim and runs on it', () => {
    expect(instructions).toContain('ARG NODE_IMAGE=node:24-bookworm-slim');
    expect(stages).toHaveLength(2);
    expect(stages[0]![0]).toBe('FROM ${NODE_IMAGE} AS build');
    expect(stages[1]![0]).toBe('FROM ${NODE_IMAGE}');
  });

  it('build stage: npm ci, build, prune dev dependencies', () => {
    const run = stages[0]!.filter((l) => l.startsWith('RUN ')).join(' ');
    expect(run).toMatch(/npm ci\b/);
    expect(run).toMatch(/npm run build\b/);
    expect(run).toMatch(/npm prune --omit=dev\b/);
    expect(run.indexOf('npm run build')).toBeLessThan(run.indexOf('npm prune'));
  });

  it('runtime stage: the tools, the app, a non-root default user and no ENTRYPOINT', () => {
    const rt = stages[1]!;
    const apt = rt.find((l) => l.includes('apt-get install'))!;
    // The announcers' tools (arping, na6) come from ANNOUNCE_PACKAGES, so a new one cannot be forgotten here.
    for (const p of ['iproute2', 'kmod', 'ipvsadm', ...Object.values(ANNOUNCE_PACKAGES)]) expect(apt.split(/\s+/)).toContain(p);
    expect(apt).toContain('--no-install-recommends');
    expect(apt).toContain('rm -rf /var/lib/apt/lists/*');
    for (const what of ['package.json', 'node_modules', 'dist', 'crds']) expect(rt).toContain(`COPY --from=build /src/${what} ./${what}`);
    expect(rt).toContain('USER 65532:65532');
    expect(rt).toContain('ENTRYPOINT []');
    expect(rt.findIndex((l) => l.startsWith('USER'))).toBeGreaterThan(rt.findIndex((l) => l.includes('apt-get install')));
  });

  it('provides the commands the chart and the agent DaemonSets run', () => {
    const deploy = render().find((o) => o.kind === 'Deployment')!;
    const cmd = ((deploy['spec'] as { template: { spec: { containers: Array<{ command: string[] }> } } }).template.spec.containers[0]!.command)[0]!;
    expect(cmd).toBe('lvs-controller');
    for (const [bin, entry] of [['lvs-controller', 'controller'], ['lvs-agent', 'agent'], ['kubectl-lvs', 'cli']] as const) {
      expect(dockerfile).toContain(`exec node /app/dist/${entry}/main.js "$@"\\n' > /usr/local/bin/${bin}`);
      // the entry point is compiled from src/<entry>/main.ts
      expect(existsSync(join(ROOT, 'src', entry, 'main.ts'))).toBe(true);
    }
    expect(dockerfile).toContain('chmod 0755 /usr/local/bin/lvs-controller /usr/local/bin/lvs-agent /usr/local/bin/kubectl-lvs');
  });

  it('copies only what the .dockerignore allow-list lets in, and that exists', () => {
    expect(dockerignore[0]).toBe('*');
    const allowed = dockerignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
    const copied = stages[0]!.filter((l) => /^COPY\s/.test(l)).flatMap((l) => l.split(/\s+/).slice(1, -1));
    expect(copied.sort()).toEqual(['crds', 'package-lock.json', 'package.json', 'src', 'tsconfig.build.json', 'tsconfig.json']);
    for (const c of copied) {
      expect(allowed).toContain(c);
      expect(existsSync(join(ROOT, c))).toBe(true);
    }
  });
});

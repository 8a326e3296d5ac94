// Keeps the documentation honest: every relative link (and #anchor) in README.md and docs/**/*.md resolves,
// every repository path and `npm run` script they name exists, every lvs_* metric they name is registered by
// the agent or the controller, the sysctl table in docs/troubleshooting.md is exactly what the policy sets,
// and README lists every page under docs/.
import { describe, expect, it } from '@jest/globals';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { createLvsMetrics } from '../../../src/agent/metrics/registry.ts';
import { Controller } from '../../../src/controller/controller.ts';
import { defaultConfig } from '../../../src/controller/config.ts';
import { createLogger } from '../../../src/util/log.ts';
import { sysctlsFor, type HostRole } from '../../../src/sysctl/policy.ts';
import { fromSysctlName } from '../../../src/sysctl/keys.ts';
import type { ForwardingMethod } from '../../../src/api/v1alpha1/virtualservice.ts';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

const docs = readdirSync(join(ROOT, 'docs'), { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.md'))
  .map((f) => join('docs', f))
  .sort();
const pages = ['README.md', ...docs];
const text = new Map(pages.map((p) => [p, readFileSync(join(ROOT, p), 'utf8')]));
const read = (page: string): string => text.get(page) ?? readFileSync(join(ROOT, page), 'utf8');

/** The lines of a Markdown page outside fenced code blocks, with their line numbers. */
function prose(page: string): Array<{ line: number; text: string }> {
  const out: Array<{ line: number; text: string }> = [];
  let fence: string | undefined;
  read(page).split('\n').forEach((l, i) => {
    const m = /^\s*(`{3,}|~{3,})/.exec(l);
    if (m) {
      const marker = m[1] as string;
      if (fence === undefined) fence = marker[0]!.repeat(marker.length);
      else if (marker.startsWith(fence)) fence = undefined;
      return;
    }
    if (fence === undefined) out.push({ line: i + 1, text: l });
  });
  return out;
}

/** GitHub's heading anchors: lower case, punctuation dropped (not - and _), each space a hyphen; repeats get -1, -2. */
function anchors(page: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const { text: l } of prose(page)) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(l);
    if (!m) continue;
    const rendered = (m[1] as string).replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/[`*]/g, '');
    const base = rendered.toLowerCase().replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, '').replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Inline links and images of a page, outside code (fenced blocks and `spans`). */
function links(page: string): Array<{ line: number; target: string }> {
  const out: Array<{ line: number; target: string }> = [];
  for (const { line, text: l } of prose(page)) {
    const noCode = l.replace(/`[^`]*`/g, '');
    for (const m of noCode.matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) out.push({ line, target: m[1] as string });
  }
  return out;
}

describe('documentation', () => {
  it('finds the pages it checks', () => {
    expect(pages).toEqual(expect.arrayContaining([
      'README.md', 'docs/troubleshooting.md', 'docs/benchmarks.md', 'docs/migration.md', 'docs/cli.md',
      'docs/tutorials/dr-lab.md', 'docs/tutorials/nat-lab.md', 'docs/tutorials/tunnel-lab.md',
    ]));
  });

  it('every relative link points to an existing file, and every #anchor to a heading there', () => {
    const broken: string[] = [];
    let checked = 0;
    for (const page of pages) {
      for (const { line, target } of links(page)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
        checked++;
        const [file = '', anchor] = target.split('#', 2);
        const abs = file ? resolve(ROOT, dirname(page), decodeURIComponent(file)) : join(ROOT, page);
        const where = `${page}:${line} → ${target}`;
        if (!abs.startsWith(ROOT) || !existsSync(abs)) {
          broken.push(`${where}: no such file`);
          continue;
        }
        if (anchor !== undefined) {
          const rel = relative(ROOT, abs);
          if (!rel.endsWith('.md') || statSync(abs).isDirectory()) broken.push(`${where}: anchor into a non-Markdown target`);
          else if (!anchors(rel).has(anchor)) broken.push(`${where}: no heading with anchor #${anchor} in ${rel}`);
        }
      }
    }
    expect(broken).toEqual([]);
    expect(checked).toBeGreaterThan(30);
  });

  it('every repository path the pages name exists (deploy/examples, bench/results, src, test, scripts, charts)', () => {
    const missing: string[] = [];
    const re = /(?<![\w/.-])((?:deploy|bench|src|test|scripts|charts)\/[\w./-]*\.(?:ts|ya?ml|md|json|sh))\b/g;
    let named = 0;
    for (const page of pages) {
      read(page).split('\n').forEach((l, i) => {
        for (const m of l.matchAll(re)) {
          named++;
          if (!existsSync(join(ROOT, m[1] as string))) missing.push(`${page}:${i + 1}: ${m[1]}`);
        }
      });
    }
    expect(missing).toEqual([]);
    // The three labs are named, so the check above covered them.
    const all = [...text.values()].join('\n');
    for (const lab of ['dr-lab', 'nat-lab', 'tunnel-lab']) expect(all).toContain(`deploy/examples/${lab}.yaml`);
    expect(named).toBeGreaterThan(20);
  });

  it('every `npm run X`, `npm start` and `npm test` the pages name is a script in package.json', () => {
    const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    const unknown: string[] = [];
    for (const page of pages) {
      read(page).split('\n').forEach((l, i) => {
        for (const m of l.matchAll(/\bnpm (?:run ([\w:.-]+)|(start|test)\b)/g)) {
          const name = (m[1] ?? m[2]) as string;
          if (!(name in scripts)) unknown.push(`${page}:${i + 1}: npm ${m[0].slice(4)}`);
        }
      });
    }
    expect(unknown).toEqual([]);
  });

  it('every lvs_* metric the pages name is exported by the agent or the controller (their real registries)', async () => {
    const names = new Set<string>();
    const addAll = async (registry: Registry): Promise<void> => {
      for (const m of await registry.getMetricsAsJSON()) {
        const { name, type } = m as unknown as { name: string; type: string };
        names.add(name);
        if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
      }
    };
    await addAll(createLvsMetrics({ readSnapshot: async () => [], log: createLogger('test', 'silent') }).registry);
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    const kc = new KubeConfig();
    kc.loadFromOptions({ clusters: [{ name: 'c', server: 'https://127.0.0.1:1' }], users: [{ name: 'u' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
    new Controller({ kc, namespace: 'lvs-system', config: defaultConfig(), log: createLogger('test', 'silent'), registry });
    await addAll(registry);
    expect(names).toContain('lvs_backend_healthy');
    expect(names).toContain('lvs_controller_writes_total');

    const unknown: string[] = [];
    let mentioned = 0;
    for (const page of pages) {
      read(page).split('\n').forEach((l, i) => {
        // Metric families only: keepalived's own lvs_sched, lvs_method, ... are configuration keywords.
        for (const m of l.matchAll(/\blvs_(?:agent|service|backend|controller)_[a-z0-9_]*[a-z0-9]\b/g)) {
          mentioned++;
          if (!names.has(m[0])) unknown.push(`${page}:${i + 1}: ${m[0]}`);
        }
      });
    }
    expect(unknown).toEqual([]);
    expect(mentioned).toBeGreaterThan(10);
  });

  it('the sysctl table of docs/troubleshooting.md is exactly what src/sysctl/policy.ts sets', () => {
    const page = read('docs/troubleshooting.md');
    const start = page.indexOf('<!-- sysctl-table');
    const end = page.indexOf('<!-- /sysctl-table -->');
    expect(start).toBeGreaterThan(0);
    expect(end).toBeGreaterThan(start);
    const modes: ForwardingMethod[] = ['DirectRouting', 'NAT', 'Tunnel'];
    const roles: HostRole[] = ['director', 'realserver'];
    const IFACE = 'eth0';
    const row = (role: string, mode: string, ipv6: boolean, key: string, value: string): string => `${role} ${mode}${ipv6 ? ' ipv6' : ''}: ${key}=${value}`;

    const documented = new Set<string>();
    const rows = page.slice(start, end).split('\n').filter((l) => /^\|\s*(director|realserver)\s*\|/.test(l));
    expect(rows.length).toBeGreaterThan(5);
    for (const r of rows) {
      const [role = '', forwarding = '', name = '', value = ''] = r.split('|').slice(1).map((c) => c.trim());
      const m = /^`([^`{]*)(?:\{([^}]*)\})?([^`]*)`$/.exec(name);
      if (!m) throw new Error(`sysctl table: cannot read ${name}`);
      const keys = (m[2] === undefined ? [''] : m[2].split(',')).map((part) =>
        fromSysctlName(`${m[1]}${part.replace('IFACE', IFACE)}${m[3]}`));
      const cases: Array<[string, boolean]> = forwarding === 'every' ? modes.flatMap((mode) => [[mode, false], [mode, true]] as Array<[string, boolean]>)
        : forwarding === 'NAT with an IPv6 VIP' ? [['NAT', true]]
          : modes.includes(forwarding as ForwardingMethod) ? [[forwarding, false], [forwarding, true]]
            : [];
      if (cases.length === 0) throw new Error(`sysctl table: unknown forwarding "${forwarding}"`);
      for (const [mode, ipv6] of cases) for (const key of keys) documented.add(row(role, mode, ipv6, key, value));
    }

    const policy = new Set<string>();
    for (const role of roles) {
      for (const mode of modes) {
        for (const ipv6 of [false, true]) {
          // The options the agent passes: directors say whether the VIP is IPv6, nothing else (no conntrack).
          for (const s of sysctlsFor(role, mode, IFACE, { ipv6 })) policy.add(row(role, mode, ipv6, s.key, s.value));
        }
      }
    }
    expect([...documented].sort()).toEqual([...policy].sort());
  });

  it('README lists every page under docs/', () => {
    const linked = new Set(links('README.md').map((l) => l.target.split('#')[0]));
    expect(docs.filter((d) => !linked.has(d))).toEqual([]);
  });
});

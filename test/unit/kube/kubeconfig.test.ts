import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SERVICE_ACCOUNT_DIR, inClusterNamespace, kubeconfigFlag, loadKubeConfig } from '../../../src/kube/kubeconfig.ts';

const dir = mkdtempSync(join(tmpdir(), 'kube-kubeconfig-test-'));
const kubeconfig = (name: string, server: string | undefined, ns?: string): string => {
  const file = join(dir, name);
  writeFileSync(file, `apiVersion: v1
kind: Config
current-context: ctx-${name}
clusters:
- name: c-${name}
  cluster:
${server === undefined ? '    insecure-skip-tls-verify: true' : `    server: ${server}`}
contexts:
- name: ctx-${name}
  context: { cluster: c-${name}, user: u-${name}${ns ? `, namespace: ${ns}` : ''} }
- name: other-${name}
  context: { cluster: c-${name}, user: u-${name}, namespace: other }
users:
- name: u-${name}
  user: { token: abc }
`);
  return file;
};

describe('loadKubeConfig', () => {
  it('--kubeconfig wins over KUBECONFIG', () => {
    const a = kubeconfig('a', 'https://a.example:6443', 'lab');
    const b = kubeconfig('b', 'https://b.example:6443');
    const r = loadKubeConfig({ kubeconfig: a, env: { KUBECONFIG: b } });
    expect(r).toMatchObject({ source: 'flag', server: 'https://a.example:6443', namespace: 'lab' });
  });

  it('KUBECONFIG lists are merged; missing files are skipped; none existing is an error', () => {
    const b = kubeconfig('b2', 'https://b.example:6443');
    const c = kubeconfig('c2', 'https://c.example:6443');
    const r = loadKubeConfig({ env: { KUBECONFIG: `${join(dir, 'nope')}:${b}:${c}` } });
    expect(r).toMatchObject({ source: 'KUBECONFIG', server: 'https://b.example:6443' });
    expect(r.kc.getContextObject('ctx-c2')).toBeTruthy();
    expect(() => loadKubeConfig({ env: { KUBECONFIG: join(dir, 'nope') } })).toThrow(/none of these files exists/);
  });

  it('a context may be chosen; unknown contexts are an error', () => {
    const a = kubeconfig('a3', 'https://a.example:6443');
    expect(loadKubeConfig({ kubeconfig: a, context: 'other-a3' }).namespace).toBe('other');
    expect(() => loadKubeConfig({ kubeconfig: a, context: 'nope' })).toThrow(/no context nope/);
  });

  it('refuses a cluster without a server instead of falling back to localhost:8080', () => {
    const f = kubeconfig('noserver', undefined);
    expect(() => loadKubeConfig({ kubeconfig: f })).toThrow(/noserver: clusters\[0\]\.cluster\.server is missing/);
    const empty = join(dir, 'empty');
    writeFileSync(empty, 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n');
    expect(() => loadKubeConfig({ kubeconfig: empty })).toThrow(/has no current-context/);
    const dangling = join(dir, 'dangling');
    writeFileSync(dangling, 'apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters: []\ncontexts: [{ name: x, context: { cluster: gone, user: u } }]\nusers: []\n');
    expect(() => loadKubeConfig({ kubeconfig: dangling })).toThrow(/context x has no cluster/);
    expect(() => loadKubeConfig({ kubeconfig: join(dir, 'missing') })).toThrow(/no such file/);
  });

  it('in-cluster: service host/port and the mounted token; namespace from POD_NAMESPACE or the mount', () => {
    const root = join(dir, 'root');
    const sa = join(root, SERVICE_ACCOUNT_DIR);
    mkdirSync(sa, { recursive: true });
    writeFileSync(join(sa, 'token'), 'tok');
    writeFileSync(join(sa, 'ca.crt'), 'ca');
    writeFileSync(join(sa, 'namespace'), 'lvs-system\n');
    const env = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' };
    const r = loadKubeConfig({ env, inClusterRoot: root, home: join(dir, 'nohome') });
    expect(r).toMatchObject({ source: 'in-cluster', server: 'https://10.96.0.1:443', namespace: 'lvs-system' });
    expect(loadKubeConfig({ env: { ...env, KUBERNETES_SERVICE_HOST: 'fd00::1' }, inClusterRoot: root }).server).toBe('https://[fd00::1]:443');
    expect(inClusterNamespace({ POD_NAMESPACE: 'from-downward-api' }, sa)).toBe('from-downward-api');
  });

  it('falls back to ~/.kube/config, and says what it tried when nothing is there', () => {
    const home = join(dir, 'home');
    mkdirSync(join(home, '.kube'), { recursive: true });
    expect(() => loadKubeConfig({ env: {}, home, inClusterRoot: join(dir, 'none') })).toThrow(/no Kubernetes configuration found; tried .*KUBECONFIG \(unset\)/);
    writeFileSync(join(home, '.kube', 'config'), `apiVersion: v1
kind: Config
current-context: h
clusters: [{ name: h, cluster: { server: 'https://home.example' } }]
contexts: [{ name: h, context: { cluster: h, user: h } }]
users: [{ name: h, user: { token: t } }]
`);
    expect(loadKubeConfig({ env: {}, home, inClusterRoot: join(dir, 'none') })).toMatchObject({ source: 'home', server: 'https://home.example' });
  });

  it('parses --kubeconfig in both spellings', () => {
    expect(kubeconfigFlag(['--node', 'x', '--kubeconfig', '/k'])).toBe('/k');
    expect(kubeconfigFlag(['--kubeconfig=/k2'])).toBe('/k2');
    expect(kubeconfigFlag(['--node', 'x'])).toBeUndefined();
  });
});

import { CHART_DIR, CUSTOM_VALUES, helm, valuesFile } from './helm.ts';

/** helm lint --strict; returns helm's whole output for the assertions. */
function lint(...args: string[]): { code: number; out: string } {
  const r = helm(['lint', '--strict', CHART_DIR, ...args]);
  return { code: r.code, out: `${r.stdout}${r.stderr}` };
}

describe('helm lint --strict', () => {
  it('passes with the default values', () => {
    const r = lint();
    expect(r.out).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(r.out).not.toMatch(/\[(WARNING|ERROR)\]/);
    expect(r.code).toBe(0);
  });

  it('passes with a non-default value set (test/unit/chart/values-custom.yaml)', () => {
    const r = lint('--values', CUSTOM_VALUES);
    expect(r.out).not.toMatch(/\[(WARNING|ERROR)\]/);
    expect(r.code).toBe(0);
  });

  it('passes with the namespace, monitors and no metrics Service', () => {
    const r = lint('--set', 'namespace.create=true', '--set', 'metrics.service.enabled=false', '--set', 'controller.replicas=1');
    expect(r.code).toBe(0);
  });
});

describe('values.schema.json', () => {
  it('rejects replicas: "two" with the path and the types', () => {
    const r = lint('--values', valuesFile('controller:\n  replicas: "two"\n'));
    expect(r.code).not.toBe(0);
    expect(r.out).toContain("at '/controller/replicas': got string, want integer");
  });

  it.each([
    ['a typo in a key', 'controller:\n  replica: 3\n', "at '/controller': additional properties 'replica' not allowed"],
    ['an unknown log level', 'controller:\n  logLevel: verbose\n', "at '/controller/logLevel': value must be one of"],
    ['an unquoted true in a node selector', 'agent:\n  directorNodeSelector:\n    lvs.operator.dev/director: true\n', "at '/agent/directorNodeSelector/lvs.operator.dev~1director': got boolean, want string"],
    ['a toleration operator typo', 'agent:\n  tolerations:\n    - operator: Exist\n', "at '/agent/tolerations/0/operator': value must be one of 'Exists', 'Equal'"],
    ['a port out of range', 'agent:\n  metricsPort: 70000\n', "at '/agent/metricsPort': maximum: got 70,000, want 65,535"],
    ['a fractional lease', 'failover:\n  leaseDurationSeconds: 1.5\n', "at '/failover/leaseDurationSeconds': got number, want integer"],
    ['a sync id out of range', 'failover:\n  syncId: 256\n', "at '/failover/syncId': maximum: got 256, want 255"],
    ['a quoted failover switch', 'failover:\n  enabled: "false"\n', "at '/failover/enabled': got string, want boolean"],
    ['a bad pull policy', 'image:\n  pullPolicy: Sometimes\n', "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'"],
    ['a bad digest', 'image:\n  digest: sha256:abc\n', "at '/image/digest'"],
    ['a bad memory quantity', 'controller:\n  resources:\n    limits:\n      memory: 1 GB\n', "at '/controller/resources/limits/memory'"],
    ['an empty director selector', 'agent:\n  directorNodeSelector: null\n', "at '/agent"],
  ])('rejects %s', (_what, yaml, message) => {
    const r = helm(['template', 'lvs-operator', CHART_DIR, '--values', valuesFile(yaml)]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("values don't meet the specifications of the schema(s)");
    expect(r.stderr).toContain(message);
  });

  it('a renewal interval of half the lease or more fails the template with an explanation (the agent would refuse it)', () => {
    const r = helm(['template', 'lvs-operator', CHART_DIR, '--set', 'failover.leaseDurationSeconds=1', '--set', 'failover.renewIntervalMilliseconds=500']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('failover.renewIntervalMilliseconds (500) must be less than half of failover.leaseDurationSeconds (1 s)');
    const ok = helm(['template', 'lvs-operator', CHART_DIR, '--set', 'failover.leaseDurationSeconds=1', '--set', 'failover.renewIntervalMilliseconds=499']);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
  });

  it('a ServiceMonitor without the metrics Service fails the template', () => {
    const r = helm(['template', 'lvs-operator', CHART_DIR, '--set', 'serviceMonitor.enabled=true', '--set', 'metrics.service.enabled=false']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('serviceMonitor.enabled needs metrics.service.enabled');
  });
});

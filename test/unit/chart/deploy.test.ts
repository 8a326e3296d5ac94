import { readFileSync } from 'node:fs';
import { DEPLOY_FILE, renderDeploy } from '../../../scripts/render-deploy.ts';
import { parseManifests } from './helm.ts';

describe('deploy/lvs-operator.yaml', () => {
  const committed = readFileSync(DEPLOY_FILE, 'utf8');

  it('matches a fresh rendering of the chart (run npm run render:deploy)', () => {
    // Stale after a chart or CRD change (npm run generate): regenerate it, do not edit it.
    expect(committed).toBe(renderDeploy());
  });

  it('holds the CRDs, then the Namespace, before every namespaced object', () => {
    const objs = parseManifests(committed);
    const kinds = objs.map((o) => o.kind);
    expect(objs.filter((o) => o.kind === 'CustomResourceDefinition').map((o) => o.metadata.name).sort()).toEqual(
      expect.arrayContaining(['realservers.lvs.operator.dev', 'virtualservices.lvs.operator.dev']),
    );
    const ns = kinds.indexOf('Namespace');
    expect(ns).toBeGreaterThan(kinds.lastIndexOf('CustomResourceDefinition'));
    for (const o of objs.slice(ns + 1)) {
      if (o.metadata.namespace !== undefined) expect(o.metadata.namespace).toBe('lvs-system');
    }
    expect(objs[ns]!.metadata).toMatchObject({
      name: 'lvs-system',
      labels: { 'pod-security.kubernetes.io/enforce': 'privileged' },
    });
  });

  it('has the objects a default helm install creates', () => {
    const names = parseManifests(committed).filter((o) => o.kind !== 'CustomResourceDefinition').map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(names).toEqual([
      'ClusterRole/lvs-operator-agent',
      'ClusterRole/lvs-operator-controller',
      'ClusterRole/lvs-operator-edit',
      'ClusterRole/lvs-operator-view',
      'ClusterRoleBinding/lvs-operator-agent',
      'ClusterRoleBinding/lvs-operator-controller',
      'ConfigMap/lvs-operator-config',
      'Deployment/lvs-operator-controller',
      'Namespace/lvs-system',
      'PodDisruptionBudget/lvs-operator-controller',
      'Role/lvs-operator-agent',
      'Role/lvs-operator-controller',
      'RoleBinding/lvs-operator-agent',
      'RoleBinding/lvs-operator-controller',
      'Service/lvs-operator-controller-metrics',
      'ServiceAccount/lvs-operator-agent',
      'ServiceAccount/lvs-operator-controller',
    ]);
  });
});

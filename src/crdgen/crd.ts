/** Assembles apiextensions.k8s.io/v1 CustomResourceDefinitions from the API types and resource metadata. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Project } from 'ts-morph';
import { resources, crdName, GROUP, VERSION, type CrdResource } from '../api/v1alpha1/resources.ts';
import { celRules } from '../api/v1alpha1/cel.ts';
import { SchemaBuilder, type JSONSchemaProps } from './schema.ts';
import { lintStructural } from './lint.ts';

export const API_DIR = fileURLToPath(new URL('../api/v1alpha1/', import.meta.url));

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels: Record<string, string> };
  spec: {
    group: string;
    names: { kind: string; listKind: string; plural: string; singular: string; shortNames: string[]; categories: string[] };
    scope: 'Namespaced' | 'Cluster';
    versions: Array<{
      name: string;
      served: boolean;
      storage: boolean;
      schema: { openAPIV3Schema: JSONSchemaProps };
      subresources: { status: Record<string, never> };
      additionalPrinterColumns: CrdResource['printerColumns'];
    }>;
  };
}

export function buildCrd(builder: SchemaBuilder, r: CrdResource): CustomResourceDefinition {
  const openAPIV3Schema: JSONSchemaProps = {
    type: 'object',
    description: r.description,
    properties: {
      apiVersion: {
        type: 'string',
        description: 'APIVersion defines the versioned schema of this representation of an object.',
      },
      kind: { type: 'string', description: 'Kind is a string value representing the REST resource this object represents.' },
      metadata: { type: 'object' },
      spec: builder.forInterface(r.specType),
      status: builder.forInterface(r.statusType),
    },
    required: ['spec'],
  };
  lintStructural(openAPIV3Schema, r.kind);
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: crdName(r), labels: { 'app.kubernetes.io/part-of': 'lvs-operator' } },
    spec: {
      group: GROUP,
      names: {
        kind: r.kind,
        listKind: `${r.kind}List`,
        plural: r.plural,
        singular: r.singular,
        shortNames: r.shortNames,
        categories: r.categories,
      },
      scope: r.scope,
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          schema: { openAPIV3Schema },
          subresources: { status: {} },
          additionalPrinterColumns: r.printerColumns,
        },
      ],
    },
  };
}

/** Generates every CRD from src/api/v1alpha1. */
export function generateCrds(): CustomResourceDefinition[] {
  const project = new Project({ skipAddingFilesFromTsConfig: true, compilerOptions: { strict: true, allowImportingTsExtensions: true, noEmit: true } });
  const files = project.addSourceFilesAtPaths(path.join(API_DIR, '*.ts'));
  const builder = new SchemaBuilder(files, celRules);
  return resources.map((r) => buildCrd(builder, r));
}

/**
 * Checks the rules a structural CRD schema must obey (see the Kubernetes CRD docs), so a broken
 * generator fails here with a path instead of at `kubectl apply`.
 */
import type { JSONSchemaProps } from './schema.ts';
import { SchemaError } from './schema.ts';

const FORBIDDEN = ['$ref', 'definitions', 'dependencies', 'deprecated', 'discriminator', 'id', 'patternProperties', 'readOnly', 'writeOnly', 'xml', 'uniqueItems'];

export function lintStructural(schema: JSONSchemaProps, where: string): void {
  const s = schema as Record<string, unknown>;
  if (!schema.type && !schema['x-kubernetes-preserve-unknown-fields']) throw new SchemaError(`${where}: every schema node needs a type`);
  for (const k of FORBIDDEN) if (k in s) throw new SchemaError(`${where}: "${k}" is not allowed in a CRD schema`);
  if (schema.properties && schema.additionalProperties) throw new SchemaError(`${where}: properties and additionalProperties exclude each other`);
  for (const req of schema.required ?? []) {
    if (!schema.properties?.[req]) throw new SchemaError(`${where}: required field ${req} is not declared`);
  }
  const rules = schema['x-kubernetes-validations'] ?? [];
  for (const rule of rules) {
    if (!rule.message) throw new SchemaError(`${where}: CEL rule "${rule.rule}" needs a message a user understands`);
  }
  // The CEL cost estimator needs bounds on every list and string a rule can touch.
  if (rules.length > 0) {
    if (schema.type === 'string' && schema.maxLength === undefined && !schema.enum) throw new SchemaError(`${where}: a string with CEL rules needs maxLength`);
    if (schema.type === 'array' && schema.maxItems === undefined) throw new SchemaError(`${where}: a list with CEL rules needs maxItems`);
  }
  const listType = schema['x-kubernetes-list-type'];
  if (listType === 'map') {
    const keys = schema['x-kubernetes-list-map-keys'] ?? [];
    if (keys.length === 0) throw new SchemaError(`${where}: listType map needs listMapKey`);
    for (const key of keys) {
      const item = schema.items;
      const isScalar = item?.properties?.[key]?.type && item.properties[key].type !== 'object' && item.properties[key].type !== 'array';
      const requiredOrDefaulted = item?.required?.includes(key) || item?.properties?.[key]?.default !== undefined;
      if (!isScalar || !requiredOrDefaulted) throw new SchemaError(`${where}: list map key ${key} must be a required or defaulted scalar`);
    }
  }
  if (listType === 'set' && schema.items?.type === 'object') throw new SchemaError(`${where}: listType set needs scalar items`);
  for (const [name, child] of Object.entries(schema.properties ?? {})) lintStructural(child, `${where}.${name}`);
  if (schema.items) lintStructural(schema.items, `${where}[]`);
  if (schema.additionalProperties) lintStructural(schema.additionalProperties, `${where}{}`);
}

/**
 * Validates and defaults VirtualService/RealServer manifests without an API server, with the same rules
 * the API server applies: the generated CRD schemas (crds/) for types, ranges, enums and defaults, and
 * their CEL x-kubernetes-validations rules. Standalone mode (lvs-agent --config) and the tests use it.
 * Messages follow the API server's format ("spec.port: Invalid value: 0: ...") so one expectation
 * matches both.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { Environment } from '@marcbachmann/cel-js';
import { GROUP, VERSION } from './v1alpha1/meta.ts';
import { isIP, isGlobalUnicast, familyOf, parseCidr, cidrBounds, ipToBigInt, bigIntToIp, type ParsedCidr } from './ip.ts';
import type { JSONSchemaProps } from '../crdgen/schema.ts';

/** The generated openAPIV3Schema nodes, as the generator types them. */
type Schema = JSONSchemaProps;

export const CRD_DIR = fileURLToPath(new URL('../../crds/', import.meta.url));

export class ValidationError extends Error {
  override name = 'ValidationError';
  readonly causes: string[];
  constructor(kind: string, name: string, causes: string[]) {
    super(`${kind} "${name}" is invalid: ${causes.join(', ')}`);
    this.causes = causes;
  }
}

class IPValue {
  readonly address: string;
  constructor(address: string) {
    this.address = address;
  }
}

/** Kubernetes' CEL net.CIDR: the prefix as written (cidr('10.0.0.5/24').ip() is 10.0.0.5). */
class CIDRValue {
  readonly prefix: ParsedCidr;
  constructor(prefix: ParsedCidr) {
    this.prefix = prefix;
  }
}

const toCidr = (s: string): CIDRValue => {
  const prefix = parseCidr(s);
  if (!prefix) throw new Error(`network address parse error during conversion from string: "${s}"`);
  return new CIDRValue(prefix);
};

const cel = new Environment({ unlistedVariablesAreDyn: true })
  .registerType('net.IP', IPValue)
  .registerType('net.CIDR', CIDRValue)
  .registerOperator('net.IP == net.IP', (a: IPValue, b: IPValue) => familyOf(a.address) === familyOf(b.address) && ipToBigInt(a.address) === ipToBigInt(b.address))
  .registerFunction('isCIDR(string): bool', (s: string) => parseCidr(s) !== undefined)
  .registerFunction('cidr(string): net.CIDR', toCidr)
  .registerFunction({ name: 'ip', receiverType: 'net.CIDR', returnType: 'net.IP', params: [], handler: (c: CIDRValue) => new IPValue(bigIntToIp(c.prefix.address, c.prefix.family)) })
  .registerFunction({ name: 'masked', receiverType: 'net.CIDR', returnType: 'net.CIDR', params: [], handler: (c: CIDRValue) => new CIDRValue({ ...c.prefix, address: cidrBounds(c.prefix).first }) })
  .registerFunction('isIP(string): bool', (s: string) => isIP(s))
  .registerFunction('ip(string): net.IP', (s: string) => {
    if (!isIP(s)) throw new Error(`IP Address "${s}" parse error`);
    return new IPValue(s);
  })
  .registerFunction({ name: 'isGlobalUnicast', receiverType: 'net.IP', returnType: 'bool', params: [], handler: (ip: IPValue) => isGlobalUnicast(ip.address) })
  .registerFunction({ name: 'family', receiverType: 'net.IP', returnType: 'int', params: [], handler: (ip: IPValue) => BigInt(familyOf(ip.address)) });

type CompiledRule = { message: string; fn: (ctx: Record<string, unknown>) => unknown };
const compiled = new Map<string, CompiledRule['fn']>();
function compile(rule: string): CompiledRule['fn'] {
  let fn = compiled.get(rule);
  if (!fn) {
    fn = cel.parse(rule) as CompiledRule['fn'];
    compiled.set(rule, fn);
  }
  return fn;
}

let schemas: Map<string, Schema> | undefined;
/** The openAPIV3Schema of each kind, read from the generated CRDs. */
export function crdSchemas(): Map<string, Schema> {
  if (schemas) return schemas;
  schemas = new Map();
  for (const file of fs.readdirSync(CRD_DIR)) {
    if (!file.endsWith('.yaml')) continue;
    const crd = parseYaml(fs.readFileSync(CRD_DIR + file, 'utf8')) as {
      spec: { names: { kind: string }; versions: Array<{ name: string; schema: { openAPIV3Schema: Schema } }> };
    };
    const version = crd.spec.versions.find((v) => v.name === VERSION);
    if (version) schemas.set(crd.spec.names.kind, version.schema.openAPIV3Schema);
  }
  return schemas;
}

/** Manifests are JSON; a JSON copy also keeps objects in this realm (structuredClone does not under jest). */
const jsonCopy = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? String(v));

/** Fills defaults in place, the way the API server does before validation. */
function applyDefaults(schema: Schema, value: unknown): void {
  if (isObject(value) && schema.properties) {
    for (const [k, child] of Object.entries(schema.properties)) {
      if (value[k] === undefined && child.default !== undefined) value[k] = jsonCopy(child.default);
      if (value[k] !== undefined) applyDefaults(child, value[k]);
    }
  } else if (Array.isArray(value) && schema.items) {
    for (const item of value) applyDefaults(schema.items, item);
  }
}

/** CEL sees integers as int (bigint) and the rest as JSON. */
function toCel(schema: Schema, value: unknown): unknown {
  if (schema.type === 'integer' && typeof value === 'number') return BigInt(value);
  if (Array.isArray(value)) return value.map((v) => toCel(schema.items ?? {}, v));
  if (isObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = toCel(schema.properties?.[k] ?? schema.additionalProperties ?? {}, v);
    return out;
  }
  return value;
}

function check(schema: Schema, value: unknown, path: string, errors: string[]): void {
  const before = errors.length;
  const t = schema.type;
  const typeOk =
    t === undefined ||
    (t === 'object' && isObject(value)) ||
    (t === 'array' && Array.isArray(value)) ||
    (t === 'string' && typeof value === 'string') ||
    (t === 'integer' && typeof value === 'number' && Number.isInteger(value)) ||
    (t === 'number' && typeof value === 'number') ||
    (t === 'boolean' && typeof value === 'boolean');
  if (!typeOk) {
    const actual = Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value === 'number' ? 'number' : typeof value;
    errors.push(`${path}: Invalid value: "${actual}": ${path} in body must be of type ${t}: "${actual}"`);
    return;
  }
  if (schema.enum && !schema.enum.includes(value as string)) {
    errors.push(`${path}: Unsupported value: ${show(value)}: supported values: ${schema.enum.map((e) => `"${e}"`).join(', ')}`);
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) errors.push(`${path}: Invalid value: ${value}: ${path} in body should be greater than or equal to ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) errors.push(`${path}: Invalid value: ${value}: ${path} in body should be less than or equal to ${schema.maximum}`);
  }
  if (typeof value === 'string') {
    if (schema.maxLength !== undefined && value.length > schema.maxLength) errors.push(`${path}: Too long: may not be more than ${schema.maxLength} bytes`);
    if (schema.minLength !== undefined && value.length < schema.minLength) errors.push(`${path}: Invalid value: ${show(value)}: ${path} in body should be at least ${schema.minLength} chars long`);
    if (schema.pattern !== undefined && !new RegExp(schema.pattern).test(value)) errors.push(`${path}: Invalid value: ${show(value)}: ${path} in body should match '${schema.pattern}'`);
  }
  if (Array.isArray(value)) {
    if (schema.maxItems !== undefined && value.length > schema.maxItems) errors.push(`${path}: Too many: ${value.length}: must have at most ${schema.maxItems} items`);
    if (schema.minItems !== undefined && value.length < schema.minItems) errors.push(`${path}: Invalid value: ${value.length}: ${path} in body should have at least ${schema.minItems} items`);
    if (schema['x-kubernetes-list-type'] === 'set') {
      value.forEach((v, i) => {
        if (value.indexOf(v) !== i) errors.push(`${path}[${i}]: Duplicate value: ${show(v)}`);
      });
    }
    value.forEach((v, i) => check(schema.items ?? {}, v, `${path}[${i}]`, errors));
  }
  if (isObject(value)) {
    if (schema.maxProperties !== undefined && Object.keys(value).length > schema.maxProperties) errors.push(`${path}: Too many: ${Object.keys(value).length}: must have at most ${schema.maxProperties} items`);
    for (const req of schema.required ?? []) {
      if (value[req] === undefined) errors.push(`${path}.${req}: Required value`);
    }
    for (const [k, v] of Object.entries(value)) {
      const child = schema.properties?.[k] ?? schema.additionalProperties;
      if (child) check(child, v, `${path}.${k}`, errors);
      else if (!schema['x-kubernetes-preserve-unknown-fields'] && schema.properties) errors.push(`unknown field "${path}.${k}"`);
    }
  }
  // CEL rules of a node run only when its schema checks passed, so a bad value gets one clear message.
  if (errors.length === before) {
    for (const { rule, message } of schema['x-kubernetes-validations'] ?? []) {
      let ok: unknown;
      try {
        ok = compile(rule)({ self: toCel(schema, value) });
      } catch (e) {
        if (process.env.LVS_DEBUG_CEL) console.error(rule, e);
        ok = false;
      }
      if (ok !== true) errors.push(`${path}: Invalid value: "${schema.type ?? 'object'}": ${message}`);
    }
  }
}

export interface KubeObject {
  apiVersion?: unknown;
  kind?: unknown;
  metadata?: { name?: unknown; namespace?: unknown } & Record<string, unknown>;
  [key: string]: unknown;
}

/**
 * Validates one manifest of our API group and returns a defaulted deep copy. Throws ValidationError with
 * every problem found (never just the first).
 */
export function validateObject<T>(input: KubeObject): T {
  const kind = typeof input.kind === 'string' ? input.kind : '';
  const name = typeof input.metadata?.name === 'string' ? input.metadata.name : '';
  const problems: string[] = [];
  if (input.apiVersion !== `${GROUP}/${VERSION}`) problems.push(`apiVersion: Unsupported value: ${show(input.apiVersion)}: supported values: "${GROUP}/${VERSION}"`);
  const schema = crdSchemas().get(kind);
  if (!schema) problems.push(`kind: Unsupported value: ${show(input.kind)}: supported values: ${[...crdSchemas().keys()].map((k) => `"${k}"`).join(', ')}`);
  if (!name) problems.push('metadata.name: Required value: name is required');
  if (problems.length > 0 || !schema) throw new ValidationError(kind || 'object', name, problems);
  const obj = jsonCopy(input) as Record<string, unknown>;
  const { metadata, apiVersion: _a, kind: _k, ...rest } = obj;
  void _a;
  void _k;
  applyDefaults(schema, rest);
  const errors: string[] = [];
  for (const [k, v] of Object.entries(rest)) {
    const child = schema.properties?.[k];
    if (!child) errors.push(`unknown field "${k}"`);
    else check(child, v, k, errors);
  }
  for (const req of schema.required ?? []) if (rest[req] === undefined) errors.push(`${req}: Required value`);
  if (errors.length > 0) throw new ValidationError(kind, name, errors);
  return { ...obj, metadata, ...rest } as T;
}

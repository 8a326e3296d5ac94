/**
 * Turns the API interfaces of src/api into structural OpenAPI v3 schemas for CRDs. Everything is inlined
 * (CRDs allow no $ref); field-level validation comes from JSDoc tags modelled on kubebuilder markers:
 * @minimum @maximum @minLength @maxLength @pattern @format @default <json> @minItems @maxItems
 * @maxProperties @listType @listMapKey @mapType @cel <json>, @celRule <name> (a rule too long for a
 * comment, from the named rules the builder is given) and, for array items, @itemMinimum @itemMaximum
 * @itemMaxLength @itemPattern @itemCelRule <name>.
 */
import { Node, type JSDoc, type PropertySignature, type InterfaceDeclaration, type SourceFile, type Type } from 'ts-morph';
import { conditionSchema, labelSelectorSchema } from './upstream.ts';

export interface CelRule {
  rule: string;
  message: string;
}

/** The subset of JSONSchemaProps the generator emits. */
export interface JSONSchemaProps {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  properties?: Record<string, JSONSchemaProps>;
  required?: string[];
  items?: JSONSchemaProps;
  additionalProperties?: JSONSchemaProps;
  enum?: string[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  minItems?: number;
  maxItems?: number;
  maxProperties?: number;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: 'atomic' | 'granular';
  'x-kubernetes-validations'?: CelRule[];
  'x-kubernetes-preserve-unknown-fields'?: boolean;
}

export class SchemaError extends Error {
  override name = 'SchemaError';
}

interface Tag {
  name: string;
  text: string;
}

function docsOf(node: Node): { description: string; tags: Tag[] } {
  if (!Node.isJSDocable(node)) return { description: '', tags: [] };
  const docs: JSDoc[] = node.getJsDocs();
  const description = docs
    .map((d) => d.getDescription().trim())
    .filter((s) => s.length > 0)
    .join('\n')
    // One paragraph per blank line; single newlines are just wrapping.
    .split(/\n\s*\n/)
    .map((p) => p.replace(/\s*\n\s*/g, ' ').trim())
    .join('\n\n');
  const tags = docs.flatMap((d) => d.getTags().map((t) => ({ name: t.getTagName(), text: (t.getCommentText() ?? '').trim() })));
  return { description, tags };
}

function num(tag: Tag, where: string): number {
  const n = Number(tag.text);
  if (!Number.isFinite(n)) throw new SchemaError(`${where}: @${tag.name} needs a number, got "${tag.text}"`);
  return n;
}

function json(tag: Tag, where: string): unknown {
  try {
    return JSON.parse(tag.text);
  } catch (e) {
    throw new SchemaError(`${where}: @${tag.name} needs JSON, got "${tag.text}" (${(e as Error).message})`);
  }
}

function celRule(tag: Tag, where: string): CelRule {
  const v = json(tag, where) as Partial<CelRule>;
  if (typeof v.rule !== 'string' || typeof v.message !== 'string') {
    throw new SchemaError(`${where}: @cel needs {"rule": "...", "message": "..."}`);
  }
  return { rule: v.rule, message: v.message };
}

function namedRule(named: Readonly<Record<string, CelRule>>, tag: Tag, where: string): CelRule {
  const rule = named[tag.text];
  if (!rule) throw new SchemaError(`${where}: @${tag.name} names no known rule: "${tag.text}"`);
  return rule;
}

/** Applies validation tags to a schema node; returns the tags it did not understand. */
function applyTags(schema: JSONSchemaProps, tags: Tag[], where: string, named: Readonly<Record<string, CelRule>> = {}): void {
  for (const tag of tags) {
    switch (tag.name) {
      case 'minimum': schema.minimum = num(tag, where); break;
      case 'maximum': schema.maximum = num(tag, where); break;
      case 'minLength': schema.minLength = num(tag, where); break;
      case 'maxLength': schema.maxLength = num(tag, where); break;
      case 'pattern': schema.pattern = tag.text; break;
      case 'format': schema.format = tag.text; break;
      case 'default': schema.default = json(tag, where); break;
      case 'minItems': schema.minItems = num(tag, where); break;
      case 'maxItems': schema.maxItems = num(tag, where); break;
      case 'maxProperties': schema.maxProperties = num(tag, where); break;
      case 'listType': schema['x-kubernetes-list-type'] = tag.text as 'atomic' | 'set' | 'map'; break;
      case 'listMapKey': (schema['x-kubernetes-list-map-keys'] ??= []).push(tag.text); break;
      case 'mapType': schema['x-kubernetes-map-type'] = tag.text as 'atomic' | 'granular'; break;
      case 'cel': (schema['x-kubernetes-validations'] ??= []).push(celRule(tag, where)); break;
      case 'celRule': (schema['x-kubernetes-validations'] ??= []).push(namedRule(named, tag, where)); break;
      case 'itemCelRule': (itemsOf(schema, tag, where)['x-kubernetes-validations'] ??= []).push(namedRule(named, tag, where)); break;
      case 'itemMinimum': itemsOf(schema, tag, where).minimum = num(tag, where); break;
      case 'itemMaximum': itemsOf(schema, tag, where).maximum = num(tag, where); break;
      case 'itemMaxLength': itemsOf(schema, tag, where).maxLength = num(tag, where); break;
      case 'itemPattern': itemsOf(schema, tag, where).pattern = tag.text; break;
      default: throw new SchemaError(`${where}: unknown JSDoc tag @${tag.name}`);
    }
  }
}

function itemsOf(schema: JSONSchemaProps, tag: Tag, where: string): JSONSchemaProps {
  if (!schema.items) throw new SchemaError(`${where}: @${tag.name} applies to arrays only`);
  return schema.items;
}

/** Builds schemas for interfaces declared in a set of source files. */
export class SchemaBuilder {
  private readonly files: SourceFile[];
  private readonly stack: string[] = [];
  private readonly named: Readonly<Record<string, CelRule>>;

  /** `named`: the rules @celRule and @itemCelRule may name. */
  constructor(files: SourceFile[], named: Readonly<Record<string, CelRule>> = {}) {
    this.files = files;
    this.named = named;
  }

  private findInterface(name: string): InterfaceDeclaration {
    for (const f of this.files) {
      const decl = f.getInterface(name);
      if (decl) return decl;
    }
    throw new SchemaError(`interface ${name} not found in ${this.files.map((f) => f.getBaseName()).join(', ')}`);
  }

  /** Schema of a named interface, with its doc comment and object-level CEL rules. */
  forInterface(name: string): JSONSchemaProps {
    if (this.stack.includes(name)) {
      throw new SchemaError(`recursive type ${[...this.stack, name].join(' -> ')}: CRD schemas cannot express recursion`);
    }
    const decl = this.findInterface(name);
    this.stack.push(name);
    try {
      const { description, tags } = docsOf(decl);
      const schema: JSONSchemaProps = { type: 'object' };
      if (description) schema.description = description;
      const properties: Record<string, JSONSchemaProps> = {};
      const required: string[] = [];
      for (const prop of decl.getProperties()) {
        const propName = prop.getName();
        const propSchema = this.forProperty(prop, `${name}.${propName}`);
        properties[propName] = propSchema;
        if (!prop.hasQuestionToken() && propSchema.default === undefined) required.push(propName);
      }
      schema.properties = properties;
      if (required.length > 0) schema.required = required;
      applyTags(schema, tags, name, this.named);
      return schema;
    } finally {
      this.stack.pop();
    }
  }

  private forProperty(prop: PropertySignature, where: string): JSONSchemaProps {
    const typeNode = prop.getTypeNode();
    if (!typeNode) throw new SchemaError(`${where}: property needs an explicit type`);
    const schema = this.forType(prop.getType().getNonNullableType(), typeNode.getText(), where);
    const { description, tags } = docsOf(prop);
    if (!description) throw new SchemaError(`${where}: every field needs a doc comment (it becomes kubectl explain text)`);
    const out: JSONSchemaProps = { ...schema, description };
    applyTags(out, tags, where, this.named);
    return out;
  }

  private forType(type: Type, written: string, where: string): JSONSchemaProps {
    // Upstream Kubernetes types are emitted exactly as controller-gen does, not walked.
    const bare = written.replace(/\[\]$/, '');
    if (bare === 'Condition' || bare === 'LabelSelector' || bare === 'ObjectMeta') {
      const known = bare === 'Condition' ? conditionSchema() : bare === 'LabelSelector' ? labelSelectorSchema() : { type: 'object' as const };
      return written.endsWith('[]') ? { type: 'array', items: known } : known;
    }
    if (type.isString()) return { type: 'string' };
    if (type.isNumber()) return { type: 'integer' };
    if (type.isBoolean()) return { type: 'boolean' };
    if (type.isStringLiteral()) return { type: 'string', enum: [String(type.getLiteralValue())] };
    if (type.isUnion()) {
      const members = type.getUnionTypes();
      if (members.every((m) => m.isStringLiteral())) {
        return { type: 'string', enum: members.map((m) => String(m.getLiteralValue())) };
      }
      throw new SchemaError(`${where}: only unions of string literals are supported, got ${written}`);
    }
    if (type.isArray()) {
      const element = type.getArrayElementTypeOrThrow();
      return { type: 'array', items: this.forType(element, written.replace(/\[\]$/, ''), `${where}[]`) };
    }
    const index = type.getStringIndexType();
    if (index) return { type: 'object', additionalProperties: this.forType(index, 'string', `${where}{}`) };
    if (type.isInterface()) {
      const symbol = type.getSymbolOrThrow();
      return this.forInterface(symbol.getName());
    }
    throw new SchemaError(`${where}: unsupported type ${written}`);
  }
}

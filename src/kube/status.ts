/**
 * Writing custom objects: status by JSON merge patch or server-side apply, replace with optimistic
 * concurrency, and finalizers by a merge patch that carries the resourceVersion read (a precondition: a
 * concurrent writer makes it 409, and we re-read and try again).
 *
 * Every patch states its Content-Type: client-node's CustomObjectsApi otherwise picks
 * application/json-patch+json, and the server rejects an object body with 400
 * ("json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp").
 */
import { CustomObjectsApi, PatchStrategy } from '@kubernetes/client-node';
import type { KubeConfig } from '@kubernetes/client-node';
import { describeError, isConflict, isNotFound } from './errors.ts';
import type { KubeObject } from './informer.ts';
import { requestOptions } from './request.ts';
import { createLogger } from '../util/log.ts';
import type { Logger } from '../util/log.ts';

export { isNotFound, isConflict, isAlreadyExists, isGone, isForbidden, apiStatus, errorCode, describeError } from './errors.ts';

/** A custom resource type (the group must not be '': core kinds are not served by CustomObjectsApi). */
export interface CustomResource {
  group: string;
  version: string;
  plural: string;
}

export interface CustomObjectsOptions {
  /** Field manager for server-side apply and for updates (default 'lvs-operator'). */
  fieldManager?: string;
  /** Per-request timeout (default 30 s). */
  timeoutMs?: number;
  /** Attempts of a read-modify-write on conflicts (default 5). */
  conflictRetries?: number;
  logger?: Logger;
}

export interface ObjectKey {
  name: string;
  /** Absent for cluster-scoped kinds (NodePlan). */
  namespace?: string;
}

/** A custom object with the metadata this module reads. */
export interface CustomObject extends KubeObject {
  metadata?: KubeObject['metadata'] & {
    finalizers?: string[];
    deletionTimestamp?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
}

/** A server-side apply body: apiVersion, kind, metadata.name[, namespace] and only the fields the manager owns. */
export type ApplyConfiguration = CustomObject & Record<string, unknown>;

let moduleLogger: Logger | undefined;

function keyOfObject(o: KubeObject): ObjectKey {
  const name = o.metadata?.name;
  if (!name) throw new Error('object has no metadata.name');
  return { name, namespace: o.metadata?.namespace || undefined };
}

export class CustomObjects {
  readonly api: CustomObjectsApi;
  readonly fieldManager: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly log: Logger;

  constructor(kcOrApi: KubeConfig | CustomObjectsApi, opts: CustomObjectsOptions = {}) {
    this.api = kcOrApi instanceof CustomObjectsApi ? kcOrApi : kcOrApi.makeApiClient(CustomObjectsApi);
    this.fieldManager = opts.fieldManager ?? 'lvs-operator';
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.retries = opts.conflictRetries ?? 5;
    this.log = (opts.logger ?? (moduleLogger ??= createLogger('kube.objects')));
  }

  private opts(contentType?: string) {
    return requestOptions({ contentType, timeoutMs: this.timeoutMs });
  }

  async get<T extends CustomObject>(r: CustomResource, key: ObjectKey): Promise<T> {
    const { group, version, plural } = r;
    const o: unknown = key.namespace
      ? await this.api.getNamespacedCustomObject({ group, version, plural, namespace: key.namespace, name: key.name }, this.opts())
      : await this.api.getClusterCustomObject({ group, version, plural, name: key.name }, this.opts());
    return o as T;
  }

  /** The object, or undefined when it does not exist. */
  async tryGet<T extends CustomObject>(r: CustomResource, key: ObjectKey): Promise<T | undefined> {
    try {
      return await this.get<T>(r, key);
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async create<T extends CustomObject>(r: CustomResource, obj: T): Promise<T> {
    const { group, version, plural } = r;
    const k = keyOfObject(obj);
    const fieldManager = this.fieldManager;
    const o: unknown = k.namespace
      ? await this.api.createNamespacedCustomObject({ group, version, plural, namespace: k.namespace, body: obj, fieldManager }, this.opts())
      : await this.api.createClusterCustomObject({ group, version, plural, body: obj, fieldManager }, this.opts());
    return o as T;
  }

  /** PUT the whole object; with metadata.resourceVersion set, a concurrent change makes it 409 (isConflict). */
  async replace<T extends CustomObject>(r: CustomResource, obj: T): Promise<T> {
    const { group, version, plural } = r;
    const k = keyOfObject(obj);
    const fieldManager = this.fieldManager;
    const o: unknown = k.namespace
      ? await this.api.replaceNamespacedCustomObject({ group, version, plural, namespace: k.namespace, name: k.name, body: obj, fieldManager }, this.opts())
      : await this.api.replaceClusterCustomObject({ group, version, plural, name: k.name, body: obj, fieldManager }, this.opts());
    return o as T;
  }

  /** PUT the status subresource (spec and metadata changes in `obj` are ignored by the server). */
  async replaceStatus<T extends CustomObject>(r: CustomResource, obj: T): Promise<T> {
    const { group, version, plural } = r;
    const k = keyOfObject(obj);
    const fieldManager = this.fieldManager;
    const o: unknown = k.namespace
      ? await this.api.replaceNamespacedCustomObjectStatus({ group, version, plural, namespace: k.namespace, name: k.name, body: obj, fieldManager }, this.opts())
      : await this.api.replaceClusterCustomObjectStatus({ group, version, plural, name: k.name, body: obj, fieldManager }, this.opts());
    return o as T;
  }

  /** JSON merge patch (RFC 7386) of the object: lists are replaced whole, null deletes a field. */
  async mergePatch<T extends CustomObject>(r: CustomResource, key: ObjectKey, patch: object): Promise<T> {
    return this.patch<T>(r, key, patch, PatchStrategy.MergePatch, false);
  }

  /**
   * Merge-patch `.status` (the status subresource). With `resourceVersion`, the patch only applies to that
   * version of the object (409 otherwise), for writers that computed status from what they read.
   */
  async patchStatus<T extends CustomObject>(r: CustomResource, key: ObjectKey, status: unknown, opts: { resourceVersion?: string } = {}): Promise<T> {
    const body: Record<string, unknown> = { status };
    if (opts.resourceVersion) body['metadata'] = { resourceVersion: opts.resourceVersion };
    return this.patch<T>(r, key, body, PatchStrategy.MergePatch, true);
  }

  /** Server-side apply of `obj` (apiVersion, kind, metadata.name[, namespace] and the fields this manager owns). */
  async apply<T extends CustomObject = CustomObject>(r: CustomResource, obj: ApplyConfiguration, opts: { force?: boolean; fieldManager?: string } = {}): Promise<T> {
    return this.patch<T>(r, keyOfObject(obj), obj, PatchStrategy.ServerSideApply, false, opts);
  }

  /** Server-side apply to the status subresource. */
  async applyStatus<T extends CustomObject = CustomObject>(r: CustomResource, obj: ApplyConfiguration, opts: { force?: boolean; fieldManager?: string } = {}): Promise<T> {
    return this.patch<T>(r, keyOfObject(obj), obj, PatchStrategy.ServerSideApply, true, opts);
  }

  /** Delete; true if it was there. */
  async delete(r: CustomResource, key: ObjectKey): Promise<boolean> {
    const { group, version, plural } = r;
    try {
      if (key.namespace) await this.api.deleteNamespacedCustomObject({ group, version, plural, namespace: key.namespace, name: key.name }, this.opts());
      else await this.api.deleteClusterCustomObject({ group, version, plural, name: key.name }, this.opts());
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  /** Add `finalizer` unless present. Returns the object as written (or read), undefined if it does not exist. */
  addFinalizer<T extends CustomObject>(r: CustomResource, key: ObjectKey, finalizer: string): Promise<T | undefined> {
    return this.updateFinalizers<T>(r, key, (f) => (f.includes(finalizer) ? undefined : [...f, finalizer]));
  }

  /** Remove `finalizer` if present (the server deletes the object when it was the last one and deletion is pending). */
  removeFinalizer<T extends CustomObject>(r: CustomResource, key: ObjectKey, finalizer: string): Promise<T | undefined> {
    return this.updateFinalizers<T>(r, key, (f) => (f.includes(finalizer) ? f.filter((x) => x !== finalizer) : undefined));
  }

  private async updateFinalizers<T extends CustomObject>(r: CustomResource, key: ObjectKey, change: (current: string[]) => string[] | undefined): Promise<T | undefined> {
    for (let attempt = 1; ; attempt++) {
      const cur = await this.tryGet<T>(r, key);
      if (!cur) return undefined;
      const next = change(cur.metadata?.finalizers ?? []);
      if (!next) return cur;
      try {
        return await this.patch<T>(r, key, { metadata: { finalizers: next, resourceVersion: cur.metadata?.resourceVersion } }, PatchStrategy.MergePatch, false);
      } catch (e) {
        if (isNotFound(e)) return undefined;
        if (!isConflict(e) || attempt >= this.retries) throw e;
        this.log.debug({ err: describeError(e), name: key.name, namespace: key.namespace, attempt }, 'finalizer patch conflicted; re-reading');
      }
    }
  }

  private async patch<T>(r: CustomResource, key: ObjectKey, body: object, contentType: string, status: boolean, o: { force?: boolean; fieldManager?: string } = {}): Promise<T> {
    const { group, version, plural } = r;
    const apply = contentType === PatchStrategy.ServerSideApply;
    const fieldManager = o.fieldManager ?? this.fieldManager;
    const force = apply ? (o.force ?? true) : undefined;
    const opts = this.opts(contentType);
    const { name, namespace } = key;
    let res: unknown;
    if (namespace) {
      const p = { group, version, plural, namespace, name, body, fieldManager, force };
      res = status ? await this.api.patchNamespacedCustomObjectStatus(p, opts) : await this.api.patchNamespacedCustomObject(p, opts);
    } else {
      const p = { group, version, plural, name, body, fieldManager, force };
      res = status ? await this.api.patchClusterCustomObjectStatus(p, opts) : await this.api.patchClusterCustomObject(p, opts);
    }
    return res as T;
  }
}

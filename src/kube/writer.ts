/**
 * Writes over one pool of keep-alive connections (the controller's passes, the agent's NodePlan reports).
 * client-node 2.0 opens a new TLS connection for every request (a new undici Agent per call; its https.Agent
 * for raw requests does not keep alive), which at 55,000 status writes was most of the controller's CPU and
 * of the API server's, and hundreds of MiB of allocator churn; in the emulated lab VM a handshake costs the
 * agent seconds. Credentials come from the kubeconfig per request (tokens may rotate); the TLS material of
 * the first request makes the connection pool, rebuilt if it ever changes.
 */
import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { apiError } from './errors.ts';
import { resourcePath } from './informer.ts';
import { isNotFound, type CustomObject, type CustomResource, type ObjectKey } from './status.ts';

export class Writer {
  readonly #kc: KubeConfig;
  readonly #server: string;
  readonly #query: string;
  #agent: { agent: https.Agent; tls: string } | undefined;

  constructor(kc: KubeConfig, fieldManager: string) {
    const server = kc.getCurrentCluster()?.server;
    if (!server) throw new Error('kubeconfig has no current cluster with a server');
    this.#kc = kc;
    this.#server = server.replace(/\/+$/, '');
    this.#query = `?fieldManager=${encodeURIComponent(fieldManager)}`;
  }

  /** JSON merge patch of the object, or of its status subresource. */
  patch<T extends CustomObject>(r: CustomResource, key: ObjectKey, body: object, subresource?: 'status'): Promise<T> {
    return this.#request<T>('PATCH', this.#patchPath(r, key, subresource), body, 'application/merge-patch+json');
  }

  /**
   * The same patch when the caller needs no answer (the agent's NodePlan reports): a successful answer's body,
   * the whole object, is drained unread instead of being decoded and parsed (in the emulated lab VM, tens of
   * ms per report). A failure still rejects with the server's message.
   */
  async patchUnread(r: CustomResource, key: ObjectKey, body: object, subresource?: 'status'): Promise<void> {
    await this.#request<undefined>('PATCH', this.#patchPath(r, key, subresource), body, 'application/merge-patch+json', undefined, false);
  }

  #patchPath(r: CustomResource, key: ObjectKey, subresource?: 'status'): string {
    return resourcePath({ ...r, namespace: key.namespace }, key.name) + (subresource ? `/${subresource}` : '') + this.#query;
  }

  create<T extends CustomObject>(r: CustomResource, obj: T): Promise<T> {
    return this.#request<T>('POST', resourcePath({ ...r, namespace: obj.metadata?.namespace }) + this.#query, obj, 'application/json');
  }

  async delete(r: CustomResource, key: ObjectKey): Promise<void> {
    await this.#request('DELETE', resourcePath({ ...r, namespace: key.namespace }, key.name)).catch((e: unknown) => {
      if (!isNotFound(e)) throw e;
    });
  }

  close(): void {
    this.#agent?.agent.destroy();
    this.#agent = undefined;
  }

  /** Any request on the pool (path from the server root); `signal` aborts it. Non-2xx rejects with apiError. */
  request<T>(method: string, path: string, opts: { body?: object; contentType?: string; signal?: AbortSignal } = {}): Promise<T> {
    return this.#request<T>(method, path, opts.body, opts.contentType, opts.signal);
  }

  async #request<T>(method: string, path: string, body?: object, contentType?: string, signal?: AbortSignal, read = true): Promise<T> {
    signal?.throwIfAborted();
    const opts: https.RequestOptions = {};
    await this.#kc.applyToHTTPSOptions(opts);
    const tls = JSON.stringify([String(opts.ca ?? ''), String(opts.cert ?? ''), String(opts.key ?? ''), opts.rejectUnauthorized, opts.servername]);
    if (this.#agent?.tls !== tls) {
      this.#agent?.agent.destroy();
      this.#agent = { tls, agent: new https.Agent({ keepAlive: true, maxSockets: 32, ca: opts.ca, cert: opts.cert, key: opts.key, rejectUnauthorized: opts.rejectUnauthorized, servername: opts.servername }) };
    }
    const data = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = { Accept: 'application/json', ...(opts.headers as Record<string, string> | undefined) };
    if (contentType) headers['Content-Type'] = contentType;
    const url = new URL(this.#server + path);
    const res = await new Promise<{ status: number; text: string; headers: Record<string, string> }>((resolve, reject) => {
      const req = (url.protocol === 'http:' ? http : https).request(url, { method, headers, auth: opts.auth, agent: url.protocol === 'http:' ? undefined : this.#agent!.agent, timeout: 30_000 }, (r) => {
        const status = r.statusCode ?? 0;
        let text = '';
        r.on('error', reject);
        if (!read && status >= 200 && status < 300) {
          // Drained, so that the connection goes back to the pool.
          r.on('end', () => resolve({ status, text, headers: {} }));
          r.resume();
          return;
        }
        r.setEncoding('utf8');
        r.on('data', (d: string) => (text += d));
        r.on('end', () => resolve({ status, text, headers: Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, String(v)])) }));
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 30 s`)));
      req.on('error', reject);
      if (signal) {
        const onAbort = (): void => void req.destroy(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
        signal.addEventListener('abort', onAbort, { once: true });
        req.on('close', () => signal.removeEventListener('abort', onAbort));
      }
      req.end(data);
    });
    if (res.status < 200 || res.status >= 300) throw apiError(res.status, res.text, res.headers);
    return (read && res.text ? JSON.parse(res.text) : undefined) as T;
  }
}

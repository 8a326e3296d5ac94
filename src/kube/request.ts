/**
 * Per-call options for client-node's generated clients: a Content-Type (patches: without it
 * CustomObjectsApi sends application/json-patch+json and the server rejects an object body), an abort
 * signal and a timeout (the generated clients have none: a request to a paused apiserver hangs forever).
 */
import { Observable } from '@kubernetes/client-node';
import type { ConfigurationOptions, ObservableMiddleware, RequestContext, ResponseContext } from '@kubernetes/client-node';

export interface CallOptions {
  contentType?: string;
  signal?: AbortSignal;
  /** Abort after this long (default: no timeout beyond `signal`). */
  timeoutMs?: number;
}

/** ConfigurationOptions for one call; appends to the client's own middleware (User-Agent). */
export function requestOptions(o: CallOptions): ConfigurationOptions<ObservableMiddleware> {
  const signals: AbortSignal[] = [];
  if (o.signal) signals.push(o.signal);
  if (o.timeoutMs !== undefined) signals.push(AbortSignal.timeout(o.timeoutMs));
  const signal = signals.length === 0 ? undefined : signals.length === 1 ? signals[0] : AbortSignal.any(signals);
  const mw: ObservableMiddleware = {
    pre(ctx: RequestContext): Observable<RequestContext> {
      if (o.contentType) ctx.setHeaderParam('Content-Type', o.contentType);
      if (signal) ctx.setSignal(signal);
      return new Observable(Promise.resolve(ctx));
    },
    post(res: ResponseContext): Observable<ResponseContext> {
      return new Observable(Promise.resolve(res));
    },
  };
  return { middleware: [mw], middlewareMergeStrategy: 'append' };
}

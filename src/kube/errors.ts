/**
 * API errors, classified by HTTP code and the Status object the server sends. Works for client-node's
 * ApiException (generated clients; its `body` is the raw JSON text) and for this layer's own raw requests,
 * which throw ApiException too.
 */
import { ApiException } from '@kubernetes/client-node';

/** The fields of a metav1.Status this layer looks at. */
export interface ApiStatus {
  code?: number;
  reason?: string;
  message?: string;
}

/** HTTP code of an API error, or undefined for anything else (network errors, bugs). */
export function errorCode(e: unknown): number | undefined {
  if (e instanceof ApiException) return e.code;
  if (typeof e === 'object' && e !== null) {
    const o = e as { code?: unknown; statusCode?: unknown };
    if (typeof o.statusCode === 'number') return o.statusCode;
    // client-node's ApiException from a different module instance, or our GoneError.
    if (typeof o.code === 'number' && o.code >= 100 && o.code < 600) return o.code;
  }
  return undefined;
}

/** The Status object an API error carries (parsed from the body), as far as it can be found. */
export function apiStatus(e: unknown): ApiStatus {
  const code = errorCode(e);
  let body: unknown = typeof e === 'object' && e !== null ? (e as { body?: unknown }).body : undefined;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body) as unknown;
    } catch {
      body = undefined;
    }
  }
  const s = (typeof body === 'object' && body !== null ? body : {}) as { code?: unknown; reason?: unknown; message?: unknown };
  return {
    code: typeof s.code === 'number' ? s.code : code,
    reason: typeof s.reason === 'string' ? s.reason : undefined,
    message: typeof s.message === 'string' ? s.message : undefined,
  };
}

export const isNotFound = (e: unknown): boolean => errorCode(e) === 404;
/** 409 from an update with a stale resourceVersion (not AlreadyExists, which is also a 409). */
export const isConflict = (e: unknown): boolean => errorCode(e) === 409 && apiStatus(e).reason !== 'AlreadyExists';
export const isAlreadyExists = (e: unknown): boolean => errorCode(e) === 409 && apiStatus(e).reason === 'AlreadyExists';
/** 410 Gone: the resourceVersion is too old (compacted); relist. */
export const isGone = (e: unknown): boolean => errorCode(e) === 410;
export const isForbidden = (e: unknown): boolean => errorCode(e) === 403;

/** A short, log-friendly description: "409 Conflict: Operation cannot be fulfilled ..." or the error message. */
export function describeError(e: unknown): string {
  const code = errorCode(e);
  if (code !== undefined) {
    const s = apiStatus(e);
    return `${code}${s.reason ? ` ${s.reason}` : ''}${s.message ? `: ${s.message}` : ''}`;
  }
  if (e instanceof Error) {
    const c = (e as { code?: unknown }).code;
    return `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}${typeof c === 'string' ? ` (${c})` : ''}`;
  }
  return String(e);
}

/** Build the ApiException this layer throws for a non-2xx response. */
export function apiError(code: number, body: string, headers: Record<string, string> = {}): ApiException<string> {
  let message = `HTTP ${code}`;
  try {
    const s = JSON.parse(body) as { message?: unknown };
    if (typeof s.message === 'string') message = s.message;
  } catch {
    // not JSON
  }
  return new ApiException<string>(code, message, body, headers);
}

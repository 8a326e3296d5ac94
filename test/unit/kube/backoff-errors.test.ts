import { ApiException } from '@kubernetes/client-node';
import { Backoff, jittered } from '../../../src/kube/backoff.ts';
import { apiStatus, describeError, isAlreadyExists, isConflict, isGone, isNotFound } from '../../../src/kube/errors.ts';
import { requestOptions } from '../../../src/kube/request.ts';

describe('Backoff', () => {
  it('doubles up to the cap and resets', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1_000, random: () => 0 });
    expect([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    expect(b.attempts).toBe(6);
    b.reset();
    expect(b.next()).toBe(100);
  });

  it('adds up to `jitter` of random extra', () => {
    expect(jittered(1_000, 0.2, () => 0.5)).toBe(1_100);
    const b = new Backoff({ initialMs: 1_000, maxMs: 1_000, jitter: 0.2, random: () => 0.999 });
    expect(b.next()).toBe(1_200);
    const spread = new Set(Array.from({ length: 50 }, () => new Backoff({ initialMs: 1_000 }).next()));
    expect(spread.size).toBeGreaterThan(10);
  });

  it('rejects nonsense', () => {
    expect(() => new Backoff({ initialMs: 0 })).toThrow();
    expect(() => new Backoff({ initialMs: 10, maxMs: 5 })).toThrow();
  });
});

describe('API errors', () => {
  const status = (code: number, reason: string) =>
    new ApiException<string>(code, reason, JSON.stringify({ kind: 'Status', code, reason, message: `the ${reason} message` }), {});

  it('classifies by code and Status reason', () => {
    expect(isNotFound(status(404, 'NotFound'))).toBe(true);
    expect(isConflict(status(409, 'Conflict'))).toBe(true);
    expect(isConflict(status(409, 'AlreadyExists'))).toBe(false);
    expect(isAlreadyExists(status(409, 'AlreadyExists'))).toBe(true);
    expect(isGone(status(410, 'Expired'))).toBe(true);
    expect(isNotFound(new Error('ECONNREFUSED'))).toBe(false);
    expect(isNotFound({ statusCode: 404 })).toBe(true);
    expect(apiStatus(status(409, 'Conflict'))).toEqual({ code: 409, reason: 'Conflict', message: 'the Conflict message' });
    expect(describeError(status(410, 'Expired'))).toBe('410 Expired: the Expired message');
    expect(describeError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }))).toBe('connect ECONNREFUSED 127.0.0.1:1 (ECONNREFUSED)');
  });

  it('a 409 without a parsable body counts as a conflict', () => {
    expect(isConflict(new ApiException<string>(409, 'x', 'not json', {}))).toBe(true);
  });
});

describe('requestOptions', () => {
  it('appends a middleware that sets Content-Type and the abort signal', async () => {
    const ctl = new AbortController();
    const o = requestOptions({ contentType: 'application/merge-patch+json', signal: ctl.signal });
    expect(o.middlewareMergeStrategy).toBe('append');
    const headers: Record<string, string> = {};
    let signal: AbortSignal | undefined;
    const ctx = { setHeaderParam: (k: string, v: string) => (headers[k] = v), setSignal: (s: AbortSignal) => (signal = s) };
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a minimal RequestContext stand-in
    await o.middleware![0]!.pre(ctx as any).toPromise();
    expect(headers['Content-Type']).toBe('application/merge-patch+json');
    expect(signal).toBe(ctl.signal);
  });
});

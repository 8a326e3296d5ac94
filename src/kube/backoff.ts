/**
 * Exponential backoff with jitter, as client-go's wait.Backoff: each failure doubles the delay up to a cap,
 * and a random fraction spreads clients that failed together (an apiserver restart drops every watch at once).
 */

export interface BackoffOptions {
  /** First delay (default 500 ms). */
  initialMs?: number;
  /** Cap (default 30 s). */
  maxMs?: number;
  /** Growth per failure (default 2). */
  factor?: number;
  /** Random extra fraction: a delay d becomes d × (1 + jitter × random()) (default 0.2), still capped at maxMs × (1 + jitter). */
  jitter?: number;
  /** Source of randomness in [0, 1) (default Math.random); tests inject a constant. */
  random?: () => number;
}

export class Backoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly jitter: number;
  private readonly random: () => number;
  private attempt = 0;

  constructor(opts: BackoffOptions = {}) {
    this.initialMs = opts.initialMs ?? 500;
    this.maxMs = opts.maxMs ?? 30_000;
    this.factor = opts.factor ?? 2;
    this.jitter = opts.jitter ?? 0.2;
    this.random = opts.random ?? Math.random;
    if (!(this.initialMs > 0) || !(this.maxMs >= this.initialMs) || !(this.factor >= 1) || !(this.jitter >= 0)) {
      throw new Error(`invalid backoff: initialMs=${this.initialMs} maxMs=${this.maxMs} factor=${this.factor} jitter=${this.jitter}`);
    }
  }

  /** Failures since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The delay before the next try; each call counts one more failure. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * this.factor ** this.attempt);
    this.attempt++;
    return jittered(base, this.jitter, this.random);
  }

  /** After a success. */
  reset(): void {
    this.attempt = 0;
  }
}

/** d × (1 + fraction × random()), rounded to whole milliseconds. */
export function jittered(ms: number, fraction: number, random: () => number = Math.random): number {
  return Math.round(ms * (1 + fraction * random()));
}

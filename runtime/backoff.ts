/**
 * The one retry schedule: exponential, capped, with jitter between half and the whole step, drawn
 * from the injected clock's random source so processes that lost the same server do not come back
 * in step. A schedule is a value: callers make a new one (`reset`) after a success.
 */
export interface Backoff {
  /** the next delay, growing */
  next(): number;
  /** back to the base delay (call after a success) */
  reset(): void;
  /** how many delays were taken since the last reset */
  readonly failures: number;
}

export function backoff(baseMs: number, maxMs: number, random: () => number): Backoff {
  let k = 0;
  return {
    next() {
      const step = Math.min(maxMs, baseMs * 2 ** Math.min(k, 30));
      k++;
      return Math.round(step / 2 + random() * (step / 2));
    },
    reset() {
      k = 0;
    },
    get failures() {
      return k;
    },
  };
}

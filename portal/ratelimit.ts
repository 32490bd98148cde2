/**
 * Token buckets keyed by client (IP, token, account, device): `ratePerSec` tokens a second up to
 * `burst`. Memory is bounded: when the table is full, buckets that have refilled are dropped
 * (they carry no state), and if none has, the oldest are.
 */
export interface Take {
  readonly ok: boolean;
  /** whole seconds until a token is available (for Retry-After) */
  readonly retryAfterS: number;
}

interface Bucket {
  tokens: number;
  atMs: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    readonly ratePerSec: number,
    readonly burst: number,
    private readonly maxKeys = 100_000,
  ) {}

  get enabled(): boolean {
    return this.ratePerSec > 0;
  }

  take(key: string, nowMs: number, cost = 1): Take {
    if (!this.enabled) return { ok: true, retryAfterS: 0 };
    let b = this.buckets.get(key);
    if (b === undefined) {
      if (this.buckets.size >= this.maxKeys) this.sweep(nowMs);
      b = { tokens: this.burst, atMs: nowMs };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((nowMs - b.atMs) / 1000) * this.ratePerSec);
      b.atMs = nowMs;
    }
    if (b.tokens >= cost) {
      b.tokens -= cost;
      return { ok: true, retryAfterS: 0 };
    }
    return { ok: false, retryAfterS: Math.max(1, Math.ceil((cost - b.tokens) / this.ratePerSec)) };
  }

  private sweep(nowMs: number): void {
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((nowMs - b.atMs) / 1000) * this.ratePerSec >= this.burst) this.buckets.delete(k);
    }
    let extra = this.buckets.size - Math.floor(this.maxKeys * 0.9);
    for (const k of this.buckets.keys()) {
      if (extra-- <= 0) break;
      this.buckets.delete(k);
    }
  }

  get size(): number {
    return this.buckets.size;
  }
}

/**
 * One clock for every actor: the time, timers and randomness, behind one small interface (as
 * matter.js's `Time`). Production code takes a `Clock` and never calls Date.now, setTimeout or
 * Math.random itself, so timing rules (backoff, rate limits, sessions, long polls, staleness) are
 * tested by driving a `FakeClock`, never by sleeping, and no test depends on the machine's speed.
 */
import { randomInt } from 'node:crypto';

export interface Timer {
  /** cancel; calling it after the timer fired, or twice, does nothing */
  cancel(): void;
}

export interface Clock {
  /** milliseconds since the Unix epoch, as Date.now() */
  now(): number;
  /** run `fn` once after `ms`; `unref` lets the process exit while it is pending */
  setTimer(fn: () => void, ms: number, opts?: { unref?: boolean }): Timer;
  /** a uniform number in [0, 1), for jitter */
  random(): number;
}

/** resolves after `ms` of this clock's time; rejects with the signal's reason when aborted */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const onAbort = (): void => {
      t.cancel();
      reject(signal?.reason as Error);
    };
    const t = clock.setTimer(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function isoNow(clock: Clock): string {
  return new Date(clock.now()).toISOString();
}

/** The real clock. Its randomness is crypto-grade so jitter cannot be predicted by a peer. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms, opts) {
    const h = setTimeout(fn, Math.max(0, ms));
    if (opts?.unref === true) h.unref();
    return { cancel: () => clearTimeout(h) };
  },
  random: () => randomInt(0, 2 ** 47) / 2 ** 47,
};

interface Pending {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
  cancelled: boolean;
}

/**
 * A clock that moves only when a test says so. `advance(ms)` runs every timer that falls due, in
 * order of due time (timers set by a timer that fire within the same advance run too), and awaits a
 * macrotask turn between timers so the promise chains they start can settle.
 */
export class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  private pending: Pending[] = [];
  private readonly rand: () => number;

  constructor(startMs = Date.UTC(2026, 0, 1), random: () => number = seeded(1)) {
    this.t = startMs;
    this.rand = random;
  }

  now(): number {
    return this.t;
  }

  random(): number {
    return this.rand();
  }

  setTimer(fn: () => void, ms: number): Timer {
    const p: Pending = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.pending.push(p);
    return { cancel: () => void (p.cancelled = true) };
  }

  /** timers not yet fired nor cancelled */
  get timers(): number {
    return this.pending.filter((p) => !p.cancelled).length;
  }

  /** due time of the next live timer, if any */
  get nextAt(): number | undefined {
    const live = this.pending.filter((p) => !p.cancelled).sort((a, b) => a.at - b.at || a.seq - b.seq);
    return live[0]?.at;
  }

  /** Move time forward by `ms`, firing the timers that fall due on the way. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await turn();
      this.pending = this.pending.filter((p) => !p.cancelled);
      this.pending.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.pending[0];
      if (next === undefined || next.at > end) break;
      this.pending.shift();
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = end;
    await turn();
  }

  /** Jump the wall time without firing timers (a clock set by NTP, or a wrong one). */
  set(ms: number): void {
    this.t = ms;
  }
}

function turn(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/** A small deterministic generator (mulberry32) for fake clocks and tests. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

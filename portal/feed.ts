/**
 * Device feeds in memory: the latest item number per device (so an unchanged poll needs no
 * database read), the long polls waiting for an item, and the wire form of an item.
 */
import { fail } from '../mesh/errors.js';
import { Lru } from '../mesh/lru.js';
import type { Clock, Timer } from '../runtime/clock.js';
import type { Storage, StoredItem } from './storage/types.js';

/** A feed item as the Download and MQTT JSON (`FeedItem` in mesh/protocol.ts), built from stored JSON text. */
export function itemJson(i: StoredItem, path?: readonly string[]): string {
  const master = i.master === null ? '' : `,"master":${i.master}`;
  const proof = path === undefined ? '' : `,"path":${JSON.stringify(path)}`;
  return `{"n":${i.n},"kind":${JSON.stringify(i.kind)},"object":${objectJson(i)}${master},"index":${i.index}${proof}}`;
}

/** The stored object (JSON text of an object), with the device's own part inside it when it has one. */
function objectJson(i: StoredItem): string {
  return i.part === null ? i.object : `${i.object.slice(0, -1)},"parts":[${i.part}]}`;
}

/** The last object encoded for a push: the items of one change to many devices share it. */
let lastObject: { text: string; bytes: Buffer } | undefined;

/** itemJson(i) as UTF-8 bytes, encoding an object shared by many items (one change to a fleet) only once. */
export function itemBuffer(i: StoredItem): Buffer {
  if (i.object.length < 4096 || i.part !== null) return Buffer.from(itemJson(i), 'utf8');
  if (lastObject?.text !== i.object) lastObject = { text: i.object, bytes: Buffer.from(i.object, 'utf8') };
  const master = i.master === null ? '' : `,"master":${i.master}`;
  const head = Buffer.from(`{"n":${i.n},"kind":${JSON.stringify(i.kind)},"object":`, 'utf8');
  const tail = Buffer.from(`${master},"index":${i.index}}`, 'utf8');
  return Buffer.concat([head, lastObject.bytes, tail], head.length + lastObject.bytes.length + tail.length);
}

interface Waiter {
  readonly since: number;
  readonly done: () => void;
}

export class FeedHub {
  private readonly latest = new Lru<string, number>(200_000);
  private readonly waiters = new Map<string, Waiter>();
  private closing = false;

  constructor(
    private readonly store: Storage,
    private readonly maxWaiters: number,
    private readonly clock: Clock,
  ) {}

  get pending(): number {
    return this.waiters.size;
  }

  /** The device's latest item number if memory can say it (the store's change feed is reliable and it is cached). */
  cachedLatestN(device: string): number | undefined {
    return this.store.eventsReliable ? this.latest.get(device) : undefined;
  }

  /** The device's latest item number: from memory while the store's change feed is reliable. */
  async latestN(device: string): Promise<number> {
    const cached = this.cachedLatestN(device);
    if (cached !== undefined) return cached;
    const n = await this.store.latestN(device);
    this.bump(device, n);
    return this.latest.get(device) ?? n;
  }

  /** An item was committed (here or by another process). */
  onItem(device: string, n: number): void {
    this.bump(device, n);
    const w = this.waiters.get(device);
    if (w !== undefined && n > w.since) w.done();
  }

  private bump(device: string, n: number): void {
    const old = this.latest.get(device);
    if (old === undefined || n > old) this.latest.set(device, n);
  }

  /** Forget cached numbers (another writer's changes may have been missed) and wake every poll. */
  resync(): void {
    this.latest.clear();
    for (const w of this.waiters.values()) w.done();
  }

  /**
   * Wait until the device has an item after `since`, `ms` pass, the client goes away or the portal
   * closes. One long poll per device: a newer one answers the older one at once.
   */
  wait(device: string, since: number, ms: number, signal: AbortSignal): Promise<void> {
    if (this.closing || ms <= 0 || signal.aborted) return Promise.resolve();
    const old = this.waiters.get(device);
    if (old !== undefined) old.done();
    else if (this.waiters.size >= this.maxWaiters) fail('unavailable', 'too many devices are waiting on this portal; poll again later', { retryAfterS: 5 });
    return new Promise<void>((resolve) => {
      let timer: Timer | undefined;
      const done = (): void => {
        timer?.cancel();
        timer = undefined;
        signal.removeEventListener('abort', done);
        if (this.waiters.get(device) === w) this.waiters.delete(device);
        resolve();
      };
      const w: Waiter = { since, done };
      this.waiters.set(device, w);
      timer = this.clock.setTimer(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  /** Answer every long poll now (shutdown). */
  close(): void {
    this.closing = true;
    for (const w of this.waiters.values()) w.done();
  }
}

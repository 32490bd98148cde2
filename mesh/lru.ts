/**
 * A size-bounded map that forgets the least recently used entry (approximately: an entry read
 * while it is in the older half of the map moves to the young end, so a hit costs one Map lookup
 * rather than a delete and an insert, and entries in use are never the ones forgotten).
 */
interface Slot<V> {
  v: V;
  /** insertion tick: the map's order is the order of these */
  t: number;
}

export class Lru<K, V> {
  private readonly m = new Map<K, Slot<V>>();
  private tick = 0;
  constructor(private readonly max: number) {}

  get(k: K): V | undefined {
    const s = this.m.get(k);
    if (s === undefined) return undefined;
    if (this.tick - s.t > this.max >>> 1) {
      this.m.delete(k);
      s.t = ++this.tick;
      this.m.set(k, s);
    }
    return s.v;
  }

  set(k: K, v: V): void {
    this.m.delete(k);
    this.m.set(k, { v, t: ++this.tick });
    if (this.m.size > this.max) {
      const first = this.m.keys().next();
      if (first.done !== true) this.m.delete(first.value);
    }
  }

  delete(k: K): void {
    this.m.delete(k);
  }

  clear(): void {
    this.m.clear();
  }

  *entries(): IterableIterator<[K, V]> {
    for (const [k, s] of this.m) yield [k, s.v];
  }

  get size(): number {
    return this.m.size;
  }
}

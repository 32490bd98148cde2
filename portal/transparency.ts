/**
 * The portal's transparency log as this process serves it. The tree itself lives in the database
 * (storage keeps the RFC 9162 node hashes next to the leaves, written in the transaction that
 * appends them), so any number of processes share one log and none holds it in memory: a proof
 * reads the O(log n) nodes it needs (mesh/merkle.ts nodesRead) and computes from them.
 *
 * The process keeps only the newest head it can prove, and signs that. A head is taken from this
 * process's own commits (the root its writer computed from the stored edge, committed with the
 * nodes), or from the database or another process's notification; those are certified first:
 * the root is recomputed from the stored nodes of that size, and a head whose nodes are not all
 * committed, or do not give its root, is never served.
 */
import type { Signer, SignedEnvelope } from '../mesh/envelope.js';
import { equalBytes } from '../mesh/bytes.js';
import { fail } from '../mesh/errors.js';
import { createTreeHead } from '../mesh/messages.js';
import { signCheckpoint } from '../mesh/checkpoint.js';
import { consistencyProofFrom, inclusionProofFrom, nodesRead, rootFrom, type NodeAt } from '../mesh/merkle.js';
import { isoNow, type Clock } from '../runtime/clock.js';
import type { LogHead, Storage } from './storage/types.js';

export class LogTree {
  /** the newest head this process can prove (none before the first sync) */
  private head: LogHead | undefined;
  private signed: { size: number; env: SignedEnvelope } | undefined;
  private note: { size: number; text: string } | undefined;
  /** a newer head heard of but not yet certified */
  private heard: LogHead | undefined;
  private certifying: Promise<void> | undefined;
  private syncing: Promise<void> | undefined;
  private again = false;

  constructor(
    private readonly store: Storage,
    private readonly key: Signer,
    private readonly clock: Clock,
    private readonly onError: (e: unknown) => void = () => undefined,
  ) {
    store.onEvent((e) => {
      if (e.type !== 'log' || e.size <= this.size) return;
      if (e.local && e.root !== undefined) this.advance({ size: e.size, root: e.root });
      else if (e.root !== undefined) this.hear({ size: e.size, root: e.root });
      else this.sync().catch(this.onError);
    });
  }

  /** Size of the newest head this process serves. */
  get size(): number {
    return this.head?.size ?? 0;
  }

  /** Read the committed head from the database and certify it. Concurrent calls share one read (and one more if asked meanwhile). */
  sync(): Promise<void> {
    if (this.syncing !== undefined) {
      this.again = true;
      return this.syncing;
    }
    const run = async (): Promise<void> => {
      do {
        this.again = false;
        const h = await this.store.logHead();
        if (this.head === undefined || h.size > this.head.size) await this.certify(h);
      } while (this.again);
    };
    this.syncing = run().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  /** Make sure the served head has at least `size` leaves (reading the database if it has not). */
  async ensure(size: number): Promise<void> {
    if (this.size < size && this.certifying !== undefined) await this.certifying;
    if (this.head === undefined || this.size < size) await this.sync();
  }

  /** The newest provable head as a C2SP checkpoint (a signed note), signed again only when it changed. */
  checkpoint(origin: string): string {
    const h = this.head ?? fail('unavailable', 'the log head is not loaded yet; try again');
    if (this.note === undefined || this.note.size !== h.size) this.note = { size: h.size, text: signCheckpoint({ origin, size: h.size, root: h.root }, this.key) };
    return this.note.text;
  }

  /**
   * What a Download answer proves (mesh/feedlog.ts): the served head as a checkpoint, the
   * consistency proof to it from `from` leaves (the head the device holds; clamped to the served
   * size) and the inclusion proof of each leaf index (undefined for a leaf beyond the head), all
   * computed from one read of the stored nodes. `head`: prove against that (cosigned) head instead.
   */
  async feedProofs(origin: string, indices: readonly number[], from: number, head?: { size: number; note: string }): Promise<{ note: string; from: number; consistency: Uint8Array[]; paths: (Uint8Array[] | undefined)[] }> {
    // a cosigned head (portal/witnesses.ts) when there is one; else the newest
    const note = head?.note ?? this.checkpoint(origin);
    const size = head?.size ?? this.size;
    this.provable(size);
    const f = Math.min(from, size);
    const compute = (node: NodeAt): { consistency: Uint8Array[]; paths: (Uint8Array[] | undefined)[] } => ({
      consistency: consistencyProofFrom(f, size, node),
      paths: indices.map((i) => (i < size ? inclusionProofFrom(i, size, node) : undefined)),
    });
    const node = await this.fetch(compute);
    return { note, from: f, ...compute(node) };
  }

  /** The signed tree head of the newest provable head, signed again only when it changed. */
  treeHead(): SignedEnvelope {
    const h = this.head ?? fail('unavailable', 'the log head is not loaded yet; try again');
    if (this.signed === undefined || this.signed.size !== h.size) {
      this.signed = { size: h.size, env: createTreeHead(this.key, h.size, h.root, isoNow(this.clock)) };
    }
    return this.signed.env;
  }

  /** §2.1.3.1 inclusion proof of leaf `index` in the tree of `size` leaves (size <= the served head). */
  async inclusionProof(index: number, size: number): Promise<Uint8Array[]> {
    this.provable(size);
    return inclusionProofFrom(index, size, await this.fetch((node) => inclusionProofFrom(index, size, node)));
  }

  /** §2.1.4.1 consistency proof from `from` leaves to `to` leaves (to <= the served head). */
  async consistencyProof(from: number, to: number): Promise<Uint8Array[]> {
    this.provable(to);
    return consistencyProofFrom(from, to, await this.fetch((node) => consistencyProofFrom(from, to, node)));
  }

  private provable(size: number): void {
    if (size > this.size) fail('not-found', `the log has ${this.size} entries, fewer than ${size}`, { size: this.size });
  }

  /** The stored nodes a computation reads, fetched in one query. */
  private async fetch(compute: (node: NodeAt) => unknown): Promise<NodeAt> {
    const names = nodesRead(compute);
    const hashes = await this.store.treeNodes(names);
    const m = new Map(names.map(([k, i], j) => [`${k}/${i}`, hashes[j] as Uint8Array]));
    return (k, i) => m.get(`${k}/${i}`) ?? fail('internal', `node ${k}/${i} was not fetched`);
  }

  /** A head this process committed: its writer computed the root from the stored edge, in the same transaction. */
  private advance(h: LogHead): void {
    if (this.head === undefined || h.size > this.head.size) this.head = h;
  }

  /** A head another process committed: certify it before serving it (one at a time; the newest heard wins). */
  private hear(h: LogHead): void {
    if (this.heard !== undefined && this.heard.size >= h.size) return;
    this.heard = h;
    if (this.certifying !== undefined) return;
    this.certifying = (async () => {
      while (this.heard !== undefined) {
        const next = this.heard;
        this.heard = undefined;
        if (next.size > this.size) await this.certify(next).catch(this.onError);
      }
    })().finally(() => {
      this.certifying = undefined;
    });
  }

  /** Serve `h` only if the stored nodes of its size give its root. */
  private async certify(h: LogHead): Promise<void> {
    const root = rootFrom(h.size, await this.fetch((node) => rootFrom(h.size, node)));
    if (!equalBytes(root, h.root)) fail('internal', `the stored log tree does not give the announced root at size ${h.size}; not serving it`);
    this.advance(h);
  }
}

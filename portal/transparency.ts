/**
 * The portal's transparency log in memory: an RFC 9162 Merkle tree over the leaf hashes stored
 * in the database, rebuilt on start and kept in step with appends (this process's and, through
 * the store's change feed, other processes'). Leaves are only ever added from the database, in
 * index order, so the tree is always a prefix of the stored log.
 */
import type { Signer, SignedEnvelope } from '../mesh/envelope.js';
import { createTreeHead } from '../mesh/messages.js';
import { MerkleTree } from '../mesh/merkle.js';
import { isoNow, type Clock } from '../runtime/clock.js';
import type { Storage } from './storage/types.js';

export class LogTree {
  private readonly tree = new MerkleTree();
  private syncing: Promise<void> | undefined;
  private again = false;
  private head: { size: number; env: SignedEnvelope } | undefined;

  constructor(
    private readonly store: Storage,
    private readonly key: Signer,
    private readonly clock: Clock,
  ) {}

  get size(): number {
    return this.tree.size;
  }

  get merkle(): MerkleTree {
    return this.tree;
  }

  /** Read leaves committed since the last sync. Concurrent calls share one read (and one more if asked meanwhile). */
  sync(): Promise<void> {
    if (this.syncing !== undefined) {
      this.again = true;
      return this.syncing;
    }
    const run = async (): Promise<void> => {
      do {
        this.again = false;
        const hashes = await this.store.leafHashes(this.tree.size);
        for (const h of hashes) this.tree.appendLeafHash(h);
      } while (this.again);
    };
    this.syncing = run().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  /** Make sure the tree holds at least `size` leaves (reading the database if it does not). */
  async ensure(size: number): Promise<void> {
    if (this.tree.size < size) await this.sync();
    if (this.tree.size < size) await this.sync();
  }

  /** The signed tree head of the current tree, signed again only when the size changed. */
  treeHead(): SignedEnvelope {
    const size = this.tree.size;
    if (this.head === undefined || this.head.size !== size) this.head = { size, env: createTreeHead(this.key, size, this.tree.root(size), isoNow(this.clock)) };
    return this.head.env;
  }
}

/**
 * The RFC 9162 (Certificate Transparency v2) Merkle Tree, §2.1, with SHA-256.
 * Pure: no I/O, no clock, no randomness.
 *
 *   MTH({})       = SHA-256()                              (§2.1.1, the empty tree)
 *   MTH({d(0)})   = SHA-256(0x00 || d(0))                  (§2.1.1, a leaf)
 *   MTH(D[n])     = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])),
 *                   k the largest power of two smaller than n (§2.1.1, a node)
 *
 * `MerkleTree` keeps, for every level k, the hashes of the aligned complete subtrees of 2^k
 * leaves that exist so far (level 0 holds the leaf hashes). Any subtree the RFC's recursive
 * definitions ask for is then either one stored node or a fold of at most log2(n) of them, so
 * roots of any historical size and both proofs cost O(log n) hash operations, and an append
 * costs amortised O(1) (one new node per completed subtree).
 *
 * Sizes and indices are JavaScript numbers: non-negative safe integers (< 2^53). The arithmetic
 * below never uses the 32-bit bitwise operators, so sizes beyond 2^31 stay correct.
 *
 * Errors (mesh/errors.ts): a caller's impossible request (negative, non-integer, index >= size,
 * size beyond the tree, oldSize > newSize when *generating*) is 'malformed'; anything a
 * verifier refuses because the claim does not hold (wrong lengths, wrong roots, oldSize > newSize
 * when *verifying*) is 'bad-proof', with the evidence in `detail`.
 */
import { fail } from './errors.js';
import { sha256 } from './crypto.js';
import { equalBytes, hex } from './bytes.js';

/** SHA-256 output length: every leaf hash, node hash, root and proof element is this long. */
export const HASH_LEN = 32;

const LEAF_PREFIX = 0x00;
const NODE_PREFIX = 0x01;

// ---------------------------------------------------------------- hashing (§2.1.1)

/** §2.1.1: the leaf hash, SHA-256(0x00 || data). */
export function leafHash(data: Uint8Array): Uint8Array {
  if (!(data instanceof Uint8Array)) fail('malformed', 'leaf data must be bytes');
  const buf = new Uint8Array(1 + data.length);
  buf[0] = LEAF_PREFIX;
  buf.set(data, 1);
  return sha256(buf);
}

/**
 * §2.1.1: the interior node hash, SHA-256(0x01 || left || right).
 * A raw primitive: it hashes whatever it is given (the verifiers check lengths first).
 */
export function nodeHash(l: Uint8Array, r: Uint8Array): Uint8Array {
  const buf = new Uint8Array(1 + l.length + r.length);
  buf[0] = NODE_PREFIX;
  buf.set(l, 1);
  buf.set(r, 1 + l.length);
  return sha256(buf);
}

const EMPTY_ROOT = sha256(new Uint8Array(0));

/** §2.1.1: the root of the empty tree, SHA-256 of the empty string. */
export function emptyRoot(): Uint8Array {
  return EMPTY_ROOT.slice();
}

/**
 * §2.1.1 MTH of a list of leaf hashes, bottom up (pairing neighbours, an odd last node carried
 * up a level, which gives the same tree as splitting at the largest power of two): for a list
 * built once and not appended to (a manifest), without a MerkleTree.
 */
export function rootOfLeafHashes(hashes: readonly Uint8Array[]): Uint8Array {
  if (hashes.length === 0) return emptyRoot();
  let level = hashes;
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i + 1 < level.length; i += 2) next.push(nodeHash(level[i] as Uint8Array, level[i + 1] as Uint8Array));
    if (level.length % 2 === 1) next.push(level[level.length - 1] as Uint8Array);
    level = next;
  }
  return (level[0] as Uint8Array).slice();
}

// ---------------------------------------------------------------- integer helpers

function isCount(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

function count(n: unknown, field: string): number {
  if (!isCount(n)) fail('malformed', `${field} must be a non-negative safe integer`, { [field]: String(n) });
  return n;
}

/** The largest power of two strictly smaller than n (n >= 2): the split point k of §2.1.1. */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

const half = (x: number): number => Math.floor(x / 2);
const isOdd = (x: number): boolean => x % 2 === 1;

// ---------------------------------------------------------------- the tree

/** One level of stored node hashes, packed HASH_LEN bytes apiece in a growable buffer. */
class Level {
  private buf = new Uint8Array(HASH_LEN * 16);
  length = 0;

  push(h: Uint8Array): void {
    if ((this.length + 1) * HASH_LEN > this.buf.length) {
      const bigger = new Uint8Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
    }
    this.buf.set(h, this.length * HASH_LEN);
    this.length++;
  }

  /** A view into the store: internal use only, callers receive copies. */
  at(i: number): Uint8Array {
    return this.buf.subarray(i * HASH_LEN, (i + 1) * HASH_LEN);
  }
}

export class MerkleTree {
  /** levels[k][i] = MTH(D[i*2^k : (i+1)*2^k]) for every complete aligned subtree. */
  private readonly levels: Level[] = [new Level()];

  constructor(leafHashes?: Iterable<Uint8Array>) {
    if (leafHashes !== undefined) for (const h of leafHashes) this.appendLeafHash(h);
  }

  get size(): number {
    return (this.levels[0] as Level).length;
  }

  /** Append a leaf by its hash (§2.1.1 leaf hash, 32 bytes). Returns the new leaf's index. */
  appendLeafHash(h: Uint8Array): number {
    if (!(h instanceof Uint8Array) || h.length !== HASH_LEN) {
      fail('malformed', `a leaf hash must be ${HASH_LEN} bytes`);
    }
    const index = this.size;
    (this.levels[0] as Level).push(h);
    // Every subtree this leaf completes gets its node: while the node just written is a
    // right child (odd index), hash it with its left sibling into the level above.
    let i = index;
    let k = 0;
    while (isOdd(i)) {
      const level = this.levels[k] as Level;
      const parent = nodeHash(level.at(i - 1), level.at(i));
      if (this.levels.length === k + 1) this.levels.push(new Level());
      (this.levels[k + 1] as Level).push(parent);
      i = half(i);
      k++;
    }
    return index;
  }

  /** Append a leaf by its data; stores SHA-256(0x00 || data). Returns the new leaf's index. */
  appendData(data: Uint8Array): number {
    return this.appendLeafHash(leafHash(data));
  }

  /** The leaf hash at index i (a copy). */
  leafHashAt(i: number): Uint8Array {
    count(i, 'index');
    if (i >= this.size) fail('malformed', 'leaf index beyond the tree', { index: i, size: this.size });
    return (this.levels[0] as Level).at(i).slice();
  }

  /** §2.1.1 MTH of the first `size` leaves, for the current or any earlier size. */
  root(size: number = this.size): Uint8Array {
    this.checkSize(size, 'size');
    return rootFrom(size, this.node);
  }

  /**
   * §2.1.3.1: PATH(m, D[n]), the inclusion proof of leaf `index` in the tree of the first
   * `size` leaves. Ordered from the leaf's sibling up to the root's child, as in the RFC.
   */
  inclusionProof(index: number, size: number = this.size): Uint8Array[] {
    this.checkSize(size, 'size');
    return inclusionProofFrom(index, size, this.node);
  }

  /**
   * §2.1.4.1: PROOF(m, D[n]), the consistency proof from the tree of the first `oldSize`
   * leaves to the tree of the first `newSize`. Empty when oldSize is 0 or equals newSize
   * (nothing to prove: the RFC defines proofs for 0 < m < n).
   */
  consistencyProof(oldSize: number, newSize: number = this.size): Uint8Array[] {
    count(oldSize, 'oldSize');
    this.checkSize(newSize, 'newSize');
    return consistencyProofFrom(oldSize, newSize, this.node);
  }

  // ------------------------------------------------------------ internals

  private readonly node: NodeAt = (k, i) => (this.levels[k] as Level).at(i);

  private checkSize(size: number, field: string): void {
    count(size, field);
    if (size > this.size) fail('malformed', `${field} is beyond the tree`, { [field]: size, treeSize: this.size });
  }
}

// ---------------------------------------------------------------- proofs over stored nodes

/**
 * A stored node: MTH(D[index*2^level : (index+1)*2^level]), the hash of an aligned complete
 * subtree (level 0: the leaf hashes). The tree's size is the caller's to check: a reader is only
 * asked for nodes that exist in a tree of the size it was asked about.
 */
export type NodeAt = (level: number, index: number) => Uint8Array;

/**
 * MTH(D[a:b]) for b > a, where a is a multiple of a power of two >= b - a: true of every
 * range the §2.1.1 recursion visits. Such a range splits into aligned complete subtrees of
 * decreasing size (the binary digits of b - a), and §2.1.1 nests them to the right:
 * MTH = HASH(0x01 || C1 || HASH(0x01 || C2 || ... )).
 * May return a reader's internal view; public functions copy.
 */
function rangeHash(a: number, b: number, node: NodeAt): Uint8Array {
  const chunks: Uint8Array[] = [];
  let pos = a;
  let remaining = b - a;
  let k = 0;
  let width = 1;
  while (width * 2 <= remaining) {
    width *= 2;
    k++;
  }
  for (; remaining > 0; width /= 2, k--) {
    if (remaining >= width) {
      chunks.push(node(k, pos / width));
      pos += width;
      remaining -= width;
    }
  }
  let h = chunks[chunks.length - 1] as Uint8Array;
  for (let j = chunks.length - 2; j >= 0; j--) h = nodeHash(chunks[j] as Uint8Array, h);
  return h;
}

/** §2.1.3.1 PATH(m, D[a:b]), m absolute; appends to out in the RFC's order. */
function path(m: number, a: number, b: number, node: NodeAt, out: Uint8Array[]): void {
  const n = b - a;
  if (n === 1) return;
  const k = splitPoint(n);
  if (m < a + k) {
    path(m, a, a + k, node, out);
    out.push(rangeHash(a + k, b, node));
  } else {
    path(m, a + k, b, node, out);
    out.push(rangeHash(a, a + k, node));
  }
}

/** §2.1.4.1 SUBPROOF(m, D[a:b], flag), m relative to a; appends to out in the RFC's order. */
function subproof(m: number, a: number, b: number, flag: boolean, node: NodeAt, out: Uint8Array[]): void {
  const n = b - a;
  if (m === n) {
    if (!flag) out.push(rangeHash(a, b, node));
    return;
  }
  const k = splitPoint(n);
  if (m <= k) {
    subproof(m, a, a + k, flag, node, out);
    out.push(rangeHash(a + k, b, node));
  } else {
    subproof(m - k, a + k, b, false, node, out);
    out.push(rangeHash(a, a + k, node));
  }
}

/** §2.1.1 MTH of the first `size` leaves of the tree `node` reads. */
export function rootFrom(size: number, node: NodeAt): Uint8Array {
  count(size, 'size');
  return size === 0 ? emptyRoot() : rangeHash(0, size, node).slice();
}

/** §2.1.3.1 PATH(index, D[size]) over the tree `node` reads (see MerkleTree.inclusionProof). */
export function inclusionProofFrom(index: number, size: number, node: NodeAt): Uint8Array[] {
  count(index, 'index');
  count(size, 'size');
  if (index >= size) fail('malformed', 'leaf index must be smaller than the tree size', { index, size });
  const out: Uint8Array[] = [];
  path(index, 0, size, node, out);
  return out.map((h) => h.slice());
}

/** §2.1.4.1 PROOF(oldSize, D[newSize]) over the tree `node` reads (see MerkleTree.consistencyProof). */
export function consistencyProofFrom(oldSize: number, newSize: number, node: NodeAt): Uint8Array[] {
  count(oldSize, 'oldSize');
  count(newSize, 'newSize');
  if (oldSize > newSize) fail('malformed', 'oldSize must not exceed newSize', { oldSize, newSize });
  if (oldSize === 0 || oldSize === newSize) return [];
  const out: Uint8Array[] = [];
  subproof(oldSize, 0, newSize, true, node, out);
  return out.map((h) => h.slice());
}

const PLACEHOLDER = new Uint8Array(HASH_LEN);

/**
 * The stored nodes a computation over a NodeAt reads, as [level, index] pairs without repeats,
 * found by running it over placeholder hashes: what a store must fetch before running it for real.
 */
export function nodesRead(compute: (node: NodeAt) => unknown): [number, number][] {
  const seen = new Map<string, [number, number]>();
  compute((k, i) => {
    seen.set(`${k}/${i}`, [k, i]);
    return PLACEHOLDER;
  });
  return [...seen.values()];
}

// ---------------------------------------------------------------- appending at the right edge

/**
 * The nodes on the right edge of a tree of `size` leaves: for every level k with a complete
 * subtree, the last one, [k, floor(size / 2^k) - 1]. They are enough to compute the root and to
 * append (TreeEdge), so a writer need not hold the whole tree.
 */
export function edgeNodes(size: number): [number, number][] {
  count(size, 'size');
  const out: [number, number][] = [];
  for (let k = 0, width = 1; width <= size; k++, width *= 2) out.push([k, Math.floor(size / width) - 1]);
  return out;
}

/** A node a TreeEdge append created: [level, index, hash]. */
export type NewNode = readonly [number, number, Uint8Array];

/**
 * The right edge of a tree (edgeNodes), which grows with appends as MerkleTree does (each leaf
 * adds one node per subtree it completes) and gives the root of its current size.
 */
export class TreeEdge {
  private readonly last: Uint8Array[];
  private n: number;

  /** `edge[k]` is the node edgeNodes(size) names at level k. */
  constructor(size: number, edge: readonly Uint8Array[]) {
    count(size, 'size');
    const want = edgeNodes(size).length;
    if (edge.length !== want) fail('malformed', `a tree of ${size} leaves has ${want} edge nodes, not ${edge.length}`);
    for (const h of edge) if (!(h instanceof Uint8Array) || h.length !== HASH_LEN) fail('malformed', `an edge node must be ${HASH_LEN} bytes`);
    this.n = size;
    this.last = edge.map((h) => h.slice());
  }

  get size(): number {
    return this.n;
  }

  /** The edge nodes, level 0 first (as edgeNodes(size) names them). */
  get nodes(): readonly Uint8Array[] {
    return this.last;
  }

  /** Append a leaf by its hash; returns the leaf and every node it completed (level 0 first). */
  append(h: Uint8Array): NewNode[] {
    if (!(h instanceof Uint8Array) || h.length !== HASH_LEN) fail('malformed', `a leaf hash must be ${HASH_LEN} bytes`);
    const out: NewNode[] = [[0, this.n, h]];
    let i = this.n;
    let k = 0;
    let cur = h;
    while (isOdd(i)) {
      cur = nodeHash(this.last[k] as Uint8Array, cur);
      this.last[k] = out[out.length - 1]?.[2] as Uint8Array;
      i = half(i);
      k++;
      out.push([k, i, cur]);
    }
    this.last[k] = cur;
    this.n++;
    return out;
  }

  /** §2.1.1 MTH of the current size. */
  root(): Uint8Array {
    const n = this.n;
    return rootFrom(n, (k, i) => {
      if (i !== Math.floor(n / 2 ** k) - 1) fail('internal', 'the root needs a node off the right edge');
      return this.last[k] as Uint8Array;
    });
  }
}

// ---------------------------------------------------------------- verification

function checkProofShape(proof: unknown): asserts proof is readonly Uint8Array[] {
  if (!Array.isArray(proof)) fail('malformed', 'a proof must be an array of hashes');
  for (const p of proof) if (!(p instanceof Uint8Array)) fail('malformed', 'a proof must be an array of hashes');
}

function checkHashLen(h: unknown, field: string): asserts h is Uint8Array {
  if (!(h instanceof Uint8Array)) fail('malformed', `${field} must be bytes`);
  if (h.length !== HASH_LEN) {
    fail('bad-proof', `${field} must be ${HASH_LEN} bytes`, { field, expectedLength: HASH_LEN, actualLength: h.length });
  }
}

function checkElements(proof: readonly Uint8Array[]): void {
  proof.forEach((p, i) => {
    if (p.length !== HASH_LEN) {
      fail('bad-proof', `proof element ${i} must be ${HASH_LEN} bytes`, {
        element: i,
        expectedLength: HASH_LEN,
        actualLength: p.length,
      });
    }
  });
}

/**
 * The number of proof elements the §2.1.3.2 loop consumes for (index, size), found by running
 * its index arithmetic without hashing, so a proof of the wrong length is refused before any
 * hashing is done.
 */
function inclusionLength(index: number, size: number): number {
  let fn = index;
  let sn = size - 1;
  let steps = 0;
  while (sn > 0) {
    if (isOdd(fn) || fn === sn) {
      if (!isOdd(fn)) {
        while (!isOdd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    }
    fn = half(fn);
    sn = half(sn);
    steps++;
  }
  return steps;
}

/**
 * §2.1.3.2: the root that `proof` gives for `leafHash` at `index` in a tree of `size` leaves.
 * Throws 'bad-proof' when index >= size or any length is wrong (checked before hashing).
 */
export function rootFromInclusion(
  leafHash: Uint8Array,
  index: number,
  size: number,
  proof: readonly Uint8Array[],
): Uint8Array {
  count(index, 'index');
  count(size, 'size');
  checkProofShape(proof);
  // §2.1.3.2 step 1: leaf_index must be smaller than tree_size.
  if (index >= size) fail('bad-proof', 'inclusion proof: leaf index is not smaller than the tree size', { index, size });
  checkHashLen(leafHash, 'leafHash');
  checkElements(proof);
  const want = inclusionLength(index, size);
  if (proof.length !== want) {
    fail('bad-proof', 'inclusion proof has the wrong number of elements', {
      index,
      size,
      expectedLength: want,
      actualLength: proof.length,
    });
  }
  // §2.1.3.2 steps 2-4.
  let fn = index;
  let sn = size - 1;
  let r = leafHash;
  for (const p of proof) {
    if (sn === 0) fail('bad-proof', 'inclusion proof is too long', { index, size }); // unreachable after the length check
    if (isOdd(fn) || fn === sn) {
      r = nodeHash(p, r);
      if (!isOdd(fn)) {
        while (!isOdd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  // §2.1.3.2 step 5 (the sn half; the root comparison is the caller's).
  if (sn !== 0) fail('bad-proof', 'inclusion proof is too short', { index, size });
  return r;
}

/**
 * §2.1.3.2: verify that `leafHash` is the leaf at `index` of the tree of `size` leaves whose
 * root is `root`. Throws 'bad-proof' with { expectedRoot, computedRoot } (hex) on mismatch.
 */
export function verifyInclusion(
  leafHash: Uint8Array,
  index: number,
  size: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): void {
  count(index, 'index');
  count(size, 'size');
  checkHashLen(root, 'root');
  const computed = rootFromInclusion(leafHash, index, size, proof);
  if (!equalBytes(computed, root)) {
    fail('bad-proof', 'inclusion proof does not lead to the expected root', {
      index,
      size,
      leafHash: hex(leafHash),
      expectedRoot: hex(root),
      computedRoot: hex(computed),
    });
  }
}

/**
 * The number of elements a §2.1.4.2 proof for 0 < oldSize < newSize must have: the seed
 * (absent when oldSize is a power of two, whose root the verifier already holds) plus one per
 * iteration of the step 6 loop, found by running its index arithmetic without hashing.
 */
function consistencyLength(oldSize: number, newSize: number): { seeded: boolean; length: number } {
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let steps = 0;
  while (sn > 0) {
    if (isOdd(fn) || fn === sn) {
      if (!isOdd(fn)) {
        while (!isOdd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    }
    fn = half(fn);
    sn = half(sn);
    steps++;
  }
  const seeded = isPowerOfTwo(oldSize);
  return { seeded, length: (seeded ? 0 : 1) + steps };
}

function isPowerOfTwo(n: number): boolean {
  let x = n;
  while (x > 1 && !isOdd(x)) x = half(x);
  return x === 1;
}

/**
 * §2.1.4.2: verify that the tree of `newSize` leaves with root `newRoot` extends the tree of
 * `oldSize` leaves with root `oldRoot`.
 * - oldSize > newSize: 'bad-proof' (a tree never shrinks; the claim is false).
 * - oldSize === newSize: the proof must be empty and the roots equal (and, for size 0, the
 *   empty root).
 * - oldSize === 0 < newSize: the proof must be empty and oldRoot the empty root (§2.1.1).
 * Otherwise both roots are recomputed from the proof. Throws 'bad-proof' with
 * { which, expectedRoot, computedRoot } (hex) on mismatch.
 */
export function verifyConsistency(
  oldSize: number,
  newSize: number,
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
  proof: readonly Uint8Array[],
): void {
  count(oldSize, 'oldSize');
  count(newSize, 'newSize');
  checkProofShape(proof);
  checkHashLen(oldRoot, 'oldRoot');
  checkHashLen(newRoot, 'newRoot');
  if (oldSize > newSize) {
    fail('bad-proof', 'consistency proof: oldSize exceeds newSize', { oldSize, newSize });
  }
  if (oldSize === 0 || oldSize === newSize) {
    if (proof.length !== 0) {
      fail('bad-proof', 'consistency proof must be empty for these sizes', {
        oldSize,
        newSize,
        expectedLength: 0,
        actualLength: proof.length,
      });
    }
    if (oldSize === 0 && !equalBytes(oldRoot, EMPTY_ROOT)) {
      fail('bad-proof', 'the root of the empty tree is not the empty root', {
        which: 'old',
        oldSize,
        newSize,
        expectedRoot: hex(EMPTY_ROOT),
        computedRoot: hex(oldRoot),
      });
    }
    if (oldSize === newSize && !equalBytes(oldRoot, newRoot)) {
      fail('bad-proof', 'equal tree sizes with different roots', {
        which: 'new',
        oldSize,
        newSize,
        expectedRoot: hex(newRoot),
        computedRoot: hex(oldRoot),
      });
    }
    return;
  }
  // 0 < oldSize < newSize.
  checkElements(proof);
  // §2.1.4.2 step 1: an empty proof fails (covered by the exact length check).
  const { seeded, length } = consistencyLength(oldSize, newSize);
  if (proof.length !== length) {
    fail('bad-proof', 'consistency proof has the wrong number of elements', {
      oldSize,
      newSize,
      expectedLength: length,
      actualLength: proof.length,
    });
  }
  // §2.1.4.2 step 2: if first is an exact power of 2, prepend first_hash.
  const path: readonly Uint8Array[] = seeded ? [oldRoot, ...proof] : proof;
  // Steps 3-4.
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  // Step 5.
  let fr = path[0] as Uint8Array;
  let sr = fr;
  // Step 6.
  for (let i = 1; i < path.length; i++) {
    const c = path[i] as Uint8Array;
    if (sn === 0) fail('bad-proof', 'consistency proof is too long', { oldSize, newSize }); // unreachable after the length check
    if (isOdd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (!isOdd(fn)) {
        while (!isOdd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  // Step 7.
  if (sn !== 0) fail('bad-proof', 'consistency proof is too short', { oldSize, newSize });
  if (!equalBytes(fr, oldRoot)) {
    fail('bad-proof', 'consistency proof does not lead to the old root', {
      which: 'old',
      oldSize,
      newSize,
      expectedRoot: hex(oldRoot),
      computedRoot: hex(fr),
    });
  }
  if (!equalBytes(sr, newRoot)) {
    fail('bad-proof', 'consistency proof does not lead to the new root', {
      which: 'new',
      oldSize,
      newSize,
      expectedRoot: hex(newRoot),
      computedRoot: hex(sr),
    });
  }
}

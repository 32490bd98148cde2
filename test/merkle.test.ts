/**
 * RFC 9162 §2.1 Merkle tree: published vectors, a naive reference built straight from the
 * RFC's recursive definitions, table-driven negative cases and fast-check properties.
 */
import test from 'ava';
import * as fc from 'fast-check';
import {
  MerkleTree,
  TreeEdge,
  consistencyProofFrom,
  edgeNodes,
  emptyRoot,
  inclusionProofFrom,
  nodesRead,
  rootFrom,
  type NodeAt,
  leafHash,
  nodeHash,
  rootFromInclusion,
  rootOfLeafHashes,
  verifyConsistency,
  verifyInclusion,
} from '../mesh/merkle.js';
import { sha256 } from '../mesh/crypto.js';
import { concat, fromHex, hex, u64be, utf8 } from '../mesh/bytes.js';
import { MeshError, type MeshErrorCode } from '../mesh/errors.js';

// =====================================================================================
// 1. Published vectors.
//
// Sources (every hex string below is copied from one of them, none computed here):
//  [CT]  google/certificate-transparency, cpp/merkletree/merkle_tree_test.cc
//        (commit 0e901cacd1388fa16f78b184612f6cd16e5ceec1): kInputs, kSHA256Roots,
//        kSHA256Paths (1-based leaf numbers there, 0-based indices here), kSHA256Proofs.
//  [TDV] transparency-dev/merkle, proof/verify_test.go
//        (commit 02194e9afb6c1d95b5381350007963aa70fff472): leaves, roots, inclusionProofs,
//        consistencyProofs (the same as [CT] plus the 6 -> 7 consistency proof),
//        sha256SomeHash, sha256EmptyTreeHash.
//  [TDC] transparency-dev/merkle, testonly/constants.go (same commit): NodeHashes, RootHashes.
//  [TDH] transparency-dev/merkle, rfc6962/rfc6962_test.go (same commit): TestRFC6962Hasher.
// =====================================================================================

const h = (s: string): Uint8Array => fromHex(s);

/** [CT] kInputs / [TDV] leaves / [TDC] LeafInputs. */
const INPUTS: Uint8Array[] = [
  '',
  '00',
  '10',
  '2021',
  '3031',
  '40414243',
  '5051525354555657',
  '606162636465666768696a6b6c6d6e6f',
].map(h);

/** [TDV] sha256EmptyTreeHash, [CT] kSHA256EmptyTreeHash, [TDH] "RFC6962 Empty". */
const EMPTY_TREE_HASH = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** [TDV] sha256SomeHash: an arbitrary 32-byte value that is no node of the tree. */
const SOME_HASH = 'abacaba000000000000000000000000000000000000000000060061e00123456';

/** [CT] kSHA256Roots / [TDV] roots / [TDC] RootHashes[1..8]: ROOTS[n-1] = MTH of the first n inputs. */
const ROOTS: string[] = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
const rootHex = (n: number): string => ROOTS[n - 1] as string;
const rootOf = (n: number): Uint8Array => h(rootHex(n));

/** [TDC] NodeHashes: NODES[level][i] = MTH of the aligned complete subtree i of 2^level inputs. */
const NODES: string[][] = [
  [
    '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
    '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
    '0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7',
    '07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7',
    'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    '4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658',
    'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
    '46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1',
  ],
  [
    'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
    'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
  ],
  [
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
  ],
  ['5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328'],
];

interface InclusionVector {
  index: number;
  size: number;
  proof: string[];
}
/** [CT] kSHA256Paths / [TDV] inclusionProofs (their {0,0} entry is an invalid query, tested below). */
const INCLUSION: InclusionVector[] = [
  { index: 0, size: 1, proof: [] },
  {
    index: 0,
    size: 8,
    proof: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    index: 5,
    size: 8,
    proof: [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
  { index: 2, size: 3, proof: ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125'] },
  {
    index: 1,
    size: 5,
    proof: [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  },
];

interface ConsistencyVector {
  oldSize: number;
  newSize: number;
  proof: string[];
}
/** [CT] kSHA256Proofs / [TDV] consistencyProofs (6 -> 7 is [TDV] only). */
const CONSISTENCY: ConsistencyVector[] = [
  { oldSize: 1, newSize: 1, proof: [] },
  {
    oldSize: 1,
    newSize: 8,
    proof: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    oldSize: 6,
    newSize: 8,
    proof: [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
  {
    oldSize: 2,
    newSize: 5,
    proof: [
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  },
  {
    oldSize: 6,
    newSize: 7,
    proof: [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
];

const hexes = (xs: Uint8Array[]): string[] => xs.map(hex);

function vectorTree(n = 8): MerkleTree {
  const t = new MerkleTree();
  for (const d of INPUTS.slice(0, n)) t.appendData(d);
  return t;
}

test('[TDH] RFC 6962 hasher vectors: empty root, empty leaf, leaf, node', (t) => {
  t.is(hex(emptyRoot()), EMPTY_TREE_HASH);
  t.is(hex(leafHash(new Uint8Array(0))), '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d');
  t.is(hex(leafHash(utf8('L123456'))), '395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56');
  t.is(hex(nodeHash(utf8('N123'), utf8('N456'))), 'aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb');
  t.is(hex(new MerkleTree().root()), EMPTY_TREE_HASH);
  // emptyRoot() hands out copies.
  const e = emptyRoot();
  e[0] = 0;
  t.is(hex(emptyRoot()), EMPTY_TREE_HASH);
});

test('[TDC] node hashes: leaf hashes of the inputs and every complete subtree', (t) => {
  const tree = vectorTree();
  INPUTS.forEach((d, i) => {
    t.is(hex(leafHash(d)), NODES[0]?.[i] as string);
    t.is(hex(tree.leafHashAt(i)), NODES[0]?.[i] as string);
  });
  for (let level = 1; level < NODES.length; level++) {
    const below = NODES[level - 1] as string[];
    (NODES[level] as string[]).forEach((want, i) => {
      t.is(hex(nodeHash(h(below[2 * i] as string), h(below[2 * i + 1] as string))), want, `level ${level} node ${i}`);
    });
  }
});

test('[CT]/[TDV] roots for sizes 1..8, incrementally and for every historical size', (t) => {
  const tree = new MerkleTree();
  t.is(hex(tree.root()), EMPTY_TREE_HASH);
  INPUTS.forEach((d, i) => {
    t.is(tree.appendData(d), i);
    t.is(tree.size, i + 1);
    t.is(hex(tree.root()), rootHex(i + 1));
    t.is(hex(tree.root(0)), EMPTY_TREE_HASH);
    for (let j = 1; j <= i + 1; j++) t.is(hex(tree.root(j)), rootHex(j));
  });
  // Built from leaf hashes in one go.
  const fromHashes = new MerkleTree(INPUTS.map(leafHash));
  t.is(hex(fromHashes.root()), rootHex(8));
});

test('[CT]/[TDV] inclusion proofs: generated and verified', (t) => {
  const tree = vectorTree();
  for (const v of INCLUSION) {
    const name = `index ${v.index} size ${v.size}`;
    t.deepEqual(hexes(tree.inclusionProof(v.index, v.size)), v.proof, name);
    const lh = leafHash(INPUTS[v.index] as Uint8Array);
    const proof = v.proof.map(h);
    t.is(hex(rootFromInclusion(lh, v.index, v.size, proof)), rootHex(v.size), name);
    t.notThrows(() => verifyInclusion(lh, v.index, v.size, proof, rootOf(v.size)), name);
  }
});

test('[CT]/[TDV] consistency proofs: generated and verified', (t) => {
  const tree = vectorTree();
  for (const v of CONSISTENCY) {
    const name = `${v.oldSize} -> ${v.newSize}`;
    t.deepEqual(hexes(tree.consistencyProof(v.oldSize, v.newSize)), v.proof, name);
    t.notThrows(
      () => verifyConsistency(v.oldSize, v.newSize, rootOf(v.oldSize), rootOf(v.newSize), v.proof.map(h)),
      name,
    );
  }
});

// =====================================================================================
// 2. A naive reference, transcribed from RFC 9162: MTH (§2.1.1), PATH (§2.1.3.1) and
//    PROOF/SUBPROOF (§2.1.4.1), recursive over lists of leaf *data*. It shares only SHA-256
//    with the implementation under test.
// =====================================================================================

const refLeaf = (d: Uint8Array): Uint8Array => sha256(concat(Uint8Array.of(0x00), d));
const refNode = (l: Uint8Array, r: Uint8Array): Uint8Array => sha256(concat(Uint8Array.of(0x01), l, r));

/** §2.1.1: k is the largest power of two smaller than n. */
function refSplit(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** §2.1.1 MTH(D[n]). */
function refMTH(D: readonly Uint8Array[]): Uint8Array {
  const n = D.length;
  if (n === 0) return sha256(new Uint8Array(0));
  if (n === 1) return refLeaf(D[0] as Uint8Array);
  const k = refSplit(n);
  return refNode(refMTH(D.slice(0, k)), refMTH(D.slice(k, n)));
}

/** §2.1.3.1 PATH(m, D[n]). */
function refPATH(m: number, D: readonly Uint8Array[]): Uint8Array[] {
  const n = D.length;
  if (n === 1) return [];
  const k = refSplit(n);
  if (m < k) return [...refPATH(m, D.slice(0, k)), refMTH(D.slice(k, n))];
  return [...refPATH(m - k, D.slice(k, n)), refMTH(D.slice(0, k))];
}

/** §2.1.4.1 PROOF(m, D[n]) = SUBPROOF(m, D[n], true), for 0 < m < n. */
function refPROOF(m: number, D: readonly Uint8Array[]): Uint8Array[] {
  return refSUBPROOF(m, D, true);
}

/** §2.1.4.1 SUBPROOF(m, D[n], b). */
function refSUBPROOF(m: number, D: readonly Uint8Array[], b: boolean): Uint8Array[] {
  const n = D.length;
  if (m === n) return b ? [] : [refMTH(D)];
  const k = refSplit(n);
  if (m <= k) return [...refSUBPROOF(m, D.slice(0, k), b), refMTH(D.slice(k, n))];
  return [...refSUBPROOF(m - k, D.slice(k, n), false), refMTH(D.slice(0, k))];
}

/** Deterministic leaf data of varied lengths (0..15 bytes plus an 8-byte counter). */
const datum = (i: number): Uint8Array => concat(new Uint8Array(i % 16).fill(i & 0xff), u64be(i));

test('naive reference reproduces the published vectors (sanity of the reference itself)', (t) => {
  for (let n = 1; n <= 8; n++) t.is(hex(refMTH(INPUTS.slice(0, n))), rootHex(n));
  for (const v of INCLUSION) t.deepEqual(hexes(refPATH(v.index, INPUTS.slice(0, v.size))), v.proof);
  for (const v of CONSISTENCY) {
    if (v.oldSize < v.newSize) t.deepEqual(hexes(refPROOF(v.oldSize, INPUTS.slice(0, v.newSize))), v.proof);
  }
});

test('MerkleTree equals the naive reference on every size 1..70, every index and every size pair', (t) => {
  const N = 70;
  const data = Array.from({ length: N }, (_, i) => datum(i));
  const tree = new MerkleTree();
  for (const d of data) tree.appendData(d);
  t.is(hex(tree.root(0)), EMPTY_TREE_HASH);
  let checks = 0;
  for (let n = 1; n <= N; n++) {
    const D = data.slice(0, n);
    const root = refMTH(D);
    t.is(hex(tree.root(n)), hex(root), `root(${n})`);
    for (let m = 0; m < n; m++) {
      const proof = tree.inclusionProof(m, n);
      t.deepEqual(hexes(proof), hexes(refPATH(m, D)), `PATH(${m}, D[${n}])`);
      verifyInclusion(tree.leafHashAt(m), m, n, proof, root);
      checks++;
    }
    for (let m = 0; m <= n; m++) {
      const proof = tree.consistencyProof(m, n);
      const want = m === 0 || m === n ? [] : refPROOF(m, D);
      t.deepEqual(hexes(proof), hexes(want), `PROOF(${m}, D[${n}])`);
      verifyConsistency(m, n, m === 0 ? emptyRoot() : refMTH(data.slice(0, m)), root, proof);
      checks++;
    }
  }
  t.true(checks > 5000);
});

test('MerkleTree equals the naive reference at random larger sizes', (t) => {
  const N = 1500;
  const data = Array.from({ length: N }, (_, i) => datum(i * 7919));
  const tree = new MerkleTree();
  for (const d of data) tree.appendData(d);
  // A seeded generator keeps the test reproducible.
  let seed = 0x9e3779b9;
  const rand = (below: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % below;
  };
  for (let round = 0; round < 40; round++) {
    const n = 71 + rand(N - 70);
    const D = data.slice(0, n);
    const root = refMTH(D);
    t.is(hex(tree.root(n)), hex(root), `root(${n})`);
    const m = rand(n);
    t.deepEqual(hexes(tree.inclusionProof(m, n)), hexes(refPATH(m, D)), `PATH(${m}, D[${n}])`);
    const old = 1 + rand(n - 1);
    t.deepEqual(hexes(tree.consistencyProof(old, n)), hexes(refPROOF(old, D)), `PROOF(${old}, D[${n}])`);
    verifyConsistency(old, n, refMTH(data.slice(0, old)), root, tree.consistencyProof(old, n));
  }
});

test('proofs and roots are copies: mutating them does not touch the tree', (t) => {
  const tree = vectorTree();
  const p = tree.inclusionProof(0, 8);
  (p[0] as Uint8Array).fill(0);
  const r = tree.root();
  r.fill(0);
  const l = tree.leafHashAt(3);
  l.fill(0);
  t.deepEqual(hexes(tree.inclusionProof(0, 8)), INCLUSION[1]?.proof);
  t.is(hex(tree.root()), rootHex(8));
  t.is(hex(tree.leafHashAt(3)), NODES[0]?.[3] as string);
});

test('scale: 2^20 + 3 leaves, historical roots and proofs verify', (t) => {
  const N = (1 << 20) + 3;
  const tree = new MerkleTree();
  const lh = new Uint8Array(32);
  const view = new DataView(lh.buffer);
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    view.setUint32(0, i); // distinct synthetic leaf hashes; the tree copies them
    tree.appendLeafHash(lh);
  }
  const built = performance.now() - t0;
  t.is(tree.size, N);
  const t1 = performance.now();
  const sizes = [1, 2, 3, 1000, 65536, 65537, 1 << 20, N - 1, N];
  const roots = new Map(sizes.map((s) => [s, tree.root(s)]));
  for (const n of sizes) {
    for (const m of [0, Math.floor(n / 3), n - 1]) {
      verifyInclusion(tree.leafHashAt(m), m, n, tree.inclusionProof(m, n), roots.get(n) as Uint8Array);
    }
    for (const old of sizes) {
      if (old > n) continue;
      verifyConsistency(old, n, roots.get(old) as Uint8Array, roots.get(n) as Uint8Array, tree.consistencyProof(old, n));
    }
  }
  const queried = performance.now() - t1;
  t.log(`built ${N} leaves in ${built.toFixed(0)} ms; roots and proofs in ${queried.toFixed(1)} ms`);
});

// =====================================================================================
// 3. Negative cases, in the spirit of transparency-dev/merkle's corruptInclusionProof and
//    corruptConsistencyProof ([TDV]) and the [CT] MerkleVerifierTest. Each row names the
//    corruption and the code it must raise.
//
//    oldSize > newSize: verifyConsistency says 'bad-proof' (the claim is false: a log never
//    shrinks); MerkleTree.consistencyProof says 'malformed' (the caller asked for nothing).
// =====================================================================================

interface Case {
  name: string;
  code: MeshErrorCode;
  run: () => unknown;
}

const WRONG_LEAF = utf8('WrongLeaf'); // [TDV]/[CT]
const WRONG_ROOT = utf8('WrongRoot'); // [TDV]/[CT]
const flip = (b: Uint8Array, mask: number): Uint8Array => {
  const c = b.slice();
  c[0] = (c[0] as number) ^ mask;
  return c;
};

function inclusionCases(v: InclusionVector): Case[] {
  const { index, size } = v;
  const proof = v.proof.map(h);
  const root = rootOf(size);
  const leaf = leafHash(INPUTS[index] as Uint8Array);
  const tag = `inclusion ${index}/${size}`;
  const bad = (name: string, i: number, s: number, p: Uint8Array[], r: Uint8Array, l: Uint8Array): Case => ({
    name: `${tag}: ${name}`,
    code: 'bad-proof',
    run: () => verifyInclusion(l, i, s, p, r),
  });
  const cases: Case[] = [
    bad('wrong index: index + 1', index + 1, size, proof, root, leaf),
    bad('wrong index: index ^ 2', index ^ 2, size, proof, root, leaf),
    bad('wrong size: size * 2', index, size * 2, proof, root, leaf),
    bad('wrong size: size / 2', index, Math.floor(size / 2), proof, root, leaf),
    bad('wrong leaf: "WrongLeaf"', index, size, proof, root, WRONG_LEAF),
    bad('wrong leaf: another leaf hash', index, size, proof, root, leafHash(utf8('another'))),
    bad('wrong root: empty root', index, size, proof, h(EMPTY_TREE_HASH), leaf),
    bad('wrong root: random root', index, size, proof, h(SOME_HASH), leaf),
    bad('proof too long: trailing garbage (empty)', index, size, [...proof, new Uint8Array(0)], root, leaf),
    bad('proof too long: trailing root', index, size, [...proof, root], root, leaf),
    bad('proof too long: preceding garbage (empty)', index, size, [new Uint8Array(0), ...proof], root, leaf),
    bad('proof too long: preceding root', index, size, [root, ...proof], root, leaf),
  ];
  if (index > 0) cases.push(bad('wrong index: index - 1', index - 1, size, proof, root, leaf));
  proof.forEach((_, i) => {
    const p = proof.slice();
    p[i] = flip(p[i] as Uint8Array, 8);
    cases.push(bad(`proof element ${i} flipped (bit 3)`, index, size, p, root, leaf));
  });
  if (proof.length > 0) cases.push(bad('proof too short: last element removed', index, size, proof.slice(0, -1), root, leaf));
  if (proof.length > 1) {
    cases.push(bad('inserted component', index, size, [proof[0] as Uint8Array, h(SOME_HASH), ...proof.slice(1)], root, leaf));
  }
  return cases;
}

function consistencyCases(v: ConsistencyVector): Case[] {
  const { oldSize: s1, newSize: s2 } = v;
  const proof = v.proof.map(h);
  const r1 = rootOf(s1);
  const r2 = rootOf(s2);
  const tag = `consistency ${s1}->${s2}`;
  const bad = (name: string, a: number, b: number, x: Uint8Array, y: Uint8Array, p: Uint8Array[]): Case => ({
    name: `${tag}: ${name}`,
    code: 'bad-proof',
    run: () => verifyConsistency(a, b, x, y, p),
  });
  const cases: Case[] = [
    bad('wrong size: oldSize - 1', s1 - 1, s2, r1, r2, proof),
    bad('wrong size: oldSize + 1', s1 + 1, s2, r1, r2, proof),
    bad('wrong size: oldSize ^ 2', s1 ^ 2, s2, r1, r2, proof),
    bad('wrong size: newSize * 2', s1, s2 * 2, r1, r2, proof),
    bad('wrong size: newSize / 2', s1, Math.floor(s2 / 2), r1, r2, proof),
    bad('wrong old root: "WrongRoot"', s1, s2, WRONG_ROOT, r2, proof),
    bad('wrong new root: "WrongRoot"', s1, s2, r1, WRONG_ROOT, proof),
    bad('wrong old root: random', s1, s2, h(SOME_HASH), r2, proof),
    bad('wrong new root: random', s1, s2, r1, h(SOME_HASH), proof),
    bad('swapped roots', s1, s2, r2, r1, proof),
    bad('proof too short: empty proof', s1, s2, r1, r2, []),
    bad('proof too short: last element removed', s1, s2, r1, r2, proof.slice(0, -1)),
    bad('proof too long: trailing garbage (empty)', s1, s2, r1, r2, [...proof, new Uint8Array(0)]),
    bad('proof too long: trailing old root', s1, s2, r1, r2, [...proof, r1]),
    bad('proof too long: trailing new root', s1, s2, r1, r2, [...proof, r2]),
    bad('proof too long: preceding garbage (empty)', s1, s2, r1, r2, [new Uint8Array(0), ...proof]),
    bad('proof too long: preceding old root', s1, s2, r1, r2, [r1, ...proof]),
    bad('proof too long: preceding new root', s1, s2, r1, r2, [r2, ...proof]),
    bad('proof too long: preceding proof[0]', s1, s2, r1, r2, [proof[0] as Uint8Array, ...proof]),
    bad('oldSize > newSize (sizes swapped)', s2, s1, r2, r1, proof),
  ];
  proof.forEach((_, i) => {
    const p = proof.slice();
    p[i] = flip(p[i] as Uint8Array, 16);
    cases.push(bad(`proof element ${i} flipped (bit 4)`, s1, s2, r1, r2, p));
  });
  return cases;
}

const E = (): Uint8Array => h(EMPTY_TREE_HASH);
const R1 = rootOf(1);
const R2 = rootOf(2);

/** Fixed cases from [TDV] TestVerifyInclusion*, TestVerifyConsistency and [CT] MerkleVerifierTest. */
const FIXED: Case[] = [
  // Inclusion in an empty or too-small tree ([TDV] TestVerifyInclusion probes).
  ...[
    [0, 0],
    [1, 0],
    [2, 1],
  ].flatMap(([i, s]) => [
    { name: `inclusion ${i}/${s}: index not below size`, code: 'bad-proof' as const, run: () => verifyInclusion(h(SOME_HASH), i as number, s as number, [], E()) },
  ]),
  { name: 'inclusion 0/1: random leaf, empty root', code: 'bad-proof', run: () => verifyInclusion(h(SOME_HASH), 0, 1, [], E()) },
  { name: 'inclusion 0/1: empty leaf bytes', code: 'bad-proof', run: () => verifyInclusion(new Uint8Array(0), 0, 1, [], R1) },
  { name: 'inclusion 0/1: empty root bytes', code: 'bad-proof', run: () => verifyInclusion(R1, 0, 1, [], new Uint8Array(0)) },
  { name: 'rootFromInclusion: proof too long', code: 'bad-proof', run: () => rootFromInclusion(R1, 0, 1, [R1]) },
  // Consistency ([TDV] TestVerifyConsistency, adapted to real 32-byte roots).
  { name: 'consistency 1->0: oldSize > newSize', code: 'bad-proof', run: () => verifyConsistency(1, 0, R1, E(), []) },
  { name: 'consistency 2->1: oldSize > newSize', code: 'bad-proof', run: () => verifyConsistency(2, 1, R2, R1, []) },
  { name: 'consistency 1->2: empty proof', code: 'bad-proof', run: () => verifyConsistency(1, 2, R1, R2, []) },
  { name: 'consistency 0->0: roots differ', code: 'bad-proof', run: () => verifyConsistency(0, 0, E(), R1, []) },
  { name: 'consistency 1->1: roots differ', code: 'bad-proof', run: () => verifyConsistency(1, 1, E(), R1, []) },
  { name: 'consistency 0->0: equal non-empty roots', code: 'bad-proof', run: () => verifyConsistency(0, 0, R1, R1, []) },
  { name: 'consistency 0->0: proof not empty', code: 'bad-proof', run: () => verifyConsistency(0, 0, E(), E(), [E()]) },
  { name: 'consistency 0->1: proof not empty', code: 'bad-proof', run: () => verifyConsistency(0, 1, E(), R1, [E()]) },
  { name: 'consistency 1->1: proof not empty', code: 'bad-proof', run: () => verifyConsistency(1, 1, R1, R1, [E()]) },
  { name: 'consistency 0->1: old root is not the empty root', code: 'bad-proof', run: () => verifyConsistency(0, 1, R2, R1, []) },
  { name: 'consistency 1->1: short roots', code: 'bad-proof', run: () => verifyConsistency(1, 1, WRONG_ROOT, WRONG_ROOT, []) },
  // Not a tree size or index at all: the caller's bug, not a false claim.
  { name: 'verifyInclusion: negative index', code: 'malformed', run: () => verifyInclusion(R1, -1, 1, [], R1) },
  { name: 'verifyInclusion: fractional size', code: 'malformed', run: () => verifyInclusion(R1, 0, 1.5, [], R1) },
  { name: 'verifyConsistency: negative oldSize', code: 'malformed', run: () => verifyConsistency(-1, 1, E(), R1, []) },
  { name: 'verifyConsistency: size beyond 2^53', code: 'malformed', run: () => verifyConsistency(1, 2 ** 53, R1, R1, [R1]) },
  // Generation: impossible requests are 'malformed'.
  { name: 'tree.inclusionProof: index == size', code: 'malformed', run: () => vectorTree().inclusionProof(8, 8) },
  { name: 'tree.inclusionProof: index >= historical size', code: 'malformed', run: () => vectorTree().inclusionProof(3, 3) },
  { name: 'tree.inclusionProof: size > tree size', code: 'malformed', run: () => vectorTree().inclusionProof(0, 9) },
  { name: 'tree.inclusionProof: empty tree', code: 'malformed', run: () => new MerkleTree().inclusionProof(0) },
  { name: 'tree.inclusionProof: negative index', code: 'malformed', run: () => vectorTree().inclusionProof(-1, 8) },
  { name: 'tree.consistencyProof: oldSize > newSize', code: 'malformed', run: () => vectorTree().consistencyProof(5, 4) },
  { name: 'tree.consistencyProof: newSize > tree size', code: 'malformed', run: () => vectorTree().consistencyProof(1, 9) },
  { name: 'tree.consistencyProof: negative oldSize', code: 'malformed', run: () => vectorTree().consistencyProof(-1) },
  { name: 'tree.root: size > tree size', code: 'malformed', run: () => vectorTree().root(9) },
  { name: 'tree.root: negative size', code: 'malformed', run: () => vectorTree().root(-1) },
  { name: 'tree.leafHashAt: index == size', code: 'malformed', run: () => vectorTree().leafHashAt(8) },
  { name: 'tree.appendLeafHash: 31 bytes', code: 'malformed', run: () => new MerkleTree().appendLeafHash(new Uint8Array(31)) },
  { name: 'new MerkleTree: a 33-byte leaf hash', code: 'malformed', run: () => new MerkleTree([new Uint8Array(33)]) },
];

const NEGATIVE: Case[] = [
  ...INCLUSION.flatMap(inclusionCases),
  ...CONSISTENCY.filter((v) => v.oldSize < v.newSize).flatMap(consistencyCases),
  ...FIXED,
];

test('negative cases: each throws its MeshError code', (t) => {
  const names = new Set<string>();
  for (const c of NEGATIVE) {
    t.false(names.has(c.name), `duplicate case name ${c.name}`);
    names.add(c.name);
    const err = t.throws(c.run, { instanceOf: MeshError }, c.name);
    t.is(err?.code, c.code, c.name);
  }
  t.log(`${NEGATIVE.length} negative cases`);
});

test('bad-proof detail carries the evidence: expected and computed roots in hex', (t) => {
  const v = INCLUSION[2] as InclusionVector;
  const leaf = leafHash(INPUTS[v.index] as Uint8Array);
  const proof = v.proof.map(h);
  const root = rootOf(v.size);
  const tampered = proof.slice();
  tampered[1] = flip(tampered[1] as Uint8Array, 1);
  const err = t.throws(() => verifyInclusion(leaf, v.index, v.size, tampered, root), { instanceOf: MeshError });
  t.is(err?.code, 'bad-proof');
  t.is(err?.detail?.['expectedRoot'], ROOTS[v.size - 1]);
  t.is(err?.detail?.['computedRoot'], hex(rootFromInclusion(leaf, v.index, v.size, tampered)));
  t.not(err?.detail?.['computedRoot'], ROOTS[v.size - 1]);

  const c = CONSISTENCY[2] as ConsistencyVector;
  const err2 = t.throws(() => verifyConsistency(c.oldSize, c.newSize, rootOf(c.oldSize), h(SOME_HASH), c.proof.map(h)), {
    instanceOf: MeshError,
  });
  t.is(err2?.code, 'bad-proof');
  t.is(err2?.detail?.['which'], 'new');
  t.is(err2?.detail?.['expectedRoot'], SOME_HASH);
  t.is(err2?.detail?.['computedRoot'], ROOTS[c.newSize - 1]);

  const err3 = t.throws(() => verifyInclusion(leaf, v.index, v.size, proof.slice(0, -1), root), { instanceOf: MeshError });
  t.is(err3?.detail?.['expectedLength'], 3);
  t.is(err3?.detail?.['actualLength'], 2);
});

// =====================================================================================
// 4. Properties (fast-check).
// =====================================================================================

const PROP_N = 3000;
const propTree = new MerkleTree();
for (let i = 0; i < PROP_N; i++) propTree.appendData(datum(i));

test('property: every inclusion and consistency proof verifies, at any historical size', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: PROP_N }), fc.nat(), fc.nat(), (size, a, b) => {
      const index = a % size;
      const old = b % (size + 1);
      const root = propTree.root(size);
      verifyInclusion(propTree.leafHashAt(index), index, size, propTree.inclusionProof(index, size), root);
      verifyConsistency(old, size, propTree.root(old), root, propTree.consistencyProof(old, size));
    }),
    { numRuns: 1000 },
  );
  t.pass();
});

test('property: flipping any bit of any proof element is caught', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 2, max: PROP_N }), fc.nat(), fc.nat(), fc.nat(), fc.integer({ min: 0, max: 255 }), (size, a, b, e, bit) => {
      const index = a % size;
      const old = 1 + (b % (size - 1)); // 0 < old < size: the proof is never empty
      const mask = 1 << bit % 8;
      const byte = Math.floor(bit / 8) % 32;
      const corrupt = (p: Uint8Array[]): Uint8Array[] => {
        const q = p.map((x) => x.slice());
        const x = q[e % q.length] as Uint8Array;
        x[byte] = (x[byte] as number) ^ mask;
        return q;
      };
      const root = propTree.root(size);
      const ip = propTree.inclusionProof(index, size);
      const cp = propTree.consistencyProof(old, size);
      const code = (f: () => void): string | undefined => {
        try {
          f();
          return undefined;
        } catch (err) {
          return err instanceof MeshError ? err.code : 'not-a-mesh-error';
        }
      };
      if (ip.length > 0 && code(() => verifyInclusion(propTree.leafHashAt(index), index, size, corrupt(ip), root)) !== 'bad-proof') {
        return false;
      }
      return code(() => verifyConsistency(old, size, propTree.root(old), root, corrupt(cp))) === 'bad-proof';
    }),
    { numRuns: 500 },
  );
  t.pass();
});

test('property: fresh trees of random data match the naive MTH and all their proofs verify', (t) => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 24 }), { minLength: 1, maxLength: 40 }), (data) => {
      const tree = new MerkleTree();
      data.forEach((d, i) => {
        if (tree.appendData(d) !== i) throw new Error('appendData returned the wrong index');
      });
      const n = data.length;
      const root = tree.root();
      if (hex(root) !== hex(refMTH(data))) return false;
      for (let m = 0; m < n; m++) verifyInclusion(leafHash(data[m] as Uint8Array), m, n, tree.inclusionProof(m), root);
      for (let m = 0; m <= n; m++) verifyConsistency(m, n, tree.root(m), root, tree.consistencyProof(m));
      return true;
    }),
    { numRuns: 200 },
  );
  t.pass();
});

// =====================================================================================
// 5. A tree kept as stored nodes (the portal's database): a writer holding only the right
//    edge, and proofs computed from the few nodes nodesRead names.
// =====================================================================================

/** A sparse store of nodes keyed level/index, filled as a database would be. */
function nodeStore(): { put: (k: number, i: number, h: Uint8Array) => void; at: NodeAt; size: () => number } {
  const m = new Map<string, Uint8Array>();
  return {
    put: (k, i, hash) => {
      if (m.has(`${k}/${i}`)) throw new Error(`node ${k}/${i} written twice`);
      m.set(`${k}/${i}`, hash);
    },
    at: (k, i) => m.get(`${k}/${i}`) ?? fail(`node ${k}/${i} was never written`),
    size: () => m.size,
  };
}
function fail(msg: string): never {
  throw new Error(msg);
}

test('TreeEdge: appends write the nodes MerkleTree keeps, and its root is MTH at every size', (t) => {
  const store = nodeStore();
  let edge = new TreeEdge(0, []);
  t.is(hex(edge.root()), EMPTY_TREE_HASH);
  for (let n = 0; n < 300; n++) {
    // every 37 leaves the writer starts again from the edge nodes it reads back (another process)
    if (n % 37 === 0) edge = new TreeEdge(n, edgeNodes(n).map(([k, i]) => store.at(k, i)));
    for (const [k, i, hash] of edge.append(propTree.leafHashAt(n))) store.put(k, i, hash);
    t.is(edge.size, n + 1);
    if (hex(edge.root()) !== hex(propTree.root(n + 1))) t.fail(`root at size ${n + 1}`);
  }
  // leaves plus one node per completed subtree: 2n - popcount(n)
  t.is(store.size(), 2 * 300 - 4);
  // historical roots come from the stored nodes too
  for (const n of [1, 2, 3, 7, 8, 100, 255, 256, 299]) t.is(hex(rootFrom(n, store.at)), hex(propTree.root(n)));
});

test('TreeEdge refuses an edge of the wrong shape', (t) => {
  t.is(t.throws(() => new TreeEdge(5, [new Uint8Array(32)]), { instanceOf: MeshError })?.code, 'malformed');
  t.is(t.throws(() => new TreeEdge(1, [new Uint8Array(31)]), { instanceOf: MeshError })?.code, 'malformed');
  t.deepEqual(edgeNodes(6), [[0, 5], [1, 2], [2, 0]]);
  t.deepEqual(edgeNodes(0), []);
});

test('property: proofs from the nodes nodesRead names equal MerkleTree proofs', (t) => {
  const store = nodeStore();
  const edge = new TreeEdge(0, []);
  for (let n = 0; n < PROP_N; n++) for (const [k, i, hash] of edge.append(propTree.leafHashAt(n))) store.put(k, i, hash);
  fc.assert(
    fc.property(fc.integer({ min: 1, max: PROP_N }), fc.nat(), fc.nat(), (size, a, b) => {
      const index = a % size;
      const old = b % (size + 1);
      // fetch only what is named, as the portal does from its database, then compute
      const fetched = (f: (node: NodeAt) => unknown): NodeAt => {
        const m = new Map(nodesRead(f).map(([k, i]) => [`${k}/${i}`, store.at(k, i)]));
        return (k, i) => m.get(`${k}/${i}`) ?? fail(`node ${k}/${i} was not named`);
      };
      const incl = fetched((node) => inclusionProofFrom(index, size, node));
      const cons = fetched((node) => consistencyProofFrom(old, size, node));
      const roots = fetched((node) => [rootFrom(size, node), rootFrom(old, node)]);
      const same = (x: Uint8Array[], y: Uint8Array[]): boolean => x.length === y.length && x.every((v, j) => hex(v) === hex(y[j] as Uint8Array));
      return (
        same(inclusionProofFrom(index, size, incl), propTree.inclusionProof(index, size)) &&
        same(consistencyProofFrom(old, size, cons), propTree.consistencyProof(old, size)) &&
        hex(rootFrom(size, roots)) === hex(propTree.root(size)) &&
        hex(rootFrom(old, roots)) === hex(propTree.root(old))
      );
    }),
    { numRuns: 1000 },
  );
  // a proof needs O(log n) stored nodes, not the tree
  t.true(nodesRead((node) => inclusionProofFrom(1234, PROP_N, node)).length <= 2 * Math.ceil(Math.log2(PROP_N)));
});

test('rootOfLeafHashes (a manifest built once, bottom up) is the MTH of the same leaves, for 0 to 70 leaves', (t) => {
  for (let n = 0; n <= 70; n++) {
    const hashes = Array.from({ length: n }, (_, i) => leafHash(utf8(`part ${i}`)));
    t.is(hex(rootOfLeafHashes(hashes)), hex(new MerkleTree(hashes).root()), `n = ${n}`);
  }
  // the leaves' order matters
  const two = [leafHash(utf8('a')), leafHash(utf8('b'))];
  t.not(hex(rootOfLeafHashes(two)), hex(rootOfLeafHashes([...two].reverse())));
});

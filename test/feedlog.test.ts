/** The device's log check (mesh/feedlog.ts), in process: every verdict from a real in-memory tree. */
import test from 'ava';
import { b64u } from '../mesh/bytes.js';
import { ed25519KeyPair } from '../mesh/crypto.js';
import { logOrigin, signCheckpoint } from '../mesh/checkpoint.js';
import { signJson, payloadBytes, type SignedEnvelope } from '../mesh/envelope.js';
import { isMeshError } from '../mesh/errors.js';
import { checkFeedLog, type HeldHead } from '../mesh/feedlog.js';
import { leafHash, MerkleTree } from '../mesh/merkle.js';
import type { FeedItem, FeedLog } from '../mesh/protocol.js';

const key = ed25519KeyPair();
const origin = logOrigin('portal.example');
const logKey = { name: origin, publicKey: key.publicKey };
const signer = { kid: 'k', ...key };

function world(leaves = 10, salt = ''): { tree: MerkleTree; objects: SignedEnvelope[] } {
  const tree = new MerkleTree();
  const objects: SignedEnvelope[] = [];
  for (let i = 0; i < leaves; i++) {
    const o = signJson({ type: 'test', i, salt }, [signer as never]);
    objects.push(o);
    tree.appendLeafHash(leafHash(payloadBytes(o)));
  }
  return { tree, objects };
}

const head = (tree: MerkleTree, size = tree.size): HeldHead => ({ size, root: b64u(tree.root(size)) });
const note = (tree: MerkleTree, size = tree.size, k = key, o = origin): string => signCheckpoint({ origin: o, size, root: tree.root(size) }, k, o);
const logOf = (tree: MerkleTree, from: number, size = tree.size): FeedLog => ({ treeHead: note(tree, size), from, consistency: tree.consistencyProof(from, size).map(b64u) });
const item = (tree: MerkleTree, objects: SignedEnvelope[], n: number, index: number, size = tree.size): FeedItem => ({ n, kind: 'application', object: objects[index] as SignedEnvelope, index, path: tree.inclusionProof(index, size).map(b64u) });
const code = (f: () => unknown): string | undefined => {
  try {
    f();
    return undefined;
  } catch (e) {
    return isMeshError(e) ? e.code : String(e);
  }
};

test('logged items are proven in feed order and the newer head is taken', (t) => {
  const { tree, objects } = world();
  const v = checkFeedLog([item(tree, objects, 2, 8), item(tree, objects, 1, 7)], logOf(tree, 4), head(tree, 4), logKey);
  t.deepEqual(v.proven.map((i) => i.n), [1, 2]);
  t.is(v.hold, undefined);
  t.deepEqual(v.head, head(tree));
  // a first head is taken on first use
  t.deepEqual(checkFeedLog([item(tree, objects, 1, 3)], logOf(tree, 0), null, logKey).head, head(tree));
});

test('an object not in the log, or given without proof, stops the feed there: not-logged', (t) => {
  const { tree, objects } = world();
  const stranger = signJson({ type: 'test', i: 'never logged' }, [signer as never]);
  const forged: FeedItem = { ...item(tree, objects, 2, 5), object: stranger };
  const v = checkFeedLog([item(tree, objects, 1, 4), forged, item(tree, objects, 3, 6)], logOf(tree, 4), head(tree, 4), logKey);
  t.deepEqual(v.proven.map((i) => i.n), [1]);
  t.is(v.hold?.code, 'not-logged');
  t.is(v.hold?.n, 2);
  const { path: _p, ...bare } = item(tree, objects, 1, 4);
  t.is(checkFeedLog([bare], logOf(tree, 4), head(tree, 4), logKey).hold?.code, 'not-logged');
});

test('an item beyond the head, a head older than the held one, or no log at all: late (held, not refused)', (t) => {
  const { tree, objects } = world();
  const small = checkFeedLog([item(tree, objects, 1, 5, 9), { ...item(tree, objects, 2, 9), path: [] }], logOf(tree, 4, 9), head(tree, 4), logKey);
  t.deepEqual(small.proven.map((i) => i.n), [1]);
  t.is(small.hold?.code, 'late');
  t.deepEqual(small.head, head(tree, 9));
  const older = checkFeedLog([item(tree, objects, 1, 3, 6)], logOf(tree, 6, 6), head(tree, 8), logKey);
  t.is(older.hold?.code, 'late');
  t.deepEqual(older.head, head(tree, 8), 'the held head is kept');
  t.is(checkFeedLog([item(tree, objects, 1, 3)], undefined, head(tree, 8), logKey).hold?.code, 'late');
});

test('a head that does not extend the held one is log-inconsistent; a checkpoint by another key or log is refused', (t) => {
  const { tree, objects } = world();
  const forkWorld = world(12, 'fork'); // other leaves: another history
  const fork = forkWorld.tree;
  const forked: FeedLog = { treeHead: note(fork), from: 4, consistency: fork.consistencyProof(4).map(b64u) };
  t.is(code(() => checkFeedLog([item(fork, forkWorld.objects, 1, 10)], forked, head(tree, 4), logKey)), 'log-inconsistent');
  t.is(code(() => checkFeedLog([item(tree, objects, 1, 5)], logOf(tree, 3), head(tree, 4), logKey)), 'log-inconsistent', 'a proof from another size than the held one');
  t.is(code(() => checkFeedLog([item(tree, objects, 1, 3, 4)], { treeHead: note(fork, 4), from: 4, consistency: [] }, head(tree, 4), logKey)), 'log-inconsistent', 'same size, other root');
  const other = ed25519KeyPair();
  t.is(code(() => checkFeedLog([item(tree, objects, 1, 5)], { ...logOf(tree, 4), treeHead: note(tree, tree.size, other) }, head(tree, 4), logKey)), 'unknown-signer');
  t.is(code(() => checkFeedLog([item(tree, objects, 1, 5)], { ...logOf(tree, 4), treeHead: note(tree, tree.size, key, 'elsewhere/mmm-log') }, head(tree, 4), logKey)), 'unknown-signer', 'signed under another name');
  const otherLog = signCheckpoint({ origin: 'elsewhere/mmm-log', size: tree.size, root: tree.root() }, key, origin);
  t.is(code(() => checkFeedLog([item(tree, objects, 1, 5)], { ...logOf(tree, 4), treeHead: otherLog }, head(tree, 4), logKey)), 'unknown-signer', 'the checkpoint of another log');
  const flipped = note(tree).replace(/\n\n\u2014 (\S+) (.)/, (_m, n: string, c: string) => `\n\n\u2014 ${n} ${c === 'A' ? 'B' : 'A'}`);
  t.true(['bad-signature', 'unknown-signer'].includes(code(() => checkFeedLog([item(tree, objects, 1, 5)], { ...logOf(tree, 4), treeHead: flipped }, head(tree, 4), logKey)) ?? ''));
});

/**
 * The agent's side of the log check (agent/logged.ts applyLogged), in process over the pure core:
 * what is held, for how long, what is refused and recorded once, and the owners' witness policy.
 */
import test from 'ava';
import * as c from '../mesh/crypto.js';
import { b64u } from '../mesh/bytes.js';
import { logOrigin, signCheckpoint } from '../mesh/checkpoint.js';
import { addSignatures, cosign, formatVkey } from '../mesh/cosignature.js';
import { payloadBytes } from '../mesh/envelope.js';
import { leafHash, MerkleTree } from '../mesh/merkle.js';
import { adminEntry, createMasterProfile } from '../mesh/profiles.js';
import type { DownloadResponse, FeedItem } from '../mesh/protocol.js';
import { applyLogged, LATE_GRACE_MS, witnessPolicies } from '../agent/logged.js';
import { EMPTY_STATE, type AgentState } from '../agent/state.js';
import { CoreDevice, CoreOwner, item } from '../harness/core-world.js';

const key = c.ed25519KeyPair();
const origin = logOrigin('portal.test');
const logKey = { name: origin, publicKey: key.publicKey };
const witness = { name: 'witness.test/w1', key: c.ed25519KeyPair() };

/** A log holding some leaves, then each feed item in turn; answers proving items in the head after them. */
class World {
  readonly dev = new CoreDevice();
  readonly alice = new CoreOwner('alice@portal.test');
  readonly tree = new MerkleTree();
  constructor() {
    for (let i = 0; i < 5; i++) this.tree.appendData(c.randomBytes(16));
  }
  log(it: FeedItem): FeedItem {
    const index = this.tree.appendLeafHash(leafHash(payloadBytes(it.object)));
    return { ...it, index };
  }
  answer(items: FeedItem[], from: number, opts: { cosigned?: boolean } = {}): DownloadResponse {
    const size = this.tree.size;
    let note = signCheckpoint({ origin, size, root: this.tree.root() }, key);
    if (opts.cosigned === true) note = addSignatures(note, cosign(note.slice(0, note.lastIndexOf('\n\n') + 1), witness, 1_700_000_000));
    return { n: items.at(-1)?.n ?? 0, items: items.map((i) => ({ ...i, path: this.tree.inclusionProof(i.index).map(b64u) })), log: { treeHead: note, from, consistency: this.tree.consistencyProof(from).map(b64u) } };
  }
}

const ctx = (w: World): ReturnType<CoreDevice['context']> => w.dev.context(undefined, true);

test('a proven answer is applied and its head held; an item beyond the head is late, then not-logged after the grace, recorded once', (t) => {
  const w = new World();
  const claim = w.log(item(1, 'claim', w.alice.claim(w.dev), w.alice.masterEnvelope));
  const r1 = applyLogged(EMPTY_STATE, w.answer([claim], 0), ctx(w), logKey, undefined, 0);
  t.is(r1.state.n, 1);
  t.is(r1.state.treeHead?.size, w.tree.size);
  const held = r1.state.treeHead?.size ?? 0;
  // the next item, logged after the head the portal proves with
  const cfg = item(2, 'application', w.alice.config(w.dev, 'thermostat', { setpoint: 21 }));
  const ans = w.answer([], held);
  const late: DownloadResponse = { ...ans, items: [{ ...cfg, index: w.tree.size + 3 }] };
  const r2 = applyLogged(r1.state, late, ctx(w), logKey, undefined, 1000);
  t.is(r2.hold?.code, 'late');
  t.is(r2.state, r1.state, 'nothing changes while late');
  const r3 = applyLogged(r1.state, late, ctx(w), logKey, { n: 2, sinceMs: 1000 }, 1000 + LATE_GRACE_MS - 1);
  t.is(r3.hold?.code, 'late');
  t.is(r3.events.length, 0);
  const r4 = applyLogged(r1.state, late, ctx(w), logKey, { n: 2, sinceMs: 1000 }, 1000 + LATE_GRACE_MS);
  t.is(r4.state.n, 1, 'the cursor stays before it');
  t.is(r4.state.errors.at(-1)?.code, 'not-logged');
  t.deepEqual(r4.events.map((e) => e.type === 'refused' && e.code), ['not-logged']);
  const r5 = applyLogged(r4.state, late, ctx(w), logKey, { n: 2, sinceMs: 1000 }, 1000 + LATE_GRACE_MS + 5);
  t.is(r5.state.errors.length, r4.state.errors.length, 'recorded once while it lasts');
  // once logged and proven, applied
  const logged = w.log(cfg);
  const r6 = applyLogged(r4.state, w.answer([logged], held), ctx(w), logKey, { n: 2, sinceMs: 1000 }, 99_999);
  t.is(r6.state.n, 2);
  t.true(r6.events.some((e) => e.type === 'applied'));
});

test("a head that does not extend the held one refuses the whole answer; an owner's witness quorum refuses an uncosigned head", (t) => {
  const w = new World();
  const claim = w.log(item(1, 'claim', w.alice.claim(w.dev), w.alice.masterEnvelope));
  const s1 = applyLogged(EMPTY_STATE, w.answer([claim], 0), ctx(w), logKey, undefined, 0).state;
  const other = new World();
  const cfg = other.log(item(2, 'application', w.alice.config(w.dev, 'thermostat', { setpoint: 22 })));
  for (let i = 0; i < 10; i++) other.tree.appendData(c.randomBytes(8));
  const forked = other.answer([cfg], s1.treeHead?.size ?? 0);
  const r = applyLogged(s1, forked, ctx(w), logKey, undefined, 0);
  t.is(r.state.n, 1);
  t.is(r.state.treeHead, s1.treeHead, 'the fork is not taken');
  t.is(r.state.errors.at(-1)?.code, 'log-inconsistent');

  // Alice requires the witness (quorum 1): her new master profile reaches the device
  const vkey = formatVkey({ name: witness.name, publicKey: witness.key.publicKey });
  const m2 = createMasterProfile(w.alice.master, [adminEntry(w.alice.admin)], { seq: 2, witnesses: [vkey], quorum: 1 });
  const master = w.log(item(2, 'master', m2));
  const s2 = applyLogged(s1, w.answer([master], s1.treeHead?.size ?? 0), ctx(w), logKey, undefined, 0).state;
  t.is(s2.n, 2);
  t.deepEqual(witnessPolicies(s2).map((p) => [p.quorum, p.witnesses.map((x) => x.name)]), [[1, [witness.name]]]);
  const next = w.log(item(3, 'application', w.alice.config(w.dev, 'thermostat', { setpoint: 23 })));
  const bare = applyLogged(s2, w.answer([next], s2.treeHead?.size ?? 0), ctx(w), logKey, undefined, 0);
  t.is(bare.state.n, 2, 'not applied without the cosignature');
  t.is(bare.state.errors.at(-1)?.code, 'not-witnessed');
  const cosigned = applyLogged(s2, w.answer([next], s2.treeHead?.size ?? 0, { cosigned: true }), ctx(w), logKey, undefined, 0);
  t.is(cosigned.state.n, 3);
  t.is((cosigned.state as AgentState).treeHead?.size, w.tree.size);
});

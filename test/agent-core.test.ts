/**
 * The device's rules, in-process, over the pure core (agent/core.ts): one table row per rule,
 * each with real signed objects and the code the device must record. No portal, no process, no
 * clock: the reducer's output is a function of its input.
 */
import test from 'ava';
import { applyItem, applyItems, configDocument, factoryReset, removeOwnerLocally, type AgentEvent } from '../agent/core.js';
import { EMPTY_STATE, type AgentState } from '../agent/state.js';
import { deriveClaimSecrets, newClaimSecret } from '../mesh/claim.js';
import { createRemove } from '../mesh/messages.js';
import { CoreDevice, CoreOwner, item } from './helpers/core-world.js';
import type { FeedItem } from '../mesh/protocol.js';

interface Row {
  readonly name: string;
  /** the feed as delivered; the last item is the one under test */
  readonly feed: (w: { dev: CoreDevice; other: CoreDevice; alice: CoreOwner; bob: CoreOwner }) => FeedItem[];
  /** the code the last item is refused with, or undefined if it is obeyed */
  readonly code?: string;
  readonly check?: (s: AgentState, w: { dev: CoreDevice; alice: CoreOwner; bob: CoreOwner }, events: readonly AgentEvent[]) => void;
}

function run(dev: CoreDevice, feed: FeedItem[]): { state: AgentState; events: AgentEvent[] } {
  let s = EMPTY_STATE;
  const events: AgentEvent[] = [];
  for (const it of feed) {
    const r = applyItem(s, it, dev.context(undefined, true)); // the claim window open: these rows are about other rules than consent
    s = r.state;
    events.push(...r.events);
  }
  return { state: s, events };
}

const claimed = (w: { dev: CoreDevice; alice: CoreOwner }): FeedItem => item(1, 'claim', w.alice.claim(w.dev), w.alice.masterEnvelope);

const rows: Row[] = [
  {
    name: 'a claim with the label secret makes the claimant an owner',
    feed: (w) => [claimed(w)],
    check: (s, w, ev) => {
      if (s.owners[w.alice.masterId]?.account !== 'alice@p') throw new Error('alice is not an owner');
      if (ev.at(-1)?.type !== 'claimed') throw new Error('no claimed event');
    },
  },
  { name: 'a claim without the label secret is refused', feed: (w) => [item(1, 'claim', w.alice.claim(w.dev, deriveClaimSecrets(newClaimSecret())), w.alice.masterEnvelope)], code: 'bad-claim-proof' },
  { name: 'a claim for another device is refused', feed: (w) => [item(1, 'claim', w.alice.claim(w.other, w.dev.secrets), w.alice.masterEnvelope)], code: 'wrong-device' },
  { name: 'a claim with another owner\'s master profile attached is refused', feed: (w) => [item(1, 'claim', w.alice.claim(w.dev), w.bob.masterEnvelope)], code: 'wrong-master' },
  {
    name: 'a claim arriving without its master profile is refused',
    feed: (w) => [{ n: 1, kind: 'claim', object: w.alice.claim(w.dev), index: 1 }],
    code: 'malformed',
  },
  {
    name: 'an application profile from an owner is applied and merged',
    feed: (w) => [claimed(w), item(2, 'application', w.alice.config(w.dev, 'thermostat', { setpoint: 21 }))],
    check: (s) => {
      if (JSON.stringify((configDocument(s).thermostat as object)) !== '{"setpoint":21}') throw new Error('not applied');
    },
  },
  { name: 'an application profile from someone who does not own the device is refused', feed: (w) => [claimed(w), item(2, 'application', w.bob.config(w.dev, 'thermostat', { setpoint: 21 }))], code: 'unknown-owner' },
  { name: 'an application profile for another device is refused', feed: (w) => [claimed(w), item(2, 'application', w.alice.config(w.other, 'thermostat', { setpoint: 21 }))], code: 'not-a-recipient' },
  { name: 'an out-of-schema value is refused', feed: (w) => [claimed(w), item(2, 'application', w.alice.config(w.dev, 'thermostat', { setpoint: 350 }))], code: 'schema' },
  { name: 'an application the device does not run is refused', feed: (w) => [claimed(w), item(2, 'application', w.alice.config(w.dev, 'lights', { on: true }))], code: 'schema' },
  {
    name: 'an older application profile is refused as rollback',
    feed: (w) => {
      const old = w.alice.config(w.dev, 'thermostat', { setpoint: 18 });
      return [claimed(w), item(2, 'application', w.alice.config(w.dev, 'thermostat', { setpoint: 21 })), item(3, 'application', old)];
    },
    code: 'rollback',
  },
  {
    name: 'the same application profile delivered twice is refused the second time (rollback)',
    feed: (w) => {
      const p = w.alice.config(w.dev, 'thermostat', { setpoint: 21 });
      return [claimed(w), item(2, 'application', p), item(3, 'application', p)];
    },
    code: 'rollback',
  },
  {
    name: 'a master update revoking a key: the new key is obeyed',
    feed: (w) => {
      const c = claimed(w);
      w.alice.rotate();
      return [c, item(2, 'master', w.alice.masterEnvelope), item(3, 'application', w.alice.config(w.dev, 'thermostat', { setpoint: 22 }))];
    },
  },
  {
    name: 'after a master update, a profile signed by the revoked key is refused',
    feed: (w) => {
      const c = claimed(w);
      const old = w.alice.rotate();
      return [c, item(2, 'master', w.alice.masterEnvelope), item(3, 'application', w.alice.config(w.dev, 'thermostat', { setpoint: 22 }, { signer: old }))];
    },
    code: 'revoked-key',
  },
  {
    name: 'an older master profile is refused as rollback',
    feed: (w) => {
      const first = w.alice.masterEnvelope;
      const c = claimed(w);
      w.alice.rotate();
      return [c, item(2, 'master', w.alice.masterEnvelope), item(3, 'master', first)];
    },
    code: 'rollback',
  },
  { name: 'a master profile of someone who does not own the device is refused', feed: (w) => [claimed(w), item(2, 'master', w.bob.masterEnvelope)], code: 'unknown-owner' },
  {
    name: 'an owner removes itself: its values go, the other owner\'s stay',
    feed: (w) => [
      claimed(w),
      item(2, 'claim', w.bob.claim(w.dev), w.bob.masterEnvelope),
      item(3, 'application', w.alice.config(w.dev, 'thermostat', { setpoint: 21 })),
      item(4, 'application', w.bob.config(w.dev, 'thermostat', { mode: 'eco' })),
      item(5, 'remove', w.bob.remove(w.dev)),
    ],
    check: (s, w) => {
      if (s.owners[w.bob.masterId] !== undefined) throw new Error('bob is still an owner');
      if (JSON.stringify(configDocument(s).thermostat) !== '{"setpoint":21}') throw new Error(`config is ${JSON.stringify(configDocument(s).thermostat)}`);
    },
  },
  { name: 'a removal for an owner the device does not have is refused', feed: (w) => [claimed(w), item(2, 'remove', w.bob.remove(w.dev))], code: 'unknown-owner' },
  {
    name: 'a removal signed by another owner is refused (nobody removes another over the network)',
    // Alice signs a removal that names Bob
    feed: (w) => [claimed(w), item(2, 'claim', w.bob.claim(w.dev), w.bob.masterEnvelope), item(3, 'remove', createRemove(w.alice.admin.sign, { device: w.dev.id, master: w.bob.masterId }))],
    code: 'unknown-signer',
  },
  { name: 'a removal for another device is refused', feed: (w) => [claimed(w), item(2, 'remove', w.alice.remove(w.other))], code: 'wrong-device' },
  {
    name: 'with two owners the merge keeps both owners\' keys and says who set each',
    feed: (w) => [
      claimed(w),
      item(2, 'claim', w.bob.claim(w.dev), w.bob.masterEnvelope),
      item(3, 'application', w.alice.config(w.dev, 'thermostat', { setpoint: 21 }, { created: '2026-01-01T00:00:01.000Z' })),
      item(4, 'application', w.bob.config(w.dev, 'thermostat', { mode: 'eco' }, { created: '2026-01-01T00:00:02.000Z' })),
    ],
    check: (s, w) => {
      const doc = configDocument(s) as { thermostat: unknown; _sources: { thermostat: Record<string, { owner: string }> } };
      if (JSON.stringify(doc.thermostat) !== '{"mode":"eco","setpoint":21}') throw new Error(JSON.stringify(doc.thermostat));
      if (doc._sources.thermostat.mode?.owner !== w.bob.account || doc._sources.thermostat.setpoint?.owner !== w.alice.account) throw new Error('sources');
    },
  },
];

for (const row of rows) {
  test(`core: ${row.name}${row.code !== undefined ? ` (${row.code})` : ''}`, (t) => {
    const w = { dev: new CoreDevice(), other: new CoreDevice(), alice: new CoreOwner('alice@p'), bob: new CoreOwner('bob@p') };
    const feed = row.feed(w);
    const before = run(w.dev, feed.slice(0, -1));
    const after = run(w.dev, feed);
    const last = feed.at(-1) as FeedItem;
    t.is(after.state.n, last.n, 'the cursor moves to the item, obeyed or refused');
    if (row.code !== undefined) {
      const refusal = after.events.at(-1);
      t.is(refusal?.type, 'refused');
      t.is(refusal?.type === 'refused' ? refusal.code : undefined, row.code);
      t.is(after.state.errors.at(-1)?.code, row.code, 'the refusal is recorded for the owners');
      t.deepEqual(after.state.owners, before.state.owners, 'a refused item changes no owner');
    } else {
      t.not(after.events.at(-1)?.type, 'refused', JSON.stringify(after.events.at(-1)));
      t.deepEqual(after.state.errors, []);
    }
    row.check?.(after.state, w, after.events);
  });
}

test('core: the reducer is pure: the same input gives the same output, and the input is not changed', (t) => {
  const dev = new CoreDevice();
  const alice = new CoreOwner('alice@p');
  const feed = [item(1, 'claim', alice.claim(dev), alice.masterEnvelope), item(2, 'application', alice.config(dev, 'thermostat', { setpoint: 21 }))];
  const frozen = JSON.stringify(EMPTY_STATE);
  const a = applyItems(EMPTY_STATE, feed, dev.context());
  const b = applyItems(EMPTY_STATE, feed, dev.context());
  t.deepEqual(a, b);
  t.is(JSON.stringify(EMPTY_STATE), frozen);
});

test('core: a Download answer cannot move the cursor past items it did not deliver (feed-gap)', (t) => {
  const dev = new CoreDevice();
  const alice = new CoreOwner('alice@p');
  const claim = item(1, 'claim', alice.claim(dev), alice.masterEnvelope);
  const s1 = applyItems(EMPTY_STATE, [claim], dev.context()).state;
  // a real item with an enormous number: nothing applied, the cursor stays
  const forged = { ...item(2, 'application', alice.config(dev, 'thermostat', { setpoint: 21 })), n: 1_000_000_000_000 };
  const r = applyItems(s1, [forged], dev.context());
  t.deepEqual(r.gap, { expected: 2, got: 1_000_000_000_000 });
  t.is(r.state.n, 1);
  t.false(r.configChanged);
  // items up to the gap are applied, the rest is not
  const ok = item(2, 'application', alice.config(dev, 'thermostat', { setpoint: 22 }));
  const r2 = applyItems(s1, [ok, { ...item(4, 'application', alice.config(dev, 'thermostat', { setpoint: 23 })) }], dev.context());
  t.is(r2.state.n, 2);
  t.deepEqual(r2.gap, { expected: 3, got: 4 });
  t.deepEqual(configDocument(r2.state).thermostat, { setpoint: 22 });
  // duplicates at or below the cursor are skipped, out-of-order answers are sorted
  const r3 = applyItems(s1, [item(3, 'application', alice.config(dev, 'thermostat', { setpoint: 24 })), claim, ok], dev.context());
  t.is(r3.state.n, 3);
  t.is(r3.gap, undefined);
  t.deepEqual(configDocument(r3.state).thermostat, { setpoint: 24 });
});

// ------------------------------------------------------------ ownership (consent, replay, epochs, floors, precedence)

function feedRun(dev: CoreDevice, s0: AgentState, feed: FeedItem[], opts: { window?: boolean; now?: string } = {}): { state: AgentState; events: AgentEvent[] } {
  let s = s0;
  const events: AgentEvent[] = [];
  for (const it of feed) {
    const r = applyItem(s, it, dev.context(opts.now, opts.window ?? false));
    s = r.state;
    events.push(...r.events);
  }
  return { state: s, events };
}

const lastCode = (events: readonly AgentEvent[]): string | undefined => {
  const e = events.at(-1);
  return e?.type === 'refused' ? e.code : e?.type;
};

test('consent: once the device has an owner, the label alone claims nothing (not-invited); with the claim window open it does', (t) => {
  const dev = new CoreDevice();
  const alice = new CoreOwner('alice@p');
  const mallory = new CoreOwner('mallory@p');
  const s1 = feedRun(dev, EMPTY_STATE, [item(1, 'claim', alice.claim(dev), alice.masterEnvelope)]).state;
  const mclaim = mallory.claim(dev);
  const refused = feedRun(dev, s1, [item(2, 'claim', mclaim, mallory.masterEnvelope)]);
  t.is(lastCode(refused.events), 'not-invited');
  t.deepEqual(Object.keys(refused.state.owners), [alice.masterId]);
  const opened = feedRun(dev, s1, [item(2, 'claim', mallory.claim(dev), mallory.masterEnvelope)], { window: true });
  t.is(lastCode(opened.events), 'claimed');
  t.is(Object.keys(opened.state.owners).length, 2);
  // the portal delivers Mallory's refused claim again once a window is open (for Bob): it was used up
  const again = feedRun(dev, refused.state, [item(3, 'claim', mclaim, mallory.masterEnvelope)], { window: true });
  t.is(lastCode(again.events), 'replay');
  t.deepEqual(Object.keys(again.state.owners), [alice.masterId]);
});

test('replay: an old claim after the owner removed herself, and an old removal after she claimed again, are refused (replay)', (t) => {
  const dev = new CoreDevice();
  const alice = new CoreOwner('alice@p');
  const firstClaim = item(1, 'claim', alice.claim(dev), alice.masterEnvelope);
  const removal = alice.remove(dev);
  const s = feedRun(dev, EMPTY_STATE, [firstClaim, item(2, 'remove', removal)]).state;
  t.deepEqual(s.owners, {});
  const replayedClaim = feedRun(dev, s, [{ ...firstClaim, n: 3 }]);
  t.is(lastCode(replayedClaim.events), 'replay');
  t.deepEqual(replayedClaim.state.owners, {});
  // she claims again with a fresh claim; the portal replays her old removal
  const again = feedRun(dev, s, [item(3, 'claim', alice.claim(dev), alice.masterEnvelope), item(4, 'remove', removal)]);
  t.is(lastCode(again.events), 'replay');
  t.truthy(again.state.owners[alice.masterId]);
});

test('removal and factory reset keep the rollback floor: an owner\'s older profiles stay refused after she claims again', (t) => {
  const dev = new CoreDevice();
  const alice = new CoreOwner('alice@p');
  const old = alice.config(dev, 'thermostat', { setpoint: 18 }); // seq 1
  const s = feedRun(dev, EMPTY_STATE, [
    item(1, 'claim', alice.claim(dev), alice.masterEnvelope),
    item(2, 'application', old),
    item(3, 'application', alice.config(dev, 'thermostat', { setpoint: 21 })), // seq 2
  ]).state;
  const reset = factoryReset(s, 'new-epoch', dev.secrets.deviceKey);
  t.deepEqual(reset.owners, {});
  t.is(reset.epoch, 'new-epoch');
  t.is(reset.resets, 1);
  t.deepEqual(configDocument(reset), { _sources: {} });
  t.false(JSON.stringify(reset).includes(alice.masterId), 'the reset device keeps no readable trace of its former owner');
  // she claims again (the device has no owner: the label works); the portal replays seq 1
  const after = feedRun(dev, reset, [item(4, 'claim', alice.claim(dev), alice.masterEnvelope), item(5, 'application', old)]);
  t.is(lastCode(after.events), 'rollback');
  t.deepEqual(configDocument(after.state), { _sources: {} });
  // an older master profile cannot come back with a claim either
  const first = alice.masterEnvelope;
  alice.rotate();
  const s2 = feedRun(dev, after.state, [item(6, 'master', alice.masterEnvelope)]).state;
  const s3 = factoryReset(s2, 'e3', dev.secrets.deviceKey);
  const stale = feedRun(dev, s3, [item(7, 'claim', alice.claim(dev), first)]);
  t.is(lastCode(stale.events), 'rollback');
});

test('a key revoked in any master profile the device has seen stays refused, whatever master the portal attaches', (t) => {
  const dev = new CoreDevice();
  const alice = new CoreOwner('alice@p');
  const s1 = feedRun(dev, EMPTY_STATE, [item(1, 'claim', alice.claim(dev), alice.masterEnvelope)]).state;
  const stolen = alice.rotate();
  const s2 = feedRun(dev, s1, [item(2, 'master', alice.masterEnvelope)]).state;
  const s3 = removeOwnerLocally(s2, 'alice@p', dev.secrets.deviceKey).state;
  // the thief (stolen laptop key) claims with the old master profile, in which his key is still an admin
  const forgedClaim = (() => {
    const o = new CoreOwner('alice@p');
    Object.assign(o, { master: alice.master, admin: stolen });
    return o.claim(dev);
  })();
  const r = feedRun(dev, s3, [item(3, 'claim', forgedClaim, alice.masterEnvelope)]);
  t.is(lastCode(r.events), 'revoked-key');
});

test('precedence is feed order: Bob signs with a clock a day ahead, Alice after him; the device runs Alice\'s value and flags his clock', (t) => {
  const dev = new CoreDevice();
  const alice = new CoreOwner('alice@p');
  const bob = new CoreOwner('bob@p');
  const r = feedRun(
    dev,
    EMPTY_STATE,
    [
      item(1, 'claim', alice.claim(dev), alice.masterEnvelope),
      item(2, 'claim', bob.claim(dev), bob.masterEnvelope),
      item(3, 'application', bob.config(dev, 'thermostat', { setpoint: 25 }, { created: '2026-03-02T12:00:00.000Z' })),
      item(4, 'application', alice.config(dev, 'thermostat', { setpoint: 18 }, { created: '2026-03-01T12:00:00.000Z' })),
    ],
    { window: true, now: '2026-03-01T12:00:05.000Z' },
  );
  t.deepEqual(configDocument(r.state).thermostat, { setpoint: 18 });
  t.true(r.state.errors.some((e) => e.code === 'clock-ahead' && e.master === bob.masterId), 'Bob\'s clock is flagged for the owners');
  // a device whose clock says 1970 applies the same way and flags nothing
  const r1970 = feedRun(dev, EMPTY_STATE, [item(1, 'claim', alice.claim(dev), alice.masterEnvelope), item(2, 'application', alice.config(dev, 'thermostat', { setpoint: 20 }))], { now: '1970-01-01T00:00:42.000Z' });
  t.deepEqual(configDocument(r1970.state).thermostat, { setpoint: 20 });
  t.deepEqual(r1970.state.errors, []);
});

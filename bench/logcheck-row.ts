/**
 * logcheck: what the device's log check (agent/logged.ts over mesh/feedlog.ts) adds to each
 * applied item. In process, one device (the pure core, as the agent runs it), its owner's
 * application profiles delivered one per Download answer, as a device meets them: each answer
 * carries a checkpoint (one Ed25519 verification), the consistency proof from the last head and
 * the item's inclusion proof, in a log of a million leaves. Baseline: the same items through the
 * core alone (applyItems), interleaved in the same run.
 */
import { b64u } from '../mesh/bytes.js';
import * as c from '../mesh/crypto.js';
import { logOrigin, signCheckpoint } from '../mesh/checkpoint.js';
import { payloadBytes } from '../mesh/envelope.js';
import { leafHash, MerkleTree } from '../mesh/merkle.js';
import type { DownloadResponse, FeedItem } from '../mesh/protocol.js';
import { applyItems } from '../agent/core.js';
import { applyLogged } from '../agent/logged.js';
import { EMPTY_STATE, type AgentState } from '../agent/state.js';
import { CoreDevice, CoreOwner, item } from '../harness/core-world.js';
import { log, median, type Line, type Options } from './util.js';

export async function logcheckRow(o: Options): Promise<Line[]> {
  const count = o.quick ? 100 : 400;
  const filler = o.quick ? 100_000 : 1_000_000;
  const rounds = o.quick ? 3 : 7;
  const dev = new CoreDevice();
  const alice = new CoreOwner('alice@portal.test');
  const key = c.ed25519KeyPair();
  const origin = logOrigin('portal.test');
  const logKey = { name: origin, publicKey: key.publicKey };
  const fillers = Array.from({ length: filler }, () => c.randomBytes(32));
  const items: FeedItem[] = [item(1, 'claim', alice.claim(dev), alice.masterEnvelope)];
  for (let i = 0; i < count; i++) items.push(item(i + 2, 'application', alice.config(dev, 'thermostat', { setpoint: 10 + (i % 20) })));
  // each answer proves its items in the head just after them, and that head from the last one
  const build = (per: number): { answers: DownloadResponse[]; tree: MerkleTree } => {
    const tree = new MerkleTree(fillers);
    const answers: DownloadResponse[] = [];
    let prev = 0;
    for (let k = 0; k < items.length; k += per) {
      const batch = items.slice(k, k + per);
      const indices = batch.map((it) => tree.appendLeafHash(leafHash(payloadBytes(it.object))));
      const size = tree.size;
      answers.push({
        n: batch.at(-1)?.n ?? 0,
        items: batch.map((it, j) => ({ ...it, index: indices[j] as number, path: tree.inclusionProof(indices[j] as number, size).map(b64u) })),
        log: { treeHead: signCheckpoint({ origin, size, root: tree.root(size) }, key), from: prev, consistency: tree.consistencyProof(prev, size).map(b64u) },
      });
      prev = size;
    }
    return { answers, tree };
  };
  const measure = (per: number): { core: number; logged: number } => {
    const { answers, tree } = build(per);
    const plain = answers.map((a) => a.items.map(({ path: _p, ...it }) => it));
    const runCore = (): number => {
      const t0 = process.hrtime.bigint();
      let s: AgentState = EMPTY_STATE;
      for (const its of plain) s = applyItems(s, its, dev.context(undefined, true)).state;
      if (s.n !== items.length) throw new Error(`core applied ${s.n} of ${items.length}`);
      return Number(process.hrtime.bigint() - t0) / 1000 / items.length;
    };
    const runLogged = (): number => {
      const t0 = process.hrtime.bigint();
      let s: AgentState = EMPTY_STATE;
      for (const a of answers) s = applyLogged(s, a, dev.context(undefined, true), logKey, undefined, 0).state;
      if (s.n !== items.length || s.treeHead?.size !== tree.size) throw new Error(`logged applied ${s.n} of ${items.length}`);
      return Number(process.hrtime.bigint() - t0) / 1000 / items.length;
    };
    runCore();
    runLogged();
    const core: number[] = [];
    const logged: number[] = [];
    for (let r = 0; r < rounds; r++) {
      core.push(runCore());
      logged.push(runLogged());
    }
    return { core: median(core), logged: median(logged) };
  };
  const line = (per: number): Line => {
    const m = measure(per);
    const extra = m.logged - m.core;
    log(`logcheck (${per}/answer): core ${m.core.toFixed(1)} µs/item, with the log check ${m.logged.toFixed(1)} µs/item`);
    return {
      figure: `log check per applied item, ${per === 1 ? 'one item per answer' : `${per} items per answer (catching up)`}, log of ${(filler / 1e6).toFixed(1)}M leaves`,
      value: `+${extra.toFixed(1)} µs/item (+${((extra / m.core) * 100).toFixed(1)}%)`,
      baseline: `${m.core.toFixed(1)} µs/item core alone`,
      target: 'report',
      pass: null,
      data: { per, coreUsPerItem: m.core, loggedUsPerItem: m.logged, extraUsPerItem: extra, items: items.length, rounds },
    };
  };
  return [line(1), line(50)];
}

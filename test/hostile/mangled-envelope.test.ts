/**
 * Attack 5: the portal mangles the envelope in a Download answer: a bit flipped in the signed
 * payload (not the bytes it logged: not-logged), the payload cut short or padded, a signature cut short, an envelope larger than any
 * the protocol allows, the whole answer cut off; the device's part of the profile (its wrapped key,
 * unsigned) removed, relabelled for another device or changed. Each is refused with a typed code (no crash,
 * no partial configuration), the agent keeps polling, config.json is unchanged, the reason is
 * in the agent's status; once the portal stops, the device applies the owner's real update.
 */
import test from 'ava';
import { b64u, fromB64u } from '../../mesh/bytes.js';
import { isMeshErrorCode } from '../../mesh/errors.js';
import { agentStatus, until } from '../../harness/agent-process.js';
import { onDownload, swapNextItem, type WireItem } from './proxy.js';
import { assertRefused, hostileWorld, payloadOf, refusal, type World } from './world.js';

function withPayload(it: WireItem, change: (bytes: Buffer) => Buffer): WireItem {
  const bytes = Buffer.from(fromB64u(it.object.payload, 'payload'));
  return { ...it, object: { ...it.object, payload: b64u(change(bytes)) } };
}

/** Refused as an item: the device says which item and why. */
async function itemAttack(w: World, replace: (it: WireItem) => WireItem, setpoint: number): Promise<string> {
  const { rule, served } = swapNextItem('mangle', (it) => it.kind === 'application', replace);
  const off = w.proxy.use(rule);
  try {
    await w.alice.publish('thermostat', { setpoint });
    const n = await served;
    return String((await refusal(w, (e) => e.n === n, `item ${n} refused`)).code);
  } finally {
    off();
  }
}

// the log leaf is the signed payload: changed bytes are not what the portal logged, and the device's
// log check refuses them (not-logged) before their signature is looked at; the cursor stays before
// them, so the owner's real update is applied once the portal stops
const cases: { name: string; code: string; replace: (it: WireItem) => WireItem }[] = [
  {
    name: 'one bit flipped in the signed payload',
    code: 'not-logged',
    replace: (it) =>
      withPayload(it, (b) => {
        const i = b.indexOf('"created":"') + 14; // a digit of the year: the JSON stays valid
        b[i] = (b[i] as number) ^ 1;
        return b;
      }),
  },
  { name: 'the payload cut in half', code: 'not-logged', replace: (it) => withPayload(it, (b) => b.subarray(0, Math.floor(b.length / 2))) },
  { name: 'the payload padded with whitespace (same JSON, other bytes)', code: 'not-logged', replace: (it) => withPayload(it, (b) => Buffer.concat([b, Buffer.from('    \n')])) },
  { name: 'the payload padded with a trailing garbage byte', code: 'not-logged', replace: (it) => withPayload(it, (b) => Buffer.concat([b, Buffer.from([0x00])])) },
  // the parts are not signed, so the log check passes; a part is checked against the signed
  // manifest when the device holds them all (here it is the only recipient: bad-part), and
  // otherwise against the signed ephemeral key and key commitment (test/parts.test.ts)
  { name: "the device's part left out", code: 'not-a-recipient', replace: (it) => ({ ...it, object: { payload: it.object.payload, sigs: it.object.sigs } }) },
  { name: "the device's part relabelled for another device", code: 'bad-part', replace: (it) => withPart(it, (p) => ({ ...p, device: 'MAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA' })) },
  {
    name: "one bit flipped in the device's wrapped key",
    code: 'bad-part',
    replace: (it) =>
      withPart(it, (p) => {
        const wk = Buffer.from(fromB64u(p.wk, 'wk'));
        wk[3] = (wk[3] as number) ^ 1;
        return { ...p, wk: b64u(wk) };
      }),
  },
];

function withPart(it: WireItem, change: (p: NonNullable<WireItem['object']['parts']>[number]) => NonNullable<WireItem['object']['parts']>[number]): WireItem {
  const parts = it.object.parts ?? [];
  if (parts.length !== 1) throw new Error(`the portal served ${parts.length} parts, not the device's own`);
  return { ...it, object: { ...it.object, parts: parts.map(change) } };
}

for (const k of cases) {
  test.serial(`${k.name}: refused (${k.code}), config unchanged, the agent keeps polling`, async (t) => {
    const w = await hostileWorld();
    try {
      const before = w.configBytes();
      const code = await itemAttack(w, k.replace, 27);
      t.true(isMeshErrorCode(code));
      t.is(code, k.code);
      await assertRefused(t, w, before, k.code);
      // the owner's real update was the mangled one; the next one goes through
      const next = await w.alice.publish('thermostat', { setpoint: 22 });
      await w.agent.waitFor((e) => e.type === 'applied' && e.seq === payloadOf(next).seq);
      t.is(JSON.parse(w.configBytes()).thermostat.setpoint, 22);
    } finally {
      await w.close();
    }
  });
}

/**
 * Refused as a whole answer: the Download does not parse, so no item is applied or skipped; the
 * agent logs the code, backs off and polls again, and the owner's update arrives intact once the
 * portal stops.
 */
const answers: { name: string; code: string; rewrite: (body: { n: number; items: WireItem[] }) => unknown }[] = [
  {
    name: 'a signature cut short',
    code: 'malformed',
    rewrite: (b) => ({ ...b, items: b.items.map((it) => ({ ...it, object: { ...it.object, sigs: it.object.sigs.map((s) => ({ ...s, sig: s.sig.slice(0, 40) })) } })) }),
  },
  {
    name: 'an envelope larger than the protocol allows (1 MB payload)',
    code: 'malformed',
    rewrite: (b) => ({ ...b, items: b.items.map((it) => withPayload(it, (p) => Buffer.concat([p, Buffer.alloc(1024 * 1024, 0x20)]))) }),
  },
  { name: 'an answer of 5 MB', code: 'too-large', rewrite: (b) => JSON.stringify({ ...b, pad: 'x'.repeat(5 * 1024 * 1024) }) },
  { name: 'the answer cut off mid-way', code: 'malformed', rewrite: (b) => JSON.stringify(b).slice(0, 100) },
];

for (const k of answers) {
  test.serial(`${k.name}: the Download is refused (${k.code}); no crash, config unchanged, the update arrives once the portal stops`, async (t) => {
    const w = await hostileWorld();
    try {
      const before = w.configBytes();
      const n0 = w.state().n;
      let mangled = 0;
      const off = w.proxy.use(
        onDownload('mangle-answer', (b) => {
          if (b.items.length === 0) return undefined;
          mangled++;
          return k.rewrite(b);
        }),
      );
      const env = await w.alice.publish('thermostat', { setpoint: 26 });
      await until('two mangled answers', () => (mangled >= 2 ? true : undefined), 20_000);
      t.is(w.agent.proc.exitCode, null, 'the agent process is alive');
      t.regex(w.agent.logs(), new RegExp(`"event":"poll-failed",[^\\n]*"code":"${k.code}"`), `the agent logged poll-failed ${k.code}`);
      t.is(w.configBytes(), before, 'config.json is exactly as before');
      t.is(w.state().n, n0, 'no item was consumed: nothing is lost');
      // the reason is in the agent's status, and from there in its signed report
      const st = await agentStatus(w.dir);
      t.true(st.errors.some((e) => e.code === k.code), `the agent's status lists ${k.code}: ${JSON.stringify(st.errors.map((e) => e.code))}`);
      const signed = await until('the reason in the signed status', async () => ((await w.signedStatus())?.errors.some((e) => e.code === k.code) === true ? true : undefined));
      t.true(signed);
      off();
      await w.agent.waitFor((e) => e.type === 'applied' && e.seq === payloadOf(env).seq, 70_000, 'the real update after the attack');
      t.is(JSON.parse(w.configBytes()).thermostat.setpoint, 26);
    } finally {
      await w.close();
    }
  });
}

/**
 * One forged answer must never stop the owner's CLI for good. The REAL `mesh` CLI talks to a REAL
 * portal through the man-in-the-middle proxy, which forges ONE answer at a time:
 *
 *   Account  a personal profile or a configuration with an enormous sequence number (its
 *            signature broken, or re-signed by a key the owner never listed, or by one the owner
 *            revoked), which the CLI used to keep as its own counter: every later read-back then
 *            looked like a rollback and every later publication was numbered out of range;
 *   Publish  a receipt with an enormous leaf index (kept, it made `mesh log verify` fail for good),
 *            or an "accepted" for a publication the portal never received (kept, the CLI believed
 *            itself ahead of the portal and refused every later read-back as a rollback);
 *   Claim    a receipt that does not prove the claim was logged.
 *
 * Each time: that command fails with `bad-answer` naming the portal's answer, profile.json is
 * byte for byte as before, and the next command with the honest portal works and the device
 * applies what it publishes.
 */
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PortalClient } from '../../client/portal-client.js';
import * as c from '../../mesh/crypto.js';
import { b64u, fromB64u } from '../../mesh/bytes.js';
import { masterKeysFromSeed, signKeyId } from '../../mesh/keys.js';
import { createApplicationProfile, createMasterProfile, parseMasterPayload, type AdminKeys } from '../../mesh/profiles.js';
import { payloadBytes, type SignedEnvelope } from '../../mesh/envelope.js';
import { PATHS } from '../../mesh/protocol.js';
import { openClaimWindow } from '../../harness/agent-process.js';
import type { Proxy, ProxyRequest, ProxyResponse } from './proxy.js';
import { jsonResponse } from './proxy.js';
import { cliError, hostileWorld, mesh, tmpHome, type CliRun, type World } from './world.js';

const HUGE = Number.MAX_SAFE_INTEGER;

/** Rewrite the next answer to `method path` (the portal still sees the request unless `instead`). */
function forgeOnce(
  proxy: Proxy,
  name: string,
  method: string,
  p: string,
  how: { response?: (res: ProxyResponse, req: ProxyRequest) => ProxyResponse; instead?: (req: ProxyRequest) => ProxyResponse },
): { done: () => boolean } {
  let fired = false;
  const off = proxy.use({
    name,
    request: (req) => {
      if (fired || how.instead === undefined || req.method !== method || req.path !== p) return undefined;
      fired = true;
      off();
      return how.instead(req);
    },
    response: (req, res) => {
      if (fired || how.response === undefined || req.method !== method || req.path !== p || res.status !== 200) return undefined;
      fired = true;
      off();
      return how.response(res, req);
    },
  });
  return { done: () => fired };
}

const bodyOf = (res: ProxyResponse): any => JSON.parse(res.body.toString('utf8'));
const payloadJson = (env: SignedEnvelope): any => JSON.parse(Buffer.from(payloadBytes(env)).toString('utf8'));
/** the same envelope with its payload's seq changed (its signature no longer verifies) */
const withSeq = (env: SignedEnvelope, seq: number): SignedEnvelope => ({ ...env, payload: b64u(Buffer.from(JSON.stringify({ ...payloadJson(env), seq }), 'utf8')) });

function profileBytes(home: string): string {
  return fs.readFileSync(path.join(home, 'profile.json'), 'utf8');
}

function assertBadAnswer(t: ExecutionContext, r: CliRun, what: RegExp): void {
  t.not(r.code, 0, 'the command fails');
  t.is(cliError(r), 'bad-answer', r.stdout + r.stderr);
  t.regex(String(r.json?.error?.detail?.what), what);
  t.regex(String(r.json?.error?.message), /the portal's .* cannot be believed/);
}

/** The next honest `config set` works and the device applies it. */
async function honestSetApplies(t: ExecutionContext, w: World, home: string, setpoint: number): Promise<number> {
  const r = await mesh(home, ['config', 'set', 'thermostat', `setpoint=${setpoint}`, '--wait-ms', '15000', '--json']);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.is(r.json?.results?.[0]?.result, 'applied', JSON.stringify(r.json));
  t.is(JSON.parse(w.configBytes()).thermostat.setpoint, setpoint, 'the device applied it');
  return r.json.seq as number;
}

async function ownerWithDevice(t: ExecutionContext, w: World, name: string, extra: string[] = []): Promise<string> {
  const home = tmpHome(name);
  w.cleanups.push(() => fs.rmSync(home, { recursive: true, force: true }));
  const made = await mesh(home, ['profile', 'create', '--portal', w.proxy.url, '--account', name, '--admin-name', 'laptop', '--json', ...extra]);
  t.is(made.code, 0, made.stdout + made.stderr);
  await openClaimWindow(w.dir); // the device has an owner already (alice): a co-owner's label claim needs the window
  return home;
}

async function claim(t: ExecutionContext, w: World, home: string): Promise<void> {
  const r = await mesh(home, ['device', 'claim', w.identity.labelUri, '--name', 'hall', '--wait-ms', '15000', '--json']);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.true(r.json.accepted);
}

test.serial('forged Account answers (enormous seq numbers): the command fails with bad-answer, nothing is kept, the next config set works', async (t) => {
  const w = await hostileWorld({ initial: null });
  try {
    const hana = await ownerWithDevice(t, w, 'hana', ['--keep-master-key']);
    await claim(t, w, hana);
    const seq1 = await honestSetApplies(t, w, hana, 21);

    // A: the personal profile's seq raised to 2^53-1 (its signature no longer verifies)
    let before = profileBytes(hana);
    const a = forgeOnce(w.proxy, 'huge-personal-seq', 'GET', PATHS.account, {
      response: (res) => {
        const b = bodyOf(res);
        return jsonResponse(200, { ...b, personal: withSeq(b.personal, HUGE) });
      },
    });
    const ra = await mesh(hana, ['config', 'set', 'thermostat', 'setpoint=5', '--wait', '0', '--json']);
    t.true(a.done(), 'the proxy forged the answer');
    assertBadAnswer(t, ra, /personal profile/);
    t.is(ra.json.error.detail.cause, 'bad-signature');
    t.is(profileBytes(hana), before, 'profile.json is exactly as before');
    const seq2 = await honestSetApplies(t, w, hana, 22);
    t.is(seq2, seq1 + 1);

    // B: the configuration re-signed, at 2^53-1, by a key this owner never listed
    before = profileBytes(hana);
    const stranger: AdminKeys = { name: 'stranger', sign: c.ed25519KeyPair(), enc: c.x25519KeyPair() };
    const st = JSON.parse(before) as { account: string; master: string; devices: { id: string; enc: string }[] };
    const target = st.devices.map((d) => ({ id: d.id, enc: fromB64u(d.enc, 'enc', 32) }));
    const forged = createApplicationProfile(stranger, { master: st.master, app: 'thermostat', seq: HUGE, config: { setpoint: 5 }, devices: target });
    const b = forgeOnce(w.proxy, 'huge-app-seq', 'GET', PATHS.account, {
      response: (res) => {
        const body = bodyOf(res);
        return jsonResponse(200, { ...body, applications: { ...body.applications, thermostat: forged } });
      },
    });
    const rb = await mesh(hana, ['device', 'list', '--json']);
    t.true(b.done());
    assertBadAnswer(t, rb, /thermostat configuration/);
    t.is(rb.json.error.detail.cause, 'unknown-signer');
    t.is(profileBytes(hana), before);
    const seq3 = await honestSetApplies(t, w, hana, 23);
    t.is(seq3, seq2 + 1);

    // C: signed by a key the owner's master profile lists as revoked. Its number counts (the
    // portal and devices refuse anything not newer) up to a bound, in memory only; beyond it, or
    // from a key never listed, it is a forgery.
    const mk = masterKeysFromSeed(fromB64u((JSON.parse(fs.readFileSync(path.join(hana, 'master-seed.json'), 'utf8')) as { seed: string }).seed, 'seed', 32));
    const gone: AdminKeys = { name: 'old phone', sign: c.ed25519KeyPair(), enc: c.x25519KeyPair() };
    const asMaster = new PortalClient({ url: w.portal.http, identity: { subject: st.account, key: mk.sign } });
    try {
      const cur = parseMasterPayload(payloadBytes((await asMaster.account()).master));
      await asMaster.publish(createMasterProfile(mk, cur.admins, { seq: cur.seq + 1, revoked: [...cur.revoked, signKeyId(gone.sign.publicKey)] }));
    } finally {
      asMaster.close();
    }
    const byRevoked = (seq: number): SignedEnvelope => createApplicationProfile(gone, { master: st.master, app: 'thermostat', seq, config: { setpoint: 5 }, devices: target });
    forgeOnce(w.proxy, 'revoked-far-ahead', 'GET', PATHS.account, {
      response: (res) => {
        const body = bodyOf(res);
        return jsonResponse(200, { ...body, applications: { ...body.applications, thermostat: byRevoked(seq3 + 5000) } });
      },
    });
    before = profileBytes(hana);
    const rc = await mesh(hana, ['config', 'set', 'thermostat', 'setpoint=5', '--wait', '0', '--json']);
    assertBadAnswer(t, rc, /thermostat configuration/);
    t.is(rc.json.error.detail.cause, 'revoked-key');
    t.is(profileBytes(hana), before);
    forgeOnce(w.proxy, 'revoked-just-ahead', 'GET', PATHS.account, {
      response: (res) => {
        const body = bodyOf(res);
        return jsonResponse(200, { ...body, applications: { ...body.applications, thermostat: byRevoked(seq3 + 2) } });
      },
    });
    const seq4 = await honestSetApplies(t, w, hana, 24);
    t.is(seq4, seq3 + 3, 'numbered above the version signed by the revoked key, its content not used');
    t.is((JSON.parse(profileBytes(hana)) as { apps: { thermostat: { seq: number; doc: { setpoint: number } } } }).apps.thermostat.doc.setpoint, 24);
    const seq5 = await honestSetApplies(t, w, hana, 25);
    t.is(seq5, seq4 + 1, 'nothing of the forged number was kept');
  } finally {
    await w.close();
  }
});

test.serial('forged Publish and Claim answers (enormous leaf index, an "accepted" never logged): bad-answer, nothing kept, the next command works', async (t) => {
  const w = await hostileWorld({ initial: null });
  try {
    const ines = await ownerWithDevice(t, w, 'ines');

    // a Claim receipt that does not prove anything: the device is not recorded; the retry claims it
    let before = profileBytes(ines);
    forgeOnce(w.proxy, 'claim-receipt', 'POST', PATHS.claim, { response: (res) => jsonResponse(200, { ...bodyOf(res), index: HUGE }) });
    const rc = await mesh(ines, ['device', 'claim', w.identity.labelUri, '--name', 'hall', '--wait-ms', '0', '--json']);
    assertBadAnswer(t, rc, /receipt for this claim/);
    t.is(rc.json.error.detail.cause, 'bad-proof');
    t.is(profileBytes(ines), before, 'the device was not recorded on an unproven claim');
    await claim(t, w, ines);
    const seq1 = await honestSetApplies(t, w, ines, 21);

    // a Publish receipt with an enormous leaf index
    before = profileBytes(ines);
    let lastReceipt: unknown;
    const watch = w.proxy.use({ name: 'watch', response: (req, res) => {
      if (req.path === PATHS.publish && res.status === 200) lastReceipt = bodyOf(res);
      return undefined;
    } });
    const p = forgeOnce(w.proxy, 'huge-index', 'POST', PATHS.publish, { response: (res) => jsonResponse(200, { ...bodyOf(res), index: HUGE }) });
    const rp = await mesh(ines, ['config', 'set', 'thermostat', 'setpoint=22', '--wait', '0', '--json']);
    t.true(p.done());
    assertBadAnswer(t, rp, /receipt for this application/);
    t.is(profileBytes(ines), before, 'neither the seq nor the receipt was kept');
    // the publication did reach the portal: the next command reads it back (verified) and goes on from it
    const seq3 = await honestSetApplies(t, w, ines, 23);
    t.is(seq3, seq1 + 2);

    // "accepted" for a publication the portal never received: the last real receipt, replayed
    t.truthy(lastReceipt);
    before = profileBytes(ines);
    const replay = lastReceipt;
    const q = forgeOnce(w.proxy, 'fake-accepted', 'POST', PATHS.publish, { instead: () => jsonResponse(200, replay) });
    const rq = await mesh(ines, ['config', 'set', 'thermostat', 'setpoint=5', '--wait', '0', '--json']);
    t.true(q.done());
    assertBadAnswer(t, rq, /receipt for this application/);
    t.is(rq.json.error.detail.cause, 'bad-proof');
    t.is(profileBytes(ines), before, 'the CLI did not believe itself ahead of the portal');
    watch();
    const seq4 = await honestSetApplies(t, w, ines, 24);
    t.is(seq4, seq3 + 1, 'the number the portal never received is used now');

    // and the log check is not poisoned by anything the forgeries said
    const lv = await mesh(ines, ['log', 'verify', '--json']);
    t.is(lv.code, 0, lv.stdout + lv.stderr);
    t.true(lv.json.ok);
    t.is(lv.json.receipts.droppedUnproven, 0);
  } finally {
    await w.close();
  }
});

/**
 * Administration devices (mesh admin add / join and the owner app's "link"): on an existing one,
 * a one-time PIN, the wait for the join request that carries it, and a new master profile listing
 * the new device (the configurations re-sent so it can read them); on the new one, the join
 * request and the account read back once it is listed. A browser and a computer running the CLI
 * link each other this way, in either direction.
 *
 * Changing the master profile needs the master key: kept, or rebuilt from the recovery shares,
 * and always checked against the account's master UDF.
 */
import * as c from '../mesh/crypto.js';
import { b64u, concat, fromB64u } from '../mesh/bytes.js';
import { MeshError, isMeshError } from '../mesh/errors.js';
import { payloadBytes } from '../mesh/envelope.js';
import { signKeyId, type MasterKeys } from '../mesh/keys.js';
import { createJoin, parseJoin, verifyJoinPin, type JoinPayload } from '../mesh/messages.js';
import { createMasterProfile, parseMasterPayload, verifyMasterProfile, witnessesOf, type AdminEntry, type AdminKeys, type MasterProfile } from '../mesh/profiles.js';
import { present, udfMatches } from '../mesh/udf.js';
import { PortalClient } from './portal-client.js';
import { restoreFromAccount, type Restored } from './owner-restore.js';
import { restoreSchemas } from './owner-schemas.js';
import { reencryptRollout } from './owner-rollout.js';
import { currentMaster, hello, keepReceipt, materializeTargets, pollUntil, proveReceipt, publishApp, save, type Ctx } from './owner.js';
import { newState, nowIso, type ConfigDoc, type DeviceRecord, type State } from './owner-state.js';

/** A one-time PIN: 80 random bits shown as a key-type UDF (the portal sees the join MAC; the PIN must resist offline guessing). */
export function newPin(): string {
  return present(concat(Uint8Array.of(0x20), c.randomBytes(10)));
}

/** The command to type on the new administration device. */
export function joinCommand(state: State, pin: string, name: string): string {
  return `mesh admin join --portal ${state.portal} --account ${state.account} --pin ${pin} --name ${/^[A-Za-z0-9._-]+$/.test(name) ? name : `'${name.replace(/'/g, `'\\''`)}'`} --master ${state.master}`;
}

export async function publishMaster(ctx: Ctx, env: ReturnType<typeof createMasterProfile>): Promise<MasterProfile> {
  const m = verifyMasterProfile(env, ctx.state.master);
  const receipt = await proveReceipt(ctx, 'master', env, await ctx.client.publish(env));
  ctx.state.masterEnvelope = env;
  keepReceipt(ctx.state, receipt);
  save(ctx);
  return m;
}

/** Wait up to `waitMs` for a join request carrying `pin` (others are noted and ignored). */
export async function waitForJoin(ctx: Ctx, pin: string, waitMs: number): Promise<JoinPayload | undefined> {
  const { state } = ctx;
  const seen = new Set<string>();
  return pollUntil(waitMs, 1000, async () => {
    const acct = await ctx.client.account();
    for (const j of acct.joins) {
      let p: JoinPayload;
      try {
        p = parseJoin(j);
      } catch {
        continue;
      }
      if (p.account !== state.account) continue;
      try {
        verifyJoinPin(p, pin);
        return p;
      } catch {
        if (!seen.has(p.nonce)) {
          seen.add(p.nonce);
          if (Date.now() - Date.parse(p.created) < waitMs + 60_000) ctx.note(`note: ignored a join request from "${p.name}" (${signKeyId(fromB64u(p.sign, 'sign', 32))}) that does not carry this PIN\n`);
        }
      }
    }
    return undefined;
  });
}

/** List the administration device that sent `found` as `name` in a new master profile (signed with `mk`). */
export async function listAdmin(ctx: Ctx, mk: MasterKeys, name: string, found: JoinPayload): Promise<{ key: string; masterSeq: number; reencrypted: string[] }> {
  const { state } = ctx;
  const key = signKeyId(fromB64u(found.sign, 'sign', 32));
  const cur = currentMaster(state);
  if (cur.payload.admins.some((a) => a.sign === found.sign)) throw new MeshError('conflict', `the key ${key} is already an administration device of ${state.account}`);
  if (cur.payload.revoked.includes(key)) throw new MeshError('revoked-key', `the key ${key} was revoked before; the new device must make new keys (run mesh admin join in an empty --home)`);
  if (found.name !== name) ctx.note(`note: the new device calls itself "${found.name}"; it is listed as "${name}"\n`);
  const entry: AdminEntry = { name, sign: found.sign, enc: found.enc, added: nowIso() };
  // Re-encrypt the configurations so the new administration device can read them too,
  // before it sees itself listed (it reads them back right after).
  const reencrypted: string[] = [];
  const extraReaders = [fromB64u(found.enc, 'enc', 32)];
  for (const [app, r] of Object.entries(state.apps)) {
    if (r.removed === true) continue;
    // each device's own document, to the devices that have it (they may differ: config set --device)
    const t = materializeTargets(r, state.devices);
    const groups = new Map<string, { doc: ConfigDoc; devices: DeviceRecord[] }>();
    for (const d of state.devices) {
      const x = t[d.id];
      if (x === undefined || x.doc === null) continue;
      const k = JSON.stringify(x.doc);
      const g = groups.get(k) ?? { doc: x.doc, devices: [] };
      g.devices.push(d);
      groups.set(k, g);
    }
    if (groups.size === 0 && r.doc === null) continue;
    if (groups.size === 0 && r.doc !== null) groups.set('', { doc: r.doc, devices: [] });
    for (const g of groups.values()) {
      await publishApp(ctx, app, g.doc, { targets: g.devices, extraReaders, ...(r.doc !== null ? { base: r.doc } : {}) });
      save(ctx);
    }
    reencrypted.push(app);
  }
  if (await reencryptRollout(ctx, extraReaders)) reencrypted.push('your rollout record');
  const next = createMasterProfile(mk, [...cur.payload.admins, entry], { seq: cur.payload.seq + 1, revoked: cur.payload.revoked, ...witnessesOf(cur.payload) });
  const m = await publishMaster(ctx, next);
  return { key, masterSeq: m.payload.seq, reencrypted };
}

/**
 * On the new administration device: send the join request for `account` with `pin`, and wait up
 * to `waitMs` until an existing one lists this device's keys; then read the account back.
 */
export async function joinAccount(o: { portalUrl: string; account: string; pin: string; admin: AdminKeys; name: string; expectMaster?: string; waitMs: number; note: (line: string) => void }): Promise<{ state: State; masterId: string; restored: Restored; key: string }> {
  const { portalUrl, account, pin, admin, name, expectMaster, waitMs } = o;
  const key = signKeyId(admin.sign.publicKey);
  const anon = new PortalClient({ url: portalUrl });
  const client = new PortalClient({ url: portalUrl, identity: { subject: account, key: admin.sign } });
  try {
    const { portal } = await hello(anon);
    const domain = account.slice(account.indexOf('@') + 1);
    if (domain !== portal.name) o.note(`note: the portal calls itself ${portal.name}, and the account is at ${domain}\n`);
    await anon.join(createJoin(admin, account, pin));
    o.note(`join request sent for ${account}; this computer's key is ${key}\nwaiting for the existing administration device to accept it...\n`);

    let last: unknown;
    const acct = await pollUntil(waitMs, 1000, async () => {
      try {
        return await client.account();
      } catch (e) {
        last = e;
        return undefined;
      }
    });
    if (acct === undefined) {
      throw new MeshError('timeout', `not accepted within ${Math.round(waitMs / 1000)} s${isMeshError(last) && !['unauthorized', 'forbidden', 'unknown-signer', 'not-found'].includes(last.code) ? ` (last answer: ${last.message})` : ''}. Check the PIN, keep mesh admin add running on the other device, and run this again (the same keys are reused)`);
    }
    const claimedMaster = parseMasterPayload(payloadBytes(acct.master));
    const masterId = signKeyId(fromB64u(claimedMaster.sign, 'sign', 32));
    if (expectMaster !== undefined && !udfMatches(expectMaster, masterId, 20)) {
      throw new MeshError('wrong-master', `the portal's ${account} belongs to master ${masterId}, not the ${expectMaster} you were shown: do not use this portal`);
    }
    const master = verifyMasterProfile(acct.master, masterId);
    if (!master.payload.admins.some((a) => a.sign === b64u(admin.sign.publicKey))) {
      throw new MeshError('unknown-signer', `the portal let this computer in, but ${account}'s master profile does not list its key ${key}; try mesh admin add again`);
    }
    const restored = restoreFromAccount(acct, master, [admin.enc], (s) => o.note(s));
    const devices = await restoreSchemas(client, restored.devices, restored.schemas, (s) => o.note(s));
    const state = newState({ portalUrl, portal, account, master: masterId, masterEnvelope: master.envelope, admin: name, personalSeq: restored.personalSeq, apps: restored.apps, devices });
    return { state, masterId, restored, key };
  } finally {
    anon.close();
    client.close();
  }
}

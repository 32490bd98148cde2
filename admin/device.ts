/**
 * mesh device claim / list / remove.
 */
import { MeshError, isMeshError } from '../mesh/errors.js';
import { deriveClaimSecrets, openClaimBlob, parseClaimLabel, shortFingerprint } from '../mesh/claim.js';
import { deriveInviteSecrets, describeGrant, isInvitation, parseInvitation, parseInviteBlob, type Grant } from '../mesh/invite.js';
import { createClaim, createRemove, type StatusError } from '../mesh/messages.js';
import { verifyDeviceProfile, verifyEndorsement, type Endorsement } from '../mesh/profiles.js';
import { normalizeUdf, udfMatches } from '../mesh/udf.js';
import { declaredSchemas, validate, type Schema } from '../mesh/schema.js';
import { checkLabel, intOpt, strOpt, withOwner, type Command, type Ctx } from './command.js';
import { deviceStatuses, keepReceipt, ownerEntry, pollUntil, proveReceipt, publishApp, publishPersonal, save, sync } from '../client/owner.js';
import { EXIT_HELP, WAIT_HELP, WAIT_OPTIONS, errorsFor, exitFor, outcomeJson, outcomeLine, waitForDevices, waitMsOpt, type Outcome } from './wait.js';
import { docFor, nowIso, type DeviceRecord, type Endorsed } from '../client/owner-state.js';

const SKEW_MS = 5000;

export { errorsFor };

function ago(iso: string, now = Date.now()): string {
  const s = Math.round((now - Date.parse(iso)) / 1000);
  if (s < 0) return 'in the future (check the clocks)';
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

function fmtMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${ms / 1000} s`;
}

// ---------------------------------------------------------------- claim

export const deviceClaimCommand: Command = {
  name: 'device claim',
  summary: 'claim a device from its label (QR code or printed code and fingerprint), or accept an invitation',
  help: `usage: mesh device claim LABEL|INVITATION [--name NAME] [--trust-manufacturer KEYUDF] [--wait S]

LABEL is what the device's label shows: the URI in its QR code
(https://portal/claim#code=CODE&fp=FP&m=MAKER; the older mcu://maker@portal/CODE?fp=FP too),
or the code and the fingerprint typed by hand ("CODE FINGERPRINT"). A label claims a device
only while it has no owner, or while someone holding it has opened its claim window.

INVITATION is what an owner gave you with mesh device invite
(https://PORTAL/invite#code=...&fp=...): it works once, before it expires, as a co-owner or
as a guest who may set only what the invitation allows.

The device's record is fetched from the portal and opened with the code; its fingerprint
must match the label (otherwise the portal handed you another device and nothing is done).
The manufacturer's endorsement is shown when there is one. Then the claim is sent, the device
is added to your personal profile, your current configurations are sent to it, and the
command waits for the device to confirm.

  --name NAME                 what to call the device (default: its model and fingerprint)
  --trust-manufacturer KEYUDF the manufacturer key you expect (warns when the endorsement is by another key)
  --wait S                    how long to wait for the device to confirm, in seconds (default 15; 0 = don't wait)
  --wait-ms N                 the same in milliseconds
  --json                      print the result as JSON`,
  options: { name: { type: 'string' }, 'trust-manufacturer': { type: 'string' }, ...WAIT_OPTIONS },
  async run(v, pos, env) {
    if (pos.length === 0) throw new MeshError('usage', 'give the label (the https://.../claim#... URI of its QR code, or "CODE FINGERPRINT") or the invitation (https://.../invite#...)');
    const text = pos.join(' ');
    const invitation = isInvitation(text) ? parseInvitation(text) : undefined;
    const label = invitation ?? parseClaimLabel(text);
    const waitMs = waitMsOpt(v);
    const trust = strOpt(v, 'trust-manufacturer');
    if (trust !== undefined) normalizeUdf(trust);
    const wantName = strOpt(v, 'name');
    if (wantName !== undefined) checkLabel(wantName, 'the device name');

    await withOwner(env, async (ctx) => {
      const { state, io } = ctx;
      if (label.portal !== '') {
        const host = new URL(state.portal).host;
        if (label.portal !== host && label.portal !== state.portalName) io.progress(`note: the label names the portal ${label.portal}; your profile is at ${state.portal}\n`);
      }
      await sync(ctx);
      save(ctx);
      const secrets = invitation !== undefined ? deriveInviteSecrets(invitation.secret) : deriveClaimSecrets(label.secret);

      let blob: unknown;
      try {
        blob = openClaimBlob(secrets, (await ctx.client.claimLookup(secrets.claimId)).blob);
      } catch (e) {
        if (isMeshError(e, 'not-found')) {
          if (invitation !== undefined) throw new MeshError('not-found', 'the portal holds no such invitation: check that you copied all of it, or ask the owner for a new one');
          throw new MeshError('not-found', 'no device is waiting under this code at the portal: check the code on the label, and that the device is switched on and online (it registers when it first reaches the portal)');
        }
        if (isMeshError(e, 'decrypt-failed')) {
          throw new MeshError('decrypt-failed', "the code does not open the device's record: the code is wrong (a mistyped character?) or the portal returned something else. Check the code on the label and try again");
        }
        throw e;
      }
      if (typeof blob !== 'object' || blob === null || Array.isArray(blob) || !('profile' in blob)) {
        throw new MeshError('malformed', "the device's record does not hold a device profile");
      }
      const terms = invitation !== undefined ? parseInviteBlob(blob) : undefined;
      const bundle = blob as { profile: unknown; endorsement?: unknown; epoch?: unknown; schemas?: unknown };
      const epoch = terms?.epoch ?? (typeof bundle.epoch === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(bundle.epoch) ? bundle.epoch : undefined);
      if (terms !== undefined) {
        io.progress(`invitation from ${terms.by}: ${terms.role === 'guest' ? `as a guest, allowed ${describeGrant(terms.grant ?? { scope: [] })}` : 'as a co-owner'}; open until ${terms.expires}\n`);
      }
      const device = verifyDeviceProfile(bundle.profile);
      if (!udfMatches(label.fingerprint, device.id)) {
        throw new MeshError('fingerprint-mismatch', `the device the portal returned (${shortFingerprint(device.id)}) is not the one on the label (${label.fingerprint}): someone substituted another device. Nothing was claimed. Check the fingerprint on the label; if it is right, do not use this portal`, {
          label: label.fingerprint,
          device: device.id,
        });
      }
      const existing = state.devices.find((d) => d.id === device.id);
      if (existing !== undefined) {
        // claimed again after the device forgot its owners (a factory reset, or removed on the device): allowed
        const view = (await deviceStatuses(ctx)).get(device.id);
        if (view?.status === null || view?.status === undefined || ownerEntry(view.status, state.master) !== undefined) {
          throw new MeshError('conflict', `this device is already yours, as "${existing.name}"`);
        }
        io.progress(`${existing.name} no longer lists you as an owner (reset, or removed on the device): claiming it again\n`);
      }

      let endorsedBy: Endorsed | null = null;
      let endorsement: Endorsement | null = null;
      if (bundle.endorsement !== undefined && bundle.endorsement !== null) {
        endorsement = verifyEndorsement(bundle.endorsement, device.id);
        const trusted = trust !== undefined && udfMatches(trust, endorsement.manufacturerKeyId, 20);
        endorsedBy = { manufacturer: endorsement.payload.manufacturer, key: endorsement.manufacturerKeyId, trusted };
        io.progress(`endorsed by ${endorsement.payload.manufacturer} (${endorsement.manufacturerKeyId}), model ${endorsement.payload.model}, serial ${endorsement.payload.serial}\n`);
        if (endorsement.payload.model !== device.payload.model) io.progress(`warning: the endorsement is for model ${endorsement.payload.model}, but the device says it is a ${device.payload.model}\n`);
        if (trust !== undefined && !trusted) io.progress(`warning: this endorsement is NOT by the manufacturer key you trust (${trust}); it may not be a genuine device\n`);
      } else if (terms !== undefined) {
        io.progress(`the device's manufacturer endorsement is not in the invitation: ${terms.by} vouches for it\n`);
      } else {
        io.progress(`warning: this device is not endorsed by any manufacturer: nothing shows it is genuine${trust !== undefined ? ` (you expected ${trust})` : ''}\n`);
      }

      // what the device runs: the applications its signed profile declares, with the schemas that match their fingerprints
      let schemas: Record<string, Schema> | undefined;
      if (device.payload.apps !== undefined) {
        const got = declaredSchemas(device.payload.apps, terms?.schemas ?? bundle.schemas);
        schemas = got.schemas;
        for (const p of got.problems) io.progress(`warning: ${p}; values for it cannot be checked before they are published\n`);
        io.progress(device.payload.apps.length === 0 ? 'the device declares no applications: it accepts no settings\n' : `the device runs ${device.payload.apps.map((a) => a.name).join(', ')}\n`);
      } else {
        io.progress("note: the device's profile does not declare its applications (an older device): settings for it cannot be checked before they are published\n");
      }

      const fp = shortFingerprint(device.id);
      const name = existing?.name ?? wantName ?? `${device.payload.model}-${(fp.split('-')[1] ?? fp).toLowerCase()}`;
      checkLabel(name, 'the device name');
      if (existing === undefined && state.devices.some((d) => d.name === name)) throw new MeshError('conflict', `you already have a device called "${name}": choose another with --name`);

      const claim = createClaim(ctx.admin.sign, secrets, { device: device.id, master: state.master, account: state.account, ...(epoch !== undefined ? { epoch } : {}), ...(terms !== undefined ? { invite: terms.invite } : {}) });
      const claimedAt = nowIso();
      const receipt = await proveReceipt(ctx, 'claim', claim, await ctx.client.claim(secrets.claimId, claim));
      keepReceipt(state, receipt);
      const guest = terms?.role === 'guest';
      const rec: DeviceRecord = { id: device.id, name, model: device.payload.model, enc: device.payload.enc, fingerprint: fp, claimedAt, endorsedBy, ...(guest ? { guest: true } : {}), ...(schemas !== undefined ? { schemas } : {}) };
      state.devices = [...state.devices.filter((d) => d.id !== device.id), rec];
      save(ctx);
      const personalSeq = await publishPersonal(ctx);
      save(ctx);
      const sent: { app: string; seq: number }[] = [];
      // a guest's device gets only what the guest sets from now on, never the guest's other settings
      for (const [app, r] of guest ? [] : Object.entries(state.apps)) {
        if (r.removed === true) continue;
        if (r.doc === null) {
          io.progress(`note: this computer cannot read the current ${app} configuration, so it was not sent to ${name}; send it with mesh config apply ${app} FILE\n`);
          continue;
        }
        // what you set for all your devices (not what you set for one with --device), where the device runs it and accepts it
        if (rec.schemas !== undefined && !Object.hasOwn(rec.schemas, app)) continue;
        if (r.targets !== undefined && Object.keys(r.doc).length === 0) continue;
        const problems = rec.schemas?.[app] !== undefined ? validate(rec.schemas[app], r.doc) : [];
        if (problems.length > 0) {
          io.progress(`note: your ${app} configuration was not sent to ${name}, which would refuse it (${problems.join('; ')}); set its values with mesh config set ${app} KEY=VALUE --device ${name}\n`);
          continue;
        }
        const p = await publishApp(ctx, app, r.doc, { targets: [rec], base: r.doc });
        save(ctx);
        sent.push({ app, seq: p.seq });
      }

      io.progress(`claimed ${name} (${fp}); waiting for it to confirm...\n`);
      const outcome = waitMs === 0 ? undefined : await pollUntil(waitMs, 500, async () => {
        const view = (await deviceStatuses(ctx)).get(device.id);
        if (view === undefined || view.status === null) return undefined;
        if (ownerEntry(view.status, state.master) !== undefined) return { accepted: true as const };
        // a refusal of this claim: recorded since we sent it, or by a device whose clock was never set (it says 1970)
        const err = errorsFor(view.status, state.master).find((e) => e.master === state.master && (Date.parse(e.at) >= Date.parse(claimedAt) - SKEW_MS || e.at < '2026-01-01'));
        return err === undefined ? undefined : { accepted: false as const, error: err };
      });

      const head = [
        `Claimed ${name}: ${device.payload.model}, fingerprint ${fp}`,
        endorsedBy !== null ? `  endorsed by ${endorsedBy.manufacturer} (${endorsedBy.key})${endorsedBy.trusted ? ', the manufacturer key you trust' : ''}` : '  not endorsed by a manufacturer',
        `  added to your personal profile (#${personalSeq})`,
        schemas === undefined ? '  runs: not declared by the device (an older profile)' : `  runs: ${Object.keys(schemas).length > 0 ? Object.keys(schemas).sort().join(', ') : 'no application'}`,
        ...sent.map((s) => `  sent your ${s.app} configuration (#${s.seq})`),
      ];
      let verdict: string;
      if (waitMs === 0) verdict = '  not waiting for the device; check later with mesh device list';
      else if (outcome === undefined) verdict = `  the device has not confirmed yet (waited ${fmtMs(waitMs)}); it will pick the claim up when it next reaches the portal. Check with mesh device list`;
      else if (outcome.accepted) verdict = '  the device accepted: it now lists you as an owner';
      else verdict = `  the device REFUSED the claim: [${outcome.error.code}] ${outcome.error.message}`;
      io.out([...head, verdict].join('\n'), {
        device: { id: device.id, name, fingerprint: fp, model: device.payload.model },
        apps: schemas === undefined ? null : Object.keys(schemas).sort(),
        endorsedBy,
        personalSeq,
        sent,
        accepted: outcome === undefined ? null : outcome.accepted,
        ...(outcome !== undefined && !outcome.accepted ? { error: outcome.error } : {}),
      });
      if (outcome !== undefined && !outcome.accepted) process.exitCode = 1;
    });
  },
};

// ---------------------------------------------------------------- list

export interface DeviceReport {
  readonly id: string;
  readonly name: string;
  readonly fingerprint: string;
  readonly model: string;
  readonly state: 'ok' | 'no-status' | 'unverified' | 'not-at-portal';
  readonly owner: boolean;
  readonly lastContact: string | null;
  /** the device's clock is not set (it says before 2026: a board without a real-time clock); staleness is then judged by when the portal received its status */
  readonly clockUnset: boolean;
  readonly stale: boolean;
  /**
   * per application: what the device applied for this owner and what the owner published.
   * `lagging`: the device has been in contact since the latest was published, longer ago than
   * the allowed age, and has neither applied nor refused it: the portal may be withholding it.
   * `unpublished`: the device applied a sequence this owner never published: someone else holds
   * one of this owner's administration keys.
   */
  readonly apps: { app: string; seq: number | null; appliedAt: string | null; published: number; upToDate: boolean; lagging: boolean; unpublished: boolean }[];
  readonly lastError: StatusError | null;
  readonly problem: string | null;
  readonly treeHead: { size: number; root: string } | null;
  /** everyone the device lists as an owner or guest; `new`: not shown to this owner before */
  readonly owners: { account: string; master: string; role: 'owner' | 'guest'; since: string | null; invitedBy: string | null; grant: string | null; you: boolean; new: boolean }[];
  readonly epoch: string | null;
  /** the effective values that are not what this owner last set (from the owners' private part of the report) */
  readonly differs: { app: string; key: string; value: unknown; owner: string }[];
}

export async function deviceReports(ctx: Ctx, maxStaleMs: number): Promise<DeviceReport[]> {
  const { state } = ctx;
  const views = await deviceStatuses(ctx);
  const now = Date.now();
  return state.devices.map((d): DeviceReport => {
    const view = views.get(d.id);
    const st = view?.status ?? null;
    const mine = ownerEntry(st, state.master);
    const errs = errorsFor(st, state.master).sort((x, y) => Date.parse(x.at) - Date.parse(y.at));
    const lastContact = st?.lastContact ?? null;
    // a board without a real-time clock says 1970: its own times tell nothing of age, the portal's receipt does
    const clockUnset = lastContact !== null && lastContact < '2026-01-01';
    const seen = clockUnset ? (view?.received ?? null) : lastContact;
    // per application, against what was published to THIS device (config set --device publishes to some only)
    const apps = Object.entries(state.apps).flatMap(([app, r]) => {
      const a = mine?.apps.find((x) => x.app === app);
      const t = docFor(r, d.id);
      if (r.removed === true || (t === undefined && a === undefined)) return [];
      const published = t?.seq ?? 0;
      const applied = a?.seq ?? 0;
      const refused = errs.some((e) => e.app === app && e.seq === published);
      const publishedMs = Date.parse(t?.publishedAt ?? r.publishedAt);
      const lagging =
        applied < published && !refused && now - publishedMs > maxStaleMs && seen !== null && Date.parse(seen) > publishedMs;
      return [{ app, seq: a?.seq ?? null, appliedAt: a?.appliedAt ?? null, published, upToDate: applied === published, lagging, unpublished: applied > published }];
    });
    for (const a of mine?.apps ?? []) {
      const removed = state.apps[a.app]?.removed === true && a.seq <= (state.apps[a.app]?.seq ?? 0);
      if (!removed && !apps.some((x) => x.app === a.app)) apps.push({ app: a.app, seq: a.seq, appliedAt: a.appliedAt, published: 0, upToDate: false, lagging: false, unpublished: a.seq > 0 });
    }
    return {
      id: d.id,
      name: d.name,
      fingerprint: d.fingerprint,
      model: d.model,
      state: view === undefined ? 'not-at-portal' : view.problem !== null ? 'unverified' : st === null ? 'no-status' : 'ok',
      owner: mine !== undefined,
      lastContact,
      clockUnset,
      stale: seen === null || now - Date.parse(seen) > maxStaleMs,
      apps,
      lastError: errs[errs.length - 1] ?? null,
      problem: view?.problem ?? null,
      treeHead: st?.treeHead ?? null,
      owners: (st?.owners ?? []).map((o) => ({
        account: o.account,
        master: o.master,
        role: o.role ?? 'owner',
        since: o.since ?? null,
        invitedBy: o.invitedBy ?? null,
        grant: o.grant ?? grantText(view?.private?.grants[o.master]),
        you: o.master === state.master,
        new: o.master !== state.master && !(d.seenOwners ?? []).includes(o.master),
      })),
      epoch: st?.epoch ?? null,
      differs: Object.entries(view?.private?.effective ?? {}).flatMap(([app, keys]) => {
        const mine = state.apps[app]?.doc ?? null;
        if (mine === null) return [];
        return Object.entries(keys)
          .filter(([k, e]) => e.master !== state.master && JSON.stringify(mine[k]) !== JSON.stringify(e.value))
          .map(([k, e]) => ({ app, key: k, value: e.value, owner: e.owner }));
      }),
    };
  });
}

function grantText(g: Grant | undefined): string | null {
  return g === undefined ? null : describeGrant(g);
}

/** Remember who each device listed, so the next look marks only newcomers. */
export function markOwnersSeen(ctx: Ctx, reports: readonly DeviceReport[]): void {
  ctx.state.devices = ctx.state.devices.map((d) => {
    const r = reports.find((x) => x.id === d.id);
    if (r === undefined || r.state !== 'ok') return d;
    return { ...d, seenOwners: r.owners.map((o) => o.master) };
  });
}

export const deviceListCommand: Command = {
  name: 'device list',
  summary: "list your devices with what each has applied, from their own signed reports",
  help: `usage: mesh device list [--max-stale-ms N] [--json]

For each of your devices: its name, fingerprint and model, and from its latest signed
status report (checked with the device's own key): its owners and guests (who invited
whom, and since when; one you have not been shown before is marked NEW), per application
the configuration number it applied for you and when, when it last heard from the portal,
and its last error. A device not heard from for longer than --max-stale-ms (default 24 h) is marked
STALE: it keeps running on what it has, but that may be out of date. (A device whose
clock is not set, a board without a real-time clock, is judged by when the portal
received its report.)

  --max-stale-ms N   how old "last contact" may be before a device is marked stale (default 86400000)
  --json             print the list as JSON`,
  options: { 'max-stale-ms': { type: 'string' } },
  async run(v, pos, env) {
    if (pos.length > 0) throw new MeshError('usage', `unexpected argument "${pos[0] as string}"`);
    const maxStaleMs = intOpt(v, 'max-stale-ms', 86_400_000, 0, Number.MAX_SAFE_INTEGER);
    await withOwner(env, async (ctx) => {
      await sync(ctx);
      save(ctx);
      const reports = await deviceReports(ctx, maxStaleMs);
      markOwnersSeen(ctx, reports);
      save(ctx);
      const lines: string[] = [];
      if (reports.length === 0) lines.push('no devices yet: claim one with mesh device claim LABEL');
      for (const r of reports) {
        lines.push(`${r.name}   ${r.fingerprint}   ${r.model}${r.stale ? '   STALE' : ''}`);
        if (r.state === 'not-at-portal') lines.push('  the portal knows nothing of this device (has it been reset, or is the portal hiding it?)');
        else if (r.state === 'unverified') lines.push(`  ${r.problem ?? 'its report does not verify'}`);
        else if (r.state === 'no-status') lines.push('  no status report yet: the device has not reported since it registered');
        else {
          lines.push(`  last contact: ${r.lastContact ?? '-'} (${r.clockUnset ? "the device's clock is not set" : r.lastContact !== null ? ago(r.lastContact) : 'never'})${r.stale ? ` -- older than ${fmtMs(maxStaleMs)}: its data may be out of date` : ''}`);
          if (!r.owner) lines.push('  the device does not list you as an owner (yet): the claim has not reached it, or it was refused');
          for (const o of r.owners) {
            const who = `${o.account}${o.you ? ' (you)' : ''}`;
            const how = [o.role === 'guest' ? `guest: ${o.grant ?? 'limited'}` : 'owner', o.invitedBy !== null ? `invited by ${o.invitedBy}` : 'from the label', o.since !== null ? `since ${o.since}` : null].filter((x) => x !== null).join(', ');
            lines.push(`  ${o.new ? 'NEW ' : ''}${who}: ${how}`);
          }
          if (r.differs.length > 0) lines.push(`  differs from yours: ${r.differs.map((x) => `${x.app}.${x.key} = ${JSON.stringify(x.value)} (set by ${x.owner})`).join('; ')}`);
          for (const a of r.apps) {
            if (a.seq === null) lines.push(`  ${a.app}: nothing applied yet (published #${a.published})`);
            else if (a.unpublished) {
              lines.push(`  ${a.app}: applied #${a.seq} at ${a.appliedAt ?? '?'} -- ALARM: you never published #${a.seq} (your latest is #${a.published})`);
              lines.push('    someone holds one of your administration keys: revoke them (mesh admin revoke) and run mesh log verify');
            } else lines.push(`  ${a.app}: applied #${a.seq} at ${a.appliedAt ?? '?'}${a.upToDate ? '' : ` (latest published #${a.published}: not applied yet)`}`);
            if (a.lagging) lines.push(`    LAGGING: #${a.published} was published more than ${fmtMs(maxStaleMs)} ago and the device has been in contact since, without it: the portal may be withholding it`);
          }
          if (r.lastError !== null) lines.push(`  last error: [${r.lastError.code}] ${r.lastError.message} (${r.lastError.at}${r.lastError.app !== undefined ? `, ${r.lastError.app}${r.lastError.seq !== undefined ? ` #${r.lastError.seq}` : ''}` : ''})`);
        }
      }
      env.io.out(lines.join('\n'), { devices: reports });
    });
  },
};

// ---------------------------------------------------------------- remove

export function findDevice(devices: readonly DeviceRecord[], which: string): DeviceRecord {
  const byName = devices.filter((d) => d.name === which);
  if (byName.length === 1) return byName[0] as DeviceRecord;
  let norm: string | undefined;
  try {
    norm = normalizeUdf(which);
  } catch {
    norm = undefined;
  }
  const byFp = norm !== undefined && norm.length >= 4 ? devices.filter((d) => normalizeUdf(d.id).startsWith(norm as string)) : [];
  if (byFp.length === 1) return byFp[0] as DeviceRecord;
  if (byFp.length > 1) throw new MeshError('usage', `"${which}" matches ${byFp.length} devices (${byFp.map((d) => d.name).join(', ')}): give more of the fingerprint, or the name`);
  throw new MeshError('not-found', `you have no device called "${which}"; see mesh device list`);
}

export const deviceRemoveCommand: Command = {
  name: 'device remove',
  summary: 'stop owning a device (other owners keep it)',
  help: `usage: mesh device remove DEVICE [--wait S] [--json]

DEVICE is the device's name or the start of its fingerprint. Sends the device a removal
signed by this computer (it forgets you; other owners are not affected), and drops it from
your personal profile. Configuration you publish afterwards is not encrypted to it. Then
waits for the device's signed status: removed (it no longer lists you), REFUSED with its
reason, or not reached yet (it forgets you when it next reaches the portal).

${WAIT_HELP}
  --json        print the result as JSON

${EXIT_HELP}`,
  options: { ...WAIT_OPTIONS },
  async run(v, pos, env) {
    const waitMs = waitMsOpt(v);
    if (pos.length !== 1) throw new MeshError('usage', 'name one device (its name or the start of its fingerprint)');
    await withOwner(env, async (ctx) => {
      const { state } = ctx;
      await sync(ctx);
      save(ctx);
      const d = findDevice(state.devices, pos[0] as string);
      // bound to the device's current ownership epoch when its status tells it
      const before = (await deviceStatuses(ctx)).get(d.id)?.status ?? null;
      const epoch = before?.epoch;
      // a refusal is one of this owner's errors, about no application, that was not there before (never judged by the device's clock)
      const known = new Set(errorsFor(before, state.master).map((e) => JSON.stringify(e)));
      const env2 = createRemove(ctx.admin.sign, { device: d.id, master: state.master, ...(epoch !== undefined ? { epoch } : {}) });
      const receipt = await proveReceipt(ctx, 'remove', env2, await ctx.client.post(d.id, env2));
      keepReceipt(state, receipt);
      state.devices = state.devices.filter((x) => x.id !== d.id);
      save(ctx);
      const seq = await publishPersonal(ctx);
      save(ctx);
      const [o] = await waitForDevices(
        ctx,
        [
          {
            device: d,
            check: (st, listed) => {
              if (!listed) return { result: 'unlinked' as const };
              if (st === null) return undefined;
              if (ownerEntry(st, state.master) === undefined) return { result: 'applied' as const };
              const err = errorsFor(st, state.master).find((e) => e.app === undefined && e.master === state.master && !known.has(JSON.stringify(e)));
              return err === undefined ? undefined : { result: 'refused' as const, error: err };
            },
          },
        ],
        waitMs,
      );
      const outcome = o as Outcome;
      const lines = [`Removed ${d.name} (${d.fingerprint}): the device has been told to forget you; it is no longer in your personal profile (#${seq}).`];
      if (waitMs > 0) lines.push(outcomeLine(outcome, { applied: 'removed: it no longer lists you as an owner', notReached: 'it forgets you when it next reaches the portal' }));
      const code = exitFor([outcome], waitMs > 0);
      env.io.out(lines.join('\n'), { removed: { id: d.id, name: d.name, fingerprint: d.fingerprint }, personalSeq: seq, results: waitMs > 0 ? [outcomeJson(outcome)] : [], exit: code });
      if (code !== 0) process.exitCode = code;
    });
  },
};

// ---------------------------------------------------------------- rename

export const deviceRenameCommand: Command = {
  name: 'device rename',
  summary: 'give one of your devices another name',
  help: `usage: mesh device rename DEVICE NEW-NAME [--json]

DEVICE is the device's name or the start of its fingerprint. The name is yours (other owners
call it what they like): it is what --device NAME and mesh device list use, and it is kept in
your personal profile.`,
  options: {},
  async run(_v, pos, env) {
    if (pos.length !== 2) throw new MeshError('usage', 'give the device (its name or the start of its fingerprint) and its new name');
    const name = checkLabel(pos[1] as string, 'the device name');
    await withOwner(env, async (ctx) => {
      const { state } = ctx;
      await sync(ctx);
      save(ctx);
      const d = findDevice(state.devices, pos[0] as string);
      if (d.name === name) throw new MeshError('conflict', `${d.name} is already called "${name}"`);
      if (state.devices.some((x) => x.name === name)) throw new MeshError('conflict', `you already have a device called "${name}": choose another name`);
      state.devices = state.devices.map((x) => (x.id === d.id ? { ...x, name } : x));
      save(ctx);
      const seq = await publishPersonal(ctx);
      save(ctx);
      env.io.out(`Renamed ${d.name} (${d.fingerprint}) to ${name} (personal profile #${seq}).`, { device: { id: d.id, fingerprint: d.fingerprint, name, was: d.name }, personalSeq: seq });
    });
  },
};

/**
 * An owner's devices (mesh device claim / list / show / remove and the owner app's screens):
 * claiming one from its label or an invitation, what each device reports (from its own signed
 * status), and removing one.
 */
import { MeshError, isMeshError } from '../mesh/errors.js';
import { deriveClaimSecrets, openClaimBlob, parseClaimLabel, shortFingerprint, type ClaimSecrets } from '../mesh/claim.js';
import { deriveInviteSecrets, describeGrant, isInvitation, parseInvitation, parseInviteBlob, type Grant, type InviteBlob } from '../mesh/invite.js';
import { createClaim, createRemove, type StatusError } from '../mesh/messages.js';
import { verifyDeviceProfile, verifyEndorsement, type DeviceProfile, type Endorsement } from '../mesh/profiles.js';
import { normalizeUdf, udfMatches } from '../mesh/udf.js';
import { declaredSchemas, validate, type Schema } from '../mesh/schema.js';
import { deviceStatuses, keepReceipt, ownerEntry, pollUntil, proveReceipt, publishApp, publishPersonal, save, sync, type Ctx } from './owner.js';
import { checkLabel, docFor, nowIso, type DevicePortal, type DeviceRecord, type Endorsed } from './owner-state.js';
import { isHome, portalUrl, visit } from './owner-intermesh.js';
import { errorsFor, waitForDevices, type Outcome } from './owner-wait.js';

const SKEW_MS = 5000;

// ---------------------------------------------------------------- claim

/** A label or an invitation opened: the device it names, checked against it, before anything is sent. */
export interface ClaimLookup {
  readonly secrets: ClaimSecrets;
  readonly device: DeviceProfile;
  readonly fingerprint: string;
  /** the invitation's terms (absent for a label) */
  readonly terms: InviteBlob | undefined;
  readonly epoch: string | undefined;
  readonly endorsement: Endorsement | null;
  /** the applications the device runs with their schemas; undefined when its profile declares none */
  readonly schemas: Record<string, Schema> | undefined;
  /** already one of this owner's devices (claimed again after it forgot its owners) */
  readonly existing: DeviceRecord | undefined;
  /** the name it gets without one given */
  readonly suggestedName: string;
  /** the device's portal, when an invitation names another than the owner's home (the Intermesh) */
  readonly portal?: DevicePortal;
}

/**
 * Open a label or an invitation (the text of its QR code or link, or "CODE FINGERPRINT"): fetch
 * the device's record from the portal, open it with the code, and check the device is the one on
 * the label (`fingerprint-mismatch` otherwise; nothing is sent).
 */
export async function lookupClaim(ctx: Ctx, text: string, o: { portal?: string } = {}): Promise<ClaimLookup> {
  const { state } = ctx;
  const invitation = isInvitation(text) ? parseInvitation(text) : undefined;
  const label = invitation ?? parseClaimLabel(text);
  // an invitation to a device at another portal is accepted there, as a visitor (client/owner-intermesh.ts)
  const awayUrl = invitation !== undefined && !isHome(ctx, invitation.portal) ? portalUrl(invitation.portal, o.portal) : undefined;
  if (o.portal !== undefined && awayUrl === undefined) throw new MeshError('usage', '--portal is for an invitation to a device at another portal than yours');
  if (label.portal !== '' && awayUrl === undefined && !isHome(ctx, label.portal)) ctx.note(`note: the label names the portal ${label.portal}; your profile is at ${state.portal}\n`);
  await sync(ctx);
  save(ctx);
  const secrets = invitation !== undefined ? deriveInviteSecrets(invitation.secret) : deriveClaimSecrets(label.secret);
  let blob: unknown;
  let portal: DevicePortal | undefined;
  try {
    const found =
      awayUrl === undefined
        ? await ctx.client.claimLookup(secrets.claimId)
        : await visit(ctx, awayUrl, async (client, p) => {
            portal = p;
            return client.claimLookup(secrets.claimId);
          });
    blob = openClaimBlob(secrets, found.blob);
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
    ctx.note(`invitation from ${terms.by}: ${terms.role === 'guest' ? `as a guest, allowed ${describeGrant(terms.grant ?? { scope: [] })}` : 'as a co-owner'}; open until ${terms.expires}\n`);
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
    ctx.note(`${existing.name} no longer lists you as an owner (reset, or removed on the device): claiming it again\n`);
  }

  // what the device runs: the applications its signed profile declares, with the schemas that match their fingerprints
  let schemas: Record<string, Schema> | undefined;
  if (device.payload.apps !== undefined) {
    const got = declaredSchemas(device.payload.apps, terms?.schemas ?? bundle.schemas);
    schemas = got.schemas;
    for (const p of got.problems) ctx.note(`warning: ${p}; values for it cannot be checked before they are published\n`);
    ctx.note(device.payload.apps.length === 0 ? 'the device declares no applications: it accepts no settings\n' : `the device runs ${device.payload.apps.map((a) => a.name).join(', ')}\n`);
  } else {
    ctx.note("note: the device's profile does not declare its applications (an older device): settings for it cannot be checked before they are published\n");
  }

  const fp = shortFingerprint(device.id);
  return {
    secrets,
    device,
    fingerprint: fp,
    terms,
    epoch,
    endorsement: bundle.endorsement !== undefined && bundle.endorsement !== null ? verifyEndorsement(bundle.endorsement, device.id) : null,
    schemas,
    existing,
    suggestedName: existing?.name ?? `${device.payload.model}-${(fp.split('-')[1] ?? fp).toLowerCase()}`,
    ...(portal !== undefined ? { portal } : {}),
  };
}

export interface ClaimResult {
  readonly name: string;
  readonly endorsedBy: Endorsed | null;
  readonly personalSeq: number;
  /** the configurations sent to the device */
  readonly sent: { app: string; seq: number }[];
  /** the device's verdict; undefined when it did not answer within the wait (or nothing was waited for) */
  readonly outcome: { accepted: true } | { accepted: false; error: StatusError } | undefined;
}

/**
 * Claim the device a lookup opened: send the claim, add the device to the personal profile, send it
 * the owner's current configurations (what it runs and accepts), and wait up to `waitMs` for it to
 * list this owner (or refuse).
 */
export async function completeClaim(ctx: Ctx, lookup: ClaimLookup, o: { name?: string; trust?: string; waitMs: number }): Promise<ClaimResult> {
  const { state } = ctx;
  const { device, secrets, terms, epoch, endorsement, schemas, existing, fingerprint: fp } = lookup;
  const trust = o.trust;
  let endorsedBy: Endorsed | null = null;
  if (endorsement !== null) {
    const trusted = trust !== undefined && udfMatches(trust, endorsement.manufacturerKeyId, 20);
    endorsedBy = { manufacturer: endorsement.payload.manufacturer, key: endorsement.manufacturerKeyId, trusted };
    ctx.note(`endorsed by ${endorsement.payload.manufacturer} (${endorsement.manufacturerKeyId}), model ${endorsement.payload.model}, serial ${endorsement.payload.serial}\n`);
    if (endorsement.payload.model !== device.payload.model) ctx.note(`warning: the endorsement is for model ${endorsement.payload.model}, but the device says it is a ${device.payload.model}\n`);
    if (trust !== undefined && !trusted) ctx.note(`warning: this endorsement is NOT by the manufacturer key you trust (${trust}); it may not be a genuine device\n`);
  } else if (terms !== undefined) {
    ctx.note(`the device's manufacturer endorsement is not in the invitation: ${terms.by} vouches for it\n`);
  } else {
    ctx.note(`warning: this device is not endorsed by any manufacturer: nothing shows it is genuine${trust !== undefined ? ` (you expected ${trust})` : ''}\n`);
  }

  const name = existing?.name ?? o.name ?? lookup.suggestedName;
  checkLabel(name, 'the device name');
  if (existing === undefined && state.devices.some((d) => d.name === name)) throw new MeshError('conflict', `you already have a device called "${name}": choose another name`);

  const claim = createClaim(ctx.admin.sign, secrets, { device: device.id, master: state.master, account: state.account, ...(epoch !== undefined ? { epoch } : {}), ...(terms !== undefined ? { invite: terms.invite } : {}) });
  const claimedAt = nowIso();
  const away = lookup.portal;
  if (away === undefined) keepReceipt(state, await proveReceipt(ctx, 'claim', claim, await ctx.client.claim(secrets.claimId, claim)));
  // at the device's portal: proven against the key pinned there (mesh log verify covers the home portal's log only)
  else await visit(ctx, away, async (client) => proveReceipt({ client, state, portal: away }, 'claim', claim, await client.claim(secrets.claimId, claim)));
  const guest = terms?.role === 'guest';
  const rec: DeviceRecord = {
    id: device.id,
    name,
    model: device.payload.model,
    enc: device.payload.enc,
    fingerprint: fp,
    claimedAt,
    endorsedBy,
    ...(guest ? { guest: true } : {}),
    ...(schemas !== undefined ? { schemas } : {}),
    ...(away !== undefined ? { portal: away } : {}),
  };
  state.devices = [...state.devices.filter((d) => d.id !== device.id), rec];
  save(ctx);
  const personalSeq = await publishPersonal(ctx);
  save(ctx);
  const sent: { app: string; seq: number }[] = [];
  // a guest's device gets only what the guest sets from now on, never the guest's other settings
  for (const [app, r] of guest ? [] : Object.entries(state.apps)) {
    if (r.removed === true) continue;
    if (r.doc === null) {
      ctx.note(`note: this computer cannot read the current ${app} configuration, so it was not sent to ${name}; send it with mesh config apply ${app} FILE\n`);
      continue;
    }
    // what you set for all your devices (not what you set for one with --device), where the device runs it and accepts it
    if (rec.schemas !== undefined && !Object.hasOwn(rec.schemas, app)) continue;
    if (r.targets !== undefined && Object.keys(r.doc).length === 0) continue;
    const problems = rec.schemas?.[app] !== undefined ? validate(rec.schemas[app], r.doc) : [];
    if (problems.length > 0) {
      ctx.note(`note: your ${app} configuration was not sent to ${name}, which would refuse it (${problems.join('; ')}); set its values with mesh config set ${app} KEY=VALUE --device ${name}\n`);
      continue;
    }
    const p = await publishApp(ctx, app, r.doc, { targets: [rec], base: r.doc });
    save(ctx);
    sent.push({ app, seq: p.seq });
  }

  ctx.note(`claimed ${name} (${fp}); waiting for it to confirm...\n`);
  const outcome = o.waitMs === 0 ? undefined : await pollUntil(o.waitMs, 500, async () => {
    const view = (await deviceStatuses(ctx)).get(device.id);
    if (view === undefined || view.status === null) return undefined;
    if (ownerEntry(view.status, state.master) !== undefined) return { accepted: true as const };
    // a refusal of this claim: recorded since we sent it, or by a device whose clock was never set (it says 1970)
    const err = errorsFor(view.status, state.master).find((e) => e.master === state.master && (Date.parse(e.at) >= Date.parse(claimedAt) - SKEW_MS || e.at < '2026-01-01'));
    return err === undefined ? undefined : { accepted: false as const, error: err };
  });

  return { name, endorsedBy, personalSeq, sent, outcome };
}

// ---------------------------------------------------------------- what each device reports

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

/**
 * Remove a device: a removal signed by this administration device (the device forgets this owner;
 * other owners are not affected), the personal profile without it, and the device's verdict.
 */
export async function removeDevice(ctx: Ctx, which: string, waitMs: number): Promise<{ device: DeviceRecord; personalSeq: number; outcome: Outcome }> {
  const { state } = ctx;
  await sync(ctx);
  save(ctx);
  const d = findDevice(state.devices, which);
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
  const personalSeq = await publishPersonal(ctx);
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
  return { device: d, personalSeq, outcome: o as Outcome };
}

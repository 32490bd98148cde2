/**
 * mesh device claim / list / remove.
 */
import { MeshError } from '../mesh/errors.js';
import { isInvitation, parseInvitation } from '../mesh/invite.js';
import { parseClaimLabel } from '../mesh/claim.js';
import { normalizeUdf } from '../mesh/udf.js';
import { checkLabel, intOpt, strOpt, withOwner, type Command } from './command.js';
import { publishPersonal, save, sync } from '../client/owner.js';
import { EXIT_HELP, WAIT_HELP, WAIT_OPTIONS, exitFor, outcomeJson, outcomeLine, waitMsOpt } from './wait.js';
import { completeClaim, deviceReports, findDevice, lookupClaim, markOwnersSeen, removeDevice } from '../client/owner-devices.js';

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
  help: `usage: mesh device claim LABEL|INVITATION [--name NAME] [--trust-manufacturer KEYUDF] [--portal URL] [--wait S]

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
  --portal URL                an invitation to a device at another portal than yours: that portal's URL
                              (default https://HOST, HOST as the invitation names it). You are bound
                              there as a visitor (your master profile only), and the device's claim,
                              configuration and status go there from now on
  --wait S                    how long to wait for the device to confirm, in seconds (default 15; 0 = don't wait)
  --wait-ms N                 the same in milliseconds
  --json                      print the result as JSON`,
  options: { name: { type: 'string' }, 'trust-manufacturer': { type: 'string' }, portal: { type: 'string' }, ...WAIT_OPTIONS },
  async run(v, pos, env) {
    if (pos.length === 0) throw new MeshError('usage', 'give the label (the https://.../claim#... URI of its QR code, or "CODE FINGERPRINT") or the invitation (https://.../invite#...)');
    const text = pos.join(' ');
    // read before anything is sent: a mistyped label is a usage error at once
    if (isInvitation(text)) parseInvitation(text);
    else parseClaimLabel(text);
    const waitMs = waitMsOpt(v);
    const trust = strOpt(v, 'trust-manufacturer');
    if (trust !== undefined) normalizeUdf(trust);
    const wantName = strOpt(v, 'name');
    if (wantName !== undefined) checkLabel(wantName, 'the device name');

    await withOwner(env, async (ctx) => {
      const via = strOpt(v, 'portal');
      const lookup = await lookupClaim(ctx, text, via !== undefined ? { portal: via } : {});
      const { device, schemas } = lookup;
      const fp = lookup.fingerprint;
      const { name, endorsedBy, personalSeq, sent, outcome } = await completeClaim(ctx, lookup, { ...(wantName !== undefined ? { name: wantName } : {}), ...(trust !== undefined ? { trust } : {}), waitMs });
      const { io } = ctx;
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
      const { device: d, personalSeq: seq, outcome } = await removeDevice(ctx, pos[0] as string, waitMs);
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

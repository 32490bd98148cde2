/**
 * mesh device show: what one device runs, from its own signed report: its owners and guests, the
 * effective configuration with who set each value and in which change, the last change it applied
 * for each owner, and its refusals in full (the part of the report only its owners can read).
 */
import { MeshError } from '../mesh/errors.js';
import { describeGrant } from '../mesh/invite.js';
import { intOpt, withOwner, type Command } from './command.js';
import { deviceReports, findDevice, markOwnersSeen } from '../client/owner-devices.js';
import { deviceStatuses, save, sync } from '../client/owner.js';

export const deviceShowCommand: Command = {
  name: 'device show',
  summary: 'show what one device runs: its owners, each effective value and who set it, its refusals',
  help: `usage: mesh device show DEVICE [--max-stale-ms N] [--json]

DEVICE is the device's name or the start of its fingerprint. Everything shown comes from the
device's latest signed report (checked with the device's own key); the effective configuration,
who set each value and the full text of refusals are in the part of the report encrypted to the
device's owners (the portal cannot read it; a guest sees only what its invitation covers):

  owners and guests   who owns the device, who invited whom, since when; NEW if not shown before
  effective           each setting the device runs, who set it, in which change (feed number)
  applied             the last change the device applied for each owner, and when
  refusals            what it refused, why, from whom
  health              last contact, STALE, the device's ownership epoch and log tree head

  --max-stale-ms N   how old "last contact" may be before the device is marked stale (default 86400000)
  --json             print it as JSON`,
  options: { 'max-stale-ms': { type: 'string' } },
  async run(v, pos, env) {
    if (pos.length !== 1) throw new MeshError('usage', 'name one device (its name or the start of its fingerprint)');
    const maxStaleMs = intOpt(v, 'max-stale-ms', 86_400_000, 0, Number.MAX_SAFE_INTEGER);
    await withOwner(env, async (ctx) => {
      await sync(ctx);
      const d = findDevice(ctx.state.devices, pos[0] as string);
      const reports = await deviceReports(ctx, maxStaleMs);
      const r = reports.find((x) => x.id === d.id);
      if (r === undefined) throw new MeshError('not-found', `no report for ${d.name}`);
      const view = (await deviceStatuses(ctx)).get(d.id);
      const priv = view?.private ?? null;
      markOwnersSeen(ctx, reports);
      save(ctx);
      const st = view?.status ?? null;
      const lines: string[] = [`${r.name}   ${r.fingerprint}   ${r.model}${r.stale ? '   STALE' : ''}`];
      if (r.state !== 'ok' || st === null) {
        lines.push(r.state === 'not-at-portal' ? '  the portal knows nothing of this device' : r.state === 'unverified' ? `  ${r.problem ?? 'its report does not verify'}` : '  no status report yet');
        env.io.out(lines.join('\n'), { device: r, effective: null });
        return;
      }
      lines.push(`  last contact ${r.lastContact ?? '-'}${r.clockUnset ? " (the device's clock is not set)" : ''}; epoch ${st.epoch ?? '-'}; feed #${st.n ?? '-'}; log ${st.treeHead !== undefined ? `${st.treeHead.size} entries` : '-'}`);
      lines.push('owners and guests');
      for (const o of r.owners) {
        const grant = o.role === 'guest' ? priv?.grants[o.master] : undefined;
        const role = o.role === 'guest' ? `guest${grant !== undefined ? ` (${describeGrant(grant)})` : ''}` : 'owner';
        lines.push(`  ${o.new ? 'NEW ' : ''}${o.account}${o.you ? ' (you)' : ''}: ${role}, ${o.invitedBy !== null ? `invited by ${o.invitedBy}` : 'from the label'}${o.since !== null ? `, since ${o.since}` : ''}`);
      }
      lines.push('effective');
      if (priv === null) lines.push("  encrypted to the device's owners, and this computer cannot open it (is it an administration device the device knows?)");
      else if (priv.truncated === true) lines.push('  too large for the report; see the device itself (mesh-agent status)');
      else if (Object.keys(priv.effective).length === 0) lines.push('  nothing set yet');
      else {
        for (const [app, keys] of Object.entries(priv.effective)) {
          for (const [k, e] of Object.entries(keys)) {
            const by = e.master === 'local' ? 'set on the device itself (local)' : `set by ${e.owner}${e.master === ctx.state.master ? ' (you)' : ''} in change #${e.n}`;
            lines.push(`  ${app}.${k} = ${JSON.stringify(e.value)}   ${by} (${e.at})`);
          }
        }
      }
      lines.push('applied');
      for (const o of st.owners) {
        if (o.apps.length === 0) lines.push(`  ${o.account}: nothing yet`);
        for (const a of o.apps) lines.push(`  ${o.account}: ${a.app} #${a.seq} at ${a.appliedAt}`);
      }
      lines.push('refusals');
      if (st.errors.length === 0) lines.push('  none');
      for (const e of st.errors) lines.push(`  [${e.code}] ${e.message} (${e.at}${e.app !== undefined ? `, ${e.app}${e.seq !== undefined ? ` #${e.seq}` : ''}` : ''})`);
      env.io.out(lines.join('\n'), { device: r, effective: priv?.effective ?? null, grants: priv?.grants ?? null, applied: st.owners.map((o) => ({ account: o.account, master: o.master, apps: o.apps })), errors: st.errors });
    });
  },
};

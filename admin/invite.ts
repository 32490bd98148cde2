/**
 * mesh device invite: a current owner lets one more person claim a device, once, before the
 * invitation expires, as a co-owner or as a guest limited to some settings (mesh/invite.ts).
 */
import { MeshError } from '../mesh/errors.js';
import { DEFAULT_INVITE_TTL_S, describeGrant, MAX_INVITE_TTL_S, parseGuestSpec, type Grant } from '../mesh/invite.js';
import { listOpt, strOpt, withOwner, type Command } from './command.js';
import { inviteToDevice } from '../client/owner-invite.js';

/** "15m", "2h", "1d", "90s" or a number of seconds. */
export function parseDuration(text: string, what: string): number {
  const m = /^(\d{1,9})\s*(s|m|min|h|d)?$/.exec(text.trim());
  if (m === null) throw new MeshError('usage', `${what} "${text}" is not a duration: use e.g. 90s, 15m, 2h or 1d`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return n * (unit === 's' ? 1 : unit === 'h' ? 3600 : unit === 'd' ? 86400 : 60);
}

/** An end time: an ISO 8601 time, or a duration from now ("2h"). */
export function parseUntil(text: string, nowMs: number): string {
  if (/^\d{4}-\d{2}-\d{2}/.test(text.trim())) {
    const t = Date.parse(text);
    if (Number.isNaN(t)) throw new MeshError('usage', `--until "${text}" is not a time`);
    if (t <= nowMs) throw new MeshError('usage', `--until ${text} has passed already`);
    return new Date(t).toISOString();
  }
  return new Date(nowMs + parseDuration(text, '--until') * 1000).toISOString();
}

async function terminalQr(text: string): Promise<string> {
  const m = (await import('qrcode')) as unknown as { default?: { toString: (t: string, o: object) => Promise<string> }; toString: (t: string, o: object) => Promise<string> };
  return (m.default ?? m).toString(text, { type: 'terminal', small: true, errorCorrectionLevel: 'L' });
}

export const deviceInviteCommand: Command = {
  name: 'device invite',
  summary: 'invite someone to co-own a device, or to use it as a guest within limits',
  help: `usage: mesh device invite DEVICE [--expires 15m] [--guest APP[:KEY,...]]... [--until TIME] [--no-qr] [--json]

Prints an invitation (a URI, and a QR code in the terminal) for DEVICE (its name or the start of
its fingerprint). The person you give it to runs mesh device claim INVITATION. It works once,
for this device only, and only until it expires; a factory reset of the device voids it.

Without --guest the invitee becomes a co-owner, with the same rights as you. With --guest the
invitee is a guest: the device lets a guest set only the applications and keys listed, and
numbers only within the given ranges, until --until; a guest cannot invite anyone. The device
lists every owner and guest in its signed status (mesh device list shows them).

  --expires D      how long the invitation can be accepted: 90s, 15m, 2h, 1d (default 15m, at most 7d)
  --guest SPEC     APP (all of it), APP:KEY,KEY, or with a range KEY=MIN..MAX, e.g.
                   --guest thermostat:setpoint=16..24 (repeat for several applications)
  --until TIME     when a guest's rights end: an ISO 8601 time, or a duration from now (e.g. 2d)
  --no-qr          print the URI only
  --json           print the invitation as JSON`,
  options: { expires: { type: 'string' }, guest: { type: 'string', multiple: true }, until: { type: 'string' }, 'no-qr': { type: 'boolean' } },
  async run(v, pos, env) {
    if (pos.length !== 1) throw new MeshError('usage', 'name one device (its name or the start of its fingerprint)');
    const ttlS = parseDuration(strOpt(v, 'expires') ?? `${DEFAULT_INVITE_TTL_S}`, '--expires');
    if (ttlS < 1 || ttlS > MAX_INVITE_TTL_S) throw new MeshError('usage', `--expires must be between 1 s and ${MAX_INVITE_TTL_S / 86400} days`);
    const scope = listOpt(v, 'guest').map(parseGuestSpec);
    const untilText = strOpt(v, 'until');
    if (untilText !== undefined && scope.length === 0) throw new MeshError('usage', '--until limits a guest: give --guest as well');
    const nowMs = Date.now();
    const grant: Grant | undefined = scope.length === 0 ? undefined : { scope, ...(untilText !== undefined ? { until: parseUntil(untilText, nowMs) } : {}) };

    await withOwner(env, async (ctx) => {
      const { io } = ctx;
      const { uri, device: d, role, expires, nonce } = await inviteToDevice(ctx, pos[0] as string, { ttlS, nowMs, ...(grant !== undefined ? { grant } : {}) });
      const what = grant === undefined ? 'as a co-owner' : `as a guest, allowed ${describeGrant(grant)}`;
      const qr = v['no-qr'] === true || v.json === true ? '' : `\n${await terminalQr(uri)}`;
      io.out(
        [
          `Invitation to ${d.name} (${d.fingerprint}) ${what}.`,
          `It works once, until ${expires}; give it only to the person you invite. They run:`,
          '',
          `  mesh device claim '${uri}'`,
          qr,
        ].join('\n'),
        { invitation: uri, device: { id: d.id, name: d.name }, role, ...(grant !== undefined ? { grant } : {}), expires, nonce },
      );
    });
  },
};

/**
 * mesh profile create / mesh profile show (and mesh status).
 */
import { b64u, fromB64u } from '../mesh/bytes.js';
import { MeshError } from '../mesh/errors.js';
import { signKeyId } from '../mesh/keys.js';
import { checkLabel, defaultAdminName, intOpt, needStr, strOpt, type Command, type Env } from './command.js';
import { checkAccountName, createProfile } from '../client/owner-profile.js';
import { ensureHome, files, loadState, readAdminKeys, readMasterSeed, requireNoProfile, saveAdminKeys, saveMasterSeed, saveState } from './state.js';
import { masterPayload } from '../client/owner-state.js';

export function sharesText(account: string, portal: string, k: number, shares: readonly string[]): string {
  const lines = [
    '',
    '==================== YOUR RECOVERY SHARES (shown only this once) ====================',
    `Any ${k} of these ${shares.length} shares rebuild the master key of ${account}:`,
    '',
    ...shares.map((s, i) => `  ${String(i + 1).padStart(2)}.  ${s}`),
    '',
    'What to do now:',
    '  - Write each share down on paper (or print this), exactly, dashes and all.',
    '  - Keep them in different places: a drawer at home, a safe, a trusted friend or family member.',
    `  - Any ${k} of them bring back everything if this computer is lost; fewer than ${k} reveal nothing.`,
    '  - Do not keep them on this computer, in email or in a photo.',
    '',
    'If this computer is lost, on a new one run:',
    `  mesh recover SHARE SHARE${k > 2 ? ' ...' : ''} --portal ${portal} --account ${account}`,
    '=====================================================================================',
  ];
  return lines.join('\n');
}

export const profileCreateCommand: Command = {
  name: 'profile create',
  summary: 'create your Mesh profile and bind an account at a portal',
  help: `usage: mesh profile create --portal URL --account NAME [--quorum K] [--shares N] [--admin-name NAME] [--keep-master-key]

Makes your master key (your lasting identity), this computer's administration key, your
master and personal profiles, and binds NAME@<portal> to them at the portal. Then prints
your recovery shares ONCE: any K of the N shares rebuild the master key on a new computer.
The master key itself is not kept on this computer unless --keep-master-key is given.

  --portal URL        the portal, e.g. https://portal.example
  --account NAME      the account name at that portal (lowercase letters, digits, . _ -)
  --quorum K          shares needed to recover (default 3)
  --shares N          shares to make (default 5)
  --admin-name NAME   this administration device's name (default: the host name)
  --keep-master-key   keep the master key in <home>/master-seed.json (0600), so adding or
                      revoking administration devices needs no shares
  --home DIR          where the profile is kept (default $MESH_HOME or ~/.mesh)
  --json              print the result (shares included) as JSON`,
  options: {
    portal: { type: 'string' },
    account: { type: 'string' },
    quorum: { type: 'string' },
    shares: { type: 'string' },
    'admin-name': { type: 'string' },
    'keep-master-key': { type: 'boolean' },
  },
  async run(v, pos, env) {
    if (pos.length > 0) throw new MeshError('usage', `unexpected argument "${pos[0] as string}"`);
    const portalUrl = needStr(v, 'portal', 'the portal URL, e.g. --portal https://portal.example');
    const name = needStr(v, 'account', 'the account name you want at the portal, e.g. --account alice');
    checkAccountName(name);
    const k = intOpt(v, 'quorum', 3, 2, 15);
    const n = intOpt(v, 'shares', Math.max(5, k), k, 16);
    const adminName = checkLabel(strOpt(v, 'admin-name') ?? defaultAdminName(), 'the administration device name');
    requireNoProfile(env.home);
    if (readAdminKeys(env.home) !== undefined) {
      throw new MeshError('conflict', `${files(env.home).adminKeys} already exists (an unfinished "mesh admin join"?); use another --home`);
    }
    try {
      new URL(portalUrl);
    } catch {
      throw new MeshError('usage', `"${portalUrl}" is not a URL: give the portal like https://portal.example`);
    }

    const { state, admin, portal, account, masterId, shares, seed } = await createProfile({ portalUrl, name, quorum: k, shares: n, adminName, note: (l) => env.io.progress(l) });
    ensureHome(env.home);
    const keep = v['keep-master-key'] === true;
    saveAdminKeys(env.home, admin);
    if (keep) saveMasterSeed(env.home, seed);
    saveState(env.home, state);
    seed.fill(0);
    const human = [
      `Created ${account}.`,
      `  master profile:   ${masterId}`,
      '                    (your lasting identity: compare it when anyone shows you your profile)',
      `  this computer:    ${adminName}, administration key ${signKeyId(admin.sign.publicKey)}`,
      `  portal:           ${portalUrl} (its key ${portal.id} is now pinned)`,
      keep ? `  master key:       kept in ${files(env.home).masterSeed} (readable only by you)` : '  master key:       NOT kept on this computer; your recovery shares are its only copy',
      sharesText(account, portalUrl, k, shares),
    ].join('\n');
    env.io.out(human, { account, master: masterId, admin: { name: adminName, key: signKeyId(admin.sign.publicKey) }, portal: { url: portalUrl, key: portal.id }, quorum: k, shares, masterKeyKept: keep });
  },
};

function showProfile(env: Env): void {
  const s = loadState(env.home);
  const m = masterPayload(s);
  const keys = readAdminKeys(env.home)?.keys;
  const mine = keys === undefined ? undefined : b64u(keys.sign.publicKey);
  const admins = m.admins.map((a) => ({ name: a.name, key: signKeyId(fromB64u(a.sign, 'sign', 32)), added: a.added, thisDevice: a.sign === mine }));
  const apps = Object.entries(s.apps)
    .filter(([, r]) => r.removed !== true)
    .map(([app, r]) => ({ app, seq: r.seq, publishedAt: r.publishedAt, readable: r.doc !== null }));
  const kept = readMasterSeed(env.home) !== undefined;
  const lines = [
    `account:  ${s.account}`,
    `master:   ${s.master}   (master profile #${m.seq})`,
    `portal:   ${s.portal}   (key ${s.portalId})`,
    `master key kept on this computer: ${kept ? 'yes' : 'no (use your recovery shares)'}`,
    '',
    `administration devices (${admins.length}):`,
    ...admins.map((a) => `  ${a.name}${a.thisDevice ? ' (this computer)' : ''}   ${a.key}   added ${a.added}`),
    ...(m.revoked.length > 0 ? [`  revoked keys: ${m.revoked.length}`] : []),
    '',
    `devices (${s.devices.length}):`,
    ...(s.devices.length === 0 ? ['  none yet: claim one with mesh device claim LABEL'] : s.devices.map((d) => `  ${d.name}   ${d.fingerprint}   ${d.model}${d.endorsedBy !== null ? `   made by ${d.endorsedBy.manufacturer}` : ''}   runs ${d.schemas === undefined ? '(not declared)' : Object.keys(d.schemas).join(', ') || 'nothing'}`)),
    '',
    `applications (${apps.length}):`,
    ...(apps.length === 0 ? ['  none yet: mesh config set APP key=value'] : apps.map((a) => `  ${a.app}   #${a.seq}   ${a.publishedAt}${a.readable ? '' : '   (not readable here)'}`)),
  ];
  env.io.out(lines.join('\n'), {
    account: s.account,
    master: s.master,
    masterSeq: m.seq,
    portal: { url: s.portal, key: s.portalId },
    masterKeyKept: kept,
    admins,
    revoked: m.revoked,
    devices: s.devices.map((d) => ({ id: d.id, name: d.name, fingerprint: d.fingerprint, model: d.model, claimedAt: d.claimedAt, endorsedBy: d.endorsedBy })),
    apps,
  });
}

export const profileShowCommand: Command = {
  name: 'profile show',
  summary: 'show the account, master UDF, administration devices and devices',
  help: `usage: mesh profile show [--json]

Shows what this computer holds: the account, the master profile UDF, the administration
devices, the devices and the applications. Nothing is sent anywhere.`,
  options: {},
  async run(_v, pos, env) {
    if (pos.length > 0) throw new MeshError('usage', `unexpected argument "${pos[0] as string}"`);
    showProfile(env);
  },
};

export const statusCommand: Command = {
  ...profileShowCommand,
  name: 'status',
  summary: 'same as mesh profile show',
  help: profileShowCommand.help.replace('mesh profile show', 'mesh status'),
};

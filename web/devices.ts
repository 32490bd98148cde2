/**
 * The owner's devices: the list (applied / refused / not reached, from each device's own signed
 * status), adding one (camera or typed code, then a name), a device's page (its settings as a form
 * made from the schema it declared, the values in effect and who set them, its owners and guests),
 * inviting a co-owner or a guest, removing it, linking another administration device, and the
 * log check's badge.
 */
import { MeshError, isMeshError } from '../mesh/errors.js';
import type { Json } from '../mesh/json.js';
import type { Schema } from '../mesh/schema.js';
import { recoverSecret } from '../mesh/shamir.js';
import { describeGrant, type Grant } from '../mesh/invite.js';
import { deviceStatuses, save, sync, type DeviceView } from '../client/owner.js';
import { checkLabel, checkMasterKeys, docFor, type DeviceRecord, type State } from '../client/owner-state.js';
import { completeClaim, deviceReports, lookupClaim, markOwnersSeen, removeDevice, type ClaimLookup, type DeviceReport } from '../client/owner-devices.js';
import { applyChange, changeConfig, type Change } from '../client/owner-config.js';
import { inviteToDevice } from '../client/owner-invite.js';
import { joinCommand, listAdmin, newPin, waitForJoin } from '../client/owner-admins.js';
import { verifyLog } from '../client/owner-log.js';
import type { Outcome } from '../client/owner-wait.js';
import { actionCtx, session, type Session } from './session.js';
import { qrImage, scanCamera } from './qr.js';
import { button, errorText, field, form, h, link, show, status, value } from './ui.js';

const DAY_MS = 86_400_000;
const WAIT_MS = 20_000;

function need(): Session {
  const s = session();
  if (s === undefined) throw new MeshError('state', 'there is no profile in this browser');
  return s;
}

/** One word per device and application: what the device did with the latest change. */
function appLine(r: DeviceReport): HTMLElement[] {
  const out: HTMLElement[] = [];
  for (const a of r.apps) {
    const refused = r.lastError !== null && r.lastError.app === a.app && r.lastError.seq === a.published && !a.upToDate;
    const tag = a.upToDate ? h('span', { class: 'tag applied' }, 'applied') : refused ? h('span', { class: 'tag refused' }, 'refused') : h('span', { class: 'tag waiting' }, 'not reached yet');
    out.push(h('li', {}, `${a.app} #${a.published}`, tag, refused && r.lastError !== null ? h('span', { class: 'hint' }, ` ${r.lastError.message}`) : null));
  }
  return out;
}

// ---------------------------------------------------------------- the list

export async function home(): Promise<void> {
  const s = need();
  const { state } = s.ctx;
  const list = h('ul', { class: 'plain devices', id: 'devices', 'aria-busy': 'true' }, h('li', {}, 'Asking your devices...'));
  show(
    'Your devices',
    h('p', {}, `${state.account}`, h('span', { class: 'hint' }, ` (this is "${state.admin}")`)),
    list,
    button('Add a device', () => addDevice()),
    button('Link a computer or browser', linkScreen, 'secondary'),
    button('Refresh', () => void home(), 'secondary'),
  );
  try {
    const ctx = actionCtx(s);
    await sync(ctx);
    save(ctx);
    const reports = await deviceReports(ctx, DAY_MS);
    list.replaceChildren(
      ...(reports.length === 0
        ? [h('li', {}, 'No devices yet. Add one by scanning its label.')]
        : reports.map((r) =>
            h('li', {},
              link(r.name, () => void devicePage(r.id)),
              h('span', { class: 'hint' }, ` ${r.model}, ${r.fingerprint}`),
              r.state !== 'ok' ? h('p', { class: 'hint' }, r.state === 'no-status' ? 'It has not reported yet.' : (r.problem ?? 'The portal knows nothing of it.')) : !r.owner ? h('p', { class: 'hint' }, 'It does not list you as an owner yet.') : null,
              h('ul', { class: 'plain' }, appLine(r)),
            ),
          )),
    );
    list.removeAttribute('aria-busy');
    void logBadge();
  } catch (e) {
    list.replaceChildren(h('li', { class: 'error', role: 'alert' }, errorText(e)));
    list.removeAttribute('aria-busy');
  }
}

/** Run `mesh log verify`'s checks in the page; a failure shows a badge on every screen. */
export async function logBadge(): Promise<void> {
  const s = session();
  const badge = document.getElementById('badge');
  if (s === undefined || badge === null) return;
  try {
    const r = await verifyLog(actionCtx(s));
    badge.className = 'badge-ok';
    badge.textContent = `Log checked (${r.th.size} entries)`;
    badge.hidden = false;
  } catch (e) {
    if (isMeshError(e) && (e.code === 'log-inconsistent' || e.code === 'bad-proof' || e.code === 'bad-signature')) {
      badge.className = 'badge-bad';
      badge.setAttribute('role', 'alert');
      badge.textContent = 'Log check failed: do not trust this portal';
      badge.title = e.message;
      badge.hidden = false;
    }
  }
}

// ---------------------------------------------------------------- adding a device

/** Scan a label or an invitation with the camera, or type its code; `text` when one was opened already. */
export function addDevice(text?: string): void {
  if (text !== undefined) {
    void lookup(text);
    return;
  }
  const video = h('video', { 'aria-label': 'What the camera sees', hidden: true });
  const camMsg = h('p', { role: 'status' });
  let stop: (() => void) | undefined;
  show(
    'Add a device',
    h('p', {}, 'Scan the QR code on the device\'s label (or the invitation someone gave you), or type the code printed under it.'),
    button('Scan with the camera', () => {
      video.hidden = false;
      camMsg.textContent = 'Point the camera at the QR code.';
      scanCamera(video, (t) => {
        if (!/claim#|invite#|^mcu:\/\//.test(t)) return false;
        stop?.();
        void lookup(t);
        return true;
      }).then(
        (s) => {
          stop = s;
        },
        (e: unknown) => {
          video.hidden = true;
          camMsg.textContent = `The camera cannot be used (${errorText(e)}): type the code instead.`;
        },
      );
    }),
    camMsg,
    video,
    h('h2', {}, 'Or type the code'),
    form(
      {
        submit: 'Continue',
        busy: 'Looking it up...',
        action: async (f) => {
          stop?.();
          await lookup(value(f, 'code'));
        },
      },
      field('code', 'Code and fingerprint', h('textarea', { name: 'code', required: true, rows: '2', autocapitalize: 'characters', spellcheck: 'false' }), 'As printed on the label: the code, a space, then the fingerprint. Or paste an invitation link.'),
    ),
    button('Back', () => {
      stop?.();
      void home();
    }, 'secondary'),
  );
}

async function lookup(text: string): Promise<void> {
  const s = need();
  status('Looking the device up at the portal...');
  let l: ClaimLookup;
  try {
    l = await lookupClaim(actionCtx(s), text.trim());
  } catch (e) {
    show('This code does not open a device', h('p', { class: 'error', role: 'alert' }, errorText(e)), button('Try again', () => addDevice()), button('Back', () => void home(), 'secondary'));
    return;
  }
  confirmClaim(l);
}

function confirmClaim(l: ClaimLookup): void {
  const s = need();
  const e = l.endorsement;
  show(
    l.terms !== undefined ? 'Accept the invitation' : 'Claim this device',
    h('dl', {},
      h('dt', {}, 'Model'), h('dd', {}, l.device.payload.model),
      h('dt', {}, 'Fingerprint'), h('dd', { class: 'mono', id: 'fingerprint' }, l.fingerprint),
      h('dt', {}, 'Made by'), h('dd', {}, e !== null ? `${e.payload.manufacturer} (serial ${e.payload.serial})` : l.terms !== undefined ? `not shown; ${l.terms.by} vouches for it` : 'no manufacturer vouches for it'),
      l.terms !== undefined ? [h('dt', {}, 'Invited by'), h('dd', {}, `${l.terms.by}, ${l.terms.role === 'guest' ? `as a guest: ${describeGrant(l.terms.grant ?? { scope: [] })}` : 'as a co-owner'}`)] : null,
    ),
    h('p', {}, 'The fingerprint matches the label: this is the device the label names.'),
    form(
      {
        submit: l.terms !== undefined ? 'Accept' : 'Claim it',
        busy: 'Claiming, waiting for the device...',
        action: async (f) => {
          const r = await completeClaim(actionCtx(s), l, { name: checkLabel(value(f, 'name'), 'the device name'), waitMs: WAIT_MS });
          if (r.outcome !== undefined && !r.outcome.accepted) throw new MeshError('not-owner', `The device refused: ${r.outcome.error.message}`);
          status(r.outcome === undefined ? `${r.name} has not confirmed yet; it will when it next reaches the portal.` : `${r.name} is yours.`);
          await devicePage(l.device.id);
        },
      },
      field('name', 'What do you call it?', h('input', { name: 'name', required: true, value: l.suggestedName, maxlength: '64', readonly: l.existing !== undefined }), 'e.g. living room'),
    ),
    button('Cancel', () => void home(), 'secondary'),
  );
}

// ---------------------------------------------------------------- one device

function unitOf(s: Schema): string {
  const d = typeof s.description === 'string' ? s.description : '';
  const m = /,\s*([^,]{1,8})$/.exec(d);
  return m?.[1] ?? '';
}

/** The form for one application, made from its schema: a field per setting, with its range, unit or choices; a value outside them cannot be submitted. */
function settingsForm(d: DeviceRecord, app: string, schema: Schema, current: Readonly<Record<string, Json>>, done: (o: Outcome | undefined) => void): HTMLFormElement {
  const s = need();
  const props = (schema.properties ?? {}) as Record<string, Schema>;
  const fields: HTMLElement[] = [];
  const kinds = new Map<string, 'number' | 'integer' | 'string' | 'boolean' | 'enum'>();
  for (const [k, p] of Object.entries(props)) {
    const id = `${app}-${k}`;
    const cur = Object.hasOwn(current, k) ? current[k] : undefined;
    const label = typeof p.title === 'string' ? p.title : k;
    const desc = typeof p.description === 'string' ? p.description : undefined;
    if (Array.isArray(p.enum)) {
      kinds.set(k, 'enum');
      fields.push(field(id, label, h('select', { name: k }, h('option', { value: '' }, '(unchanged)'), ...(p.enum as Json[]).map((x) => h('option', { value: JSON.stringify(x), selected: JSON.stringify(x) === JSON.stringify(cur) }, typeof x === 'string' ? x : JSON.stringify(x)))), desc));
    } else if (p.type === 'number' || p.type === 'integer') {
      kinds.set(k, p.type);
      const min = typeof p.minimum === 'number' ? p.minimum : undefined;
      const max = typeof p.maximum === 'number' ? p.maximum : undefined;
      const unit = unitOf(p);
      const range = min !== undefined && max !== undefined ? `from ${min} to ${max}${unit !== '' ? ` ${unit}` : ''}` : undefined;
      fields.push(field(id, `${label}${unit !== '' ? ` (${unit})` : ''}`, h('input', { name: k, type: 'number', inputmode: 'decimal', step: p.type === 'integer' ? '1' : 'any', min, max, value: typeof cur === 'number' ? String(cur) : '' }), [desc, range].filter((x) => x !== undefined).join('; ') || undefined));
    } else if (p.type === 'boolean') {
      kinds.set(k, 'boolean');
      fields.push(field(id, label, h('select', { name: k }, h('option', { value: '' }, '(unchanged)'), h('option', { value: 'true', selected: cur === true }, 'on'), h('option', { value: 'false', selected: cur === false }, 'off')), desc));
    } else if (p.type === 'string' || p.type === undefined) {
      kinds.set(k, 'string');
      fields.push(field(id, label, h('input', { name: k, maxlength: typeof p.maxLength === 'number' ? String(p.maxLength) : undefined, pattern: typeof p.pattern === 'string' ? p.pattern : undefined, value: typeof cur === 'string' ? cur : '' }), desc));
    }
  }
  return form(
    {
      id: `form-${app}`,
      submit: 'Save',
      busy: 'Sending, waiting for the device...',
      action: async (f) => {
        const set: Record<string, Json> = {};
        for (const [k, kind] of kinds) {
          const raw = value(f, k);
          if (raw === '') continue;
          const v: Json = kind === 'number' || kind === 'integer' ? Number(raw) : kind === 'enum' || kind === 'boolean' ? (JSON.parse(raw) as Json) : raw;
          if (JSON.stringify(current[k]) !== JSON.stringify(v)) set[k] = v;
        }
        if (Object.keys(set).length === 0) throw new MeshError('usage', 'Nothing was changed.');
        const change: Change = { kind: 'assign', set, remove: [] };
        const r = await changeConfig(actionCtx(s), app, change, { devices: [d.id], waitMs: WAIT_MS, base: (old) => applyChange(old, change) });
        done(r.outcomes[0]);
      },
    },
    ...fields,
  );
}

function outcomeText(o: Outcome | undefined): HTMLElement {
  if (o === undefined) return h('p', {}, '');
  if (o.result === 'applied') return h('p', { class: 'ok', role: 'status' }, `Applied by the device (#${o.seq ?? '?'}).`);
  if (o.result === 'refused') return h('p', { class: 'error', role: 'alert' }, `The device refused it: ${o.error?.message ?? ''}`);
  return h('p', { role: 'status' }, 'Not reached yet: the device gets it when it next reaches the portal.');
}

/**
 * For a device known without its schemas: each application it declares or reports, with the
 * settings it reports in effect and those this owner sent it, typed as their values are.
 */
function inferSchemas(state: State, d: DeviceRecord, view: DeviceView | undefined): Record<string, Schema> {
  const effective = view?.private?.effective ?? {};
  const apps = new Set([...Object.keys(effective), ...(view?.profile?.payload.apps ?? []).map((a) => a.name)]);
  const out: Record<string, Schema> = {};
  for (const app of apps) {
    const r = state.apps[app];
    const mine = r === undefined ? {} : ((docFor(r, d.id)?.doc ?? r.doc) ?? {});
    const values: Record<string, Json> = { ...mine, ...Object.fromEntries(Object.entries(effective[app] ?? {}).map(([k, e]) => [k, e.value])) };
    out[app] = { type: 'object', properties: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, { type: typeof v === 'number' ? 'number' : typeof v === 'boolean' ? 'boolean' : 'string' }])) };
  }
  return out;
}

export async function devicePage(id: string, last?: Outcome): Promise<void> {
  const s = need();
  const ctx = actionCtx(s);
  const d = ctx.state.devices.find((x) => x.id === id);
  if (d === undefined) {
    await home();
    return;
  }
  let report: DeviceReport | undefined;
  let view: DeviceView | undefined;
  let problem: string | undefined;
  try {
    const reports = await deviceReports(ctx, DAY_MS);
    report = reports.find((r) => r.id === id);
    view = (await deviceStatuses(ctx)).get(id);
    markOwnersSeen(ctx, reports);
    save(ctx);
  } catch (e) {
    problem = errorText(e);
  }
  const effective = view?.private?.effective ?? {};
  const sections: HTMLElement[] = [];
  // a device whose schemas did not come back (an older device that declares none, or a personal
  // profile published before it carried them: client/owner-schemas.ts restoreSchemas): its settings
  // are then those it reports in effect, and the device checks them
  const inferred = d.schemas === undefined;
  const schemas: Record<string, Schema> = d.schemas ?? inferSchemas(ctx.state, d, view);
  for (const [app, schema] of Object.entries(schemas)) {
    const r = ctx.state.apps[app];
    const mine = (r !== undefined ? docFor(r, d.id)?.doc : undefined) ?? {};
    const eff = effective[app] ?? {};
    const shown: Record<string, Json> = { ...Object.fromEntries(Object.entries(eff).map(([k, e]) => [k, e.value])), ...mine };
    sections.push(
      h('section', { class: 'card', 'aria-labelledby': `h-${app}` },
        h('h2', { id: `h-${app}` }, `Settings: ${app}`),
        d.guest === true ? h('p', { class: 'hint' }, 'You are a guest: the device accepts only what your invitation allows.') : null,
        inferred ? h('p', { class: 'hint' }, 'The ranges of these settings are not known on this phone (it was set up from your recovery shares): the device checks each value and says if it refuses one.') : null,
        settingsForm(d, app, schema, shown, (o) => void devicePage(id, o)),
        h('h2', {}, 'In effect now'),
        Object.keys(eff).length === 0
          ? h('p', { class: 'hint' }, 'The device has not reported any value yet.')
          : h('table', { id: `effective-${app}` },
              h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Setting'), h('th', { scope: 'col' }, 'Value'), h('th', { scope: 'col' }, 'Set by'))),
              h('tbody', {}, Object.entries(eff).map(([k, e]) => h('tr', {}, h('td', {}, k), h('td', {}, JSON.stringify(e.value)), h('td', {}, e.master === ctx.state.master ? `${e.owner} (you)` : e.owner)))),
            ),
      ),
    );
  }
  const owners = report?.owners ?? [];
  show(
    d.name,
    h('p', { class: 'hint' }, `${d.model}, fingerprint `, h('span', { class: 'mono' }, d.fingerprint)),
    outcomeText(last),
    problem !== undefined ? h('p', { class: 'error', role: 'alert' }, problem) : null,
    report !== undefined ? h('section', { class: 'card' }, h('h2', {}, 'State'), h('p', {}, report.lastContact !== null ? `Last heard from: ${new Date(report.clockUnset ? Date.now() : Date.parse(report.lastContact)).toLocaleString()}${report.stale ? ' (a while ago)' : ''}` : 'It has not reported yet.'), h('ul', { class: 'plain' }, appLine(report))) : null,
    ...sections,
    h('section', { class: 'card', 'aria-labelledby': 'h-owners' },
      h('h2', { id: 'h-owners' }, 'Owners and guests'),
      owners.length === 0 ? h('p', { class: 'hint' }, 'Not known yet.') : h('ul', { id: 'owners' }, owners.map((o) => h('li', {}, `${o.account}${o.you ? ' (you)' : ''}: ${o.role === 'guest' ? `guest, ${o.grant ?? 'limited'}` : 'owner'}${o.invitedBy !== null ? `, invited by ${o.invitedBy}` : ''}`, o.new ? h('span', { class: 'tag' }, 'new') : null))),
      d.guest !== true ? button('Invite a co-owner', () => invite(d, undefined)) : null,
      d.guest !== true && d.schemas !== undefined ? button('Invite a guest', () => invite(d, { scope: Object.keys(d.schemas ?? {}).map((app) => ({ app })), until: new Date(Date.now() + 7 * DAY_MS).toISOString() }), 'secondary') : null,
    ),
    button('Remove this device', () => remove(d), 'danger'),
    button('Back to your devices', () => void home(), 'secondary'),
  );
}

// ---------------------------------------------------------------- invite, remove

function invite(d: DeviceRecord, grant: Grant | undefined): void {
  const s = need();
  show(
    grant === undefined ? `Invite a co-owner of ${d.name}` : `Invite a guest to ${d.name}`,
    h('p', {}, grant === undefined ? 'A co-owner has the same rights as you.' : `A guest may set only: ${describeGrant(grant)}.`, ' The invitation works once, for 15 minutes: show its QR code, or send the link only to the person you invite.'),
    form(
      {
        submit: 'Make the invitation',
        busy: 'Making it...',
        action: async () => {
          const r = await inviteToDevice(actionCtx(s), d.id, { ttlS: 900, nowMs: Date.now(), ...(grant !== undefined ? { grant } : {}) });
          const img = await qrImage(r.uri, `QR code of the invitation to ${d.name}`);
          show(
            'Invitation ready',
            h('p', {}, `Valid until ${new Date(r.expires).toLocaleTimeString()}. Let them scan it, or send them the link.`),
            img,
            field('invitation', 'Invitation link', h('input', { name: 'invitation', readonly: true, value: r.uri, class: 'mono' })),
            button('Copy the link', () => void navigator.clipboard?.writeText(r.uri).then(() => status('Copied.'), () => status('Select the link and copy it.'))),
            button('Done', () => void devicePage(d.id), 'secondary'),
          );
        },
      },
    ),
    button('Cancel', () => void devicePage(d.id), 'secondary'),
  );
}

function remove(d: DeviceRecord): void {
  const s = need();
  show(
    `Remove ${d.name}?`,
    h('p', {}, 'The device forgets you; its other owners keep it. Settings you make afterwards are not sent to it.'),
    form(
      {
        submit: `Remove ${d.name}`,
        busy: 'Removing...',
        action: async () => {
          const r = await removeDevice(actionCtx(s), d.id, WAIT_MS);
          status(r.outcome.result === 'applied' ? `${d.name} no longer lists you.` : `${d.name} is removed from your profile; it forgets you when it next reaches the portal.`);
          await home();
        },
      },
    ),
    button('Cancel', () => void devicePage(d.id), 'secondary'),
  );
}

// ---------------------------------------------------------------- linking another administration device

/** Add a computer (mesh admin join) or another browser: a one-time PIN, its QR code, and the wait. */
function linkScreen(): void {
  const s = need();
  const { state } = s.ctx;
  show(
    'Link a computer or browser',
    h('p', {}, 'The other device becomes an administration device of your profile, as this one is. Changing who administers your profile needs your master key: type 3 of your recovery shares', s.seed !== undefined ? ' (not needed: this browser keeps the master key).' : '.'),
    form(
      {
        submit: 'Show the PIN',
        busy: 'Waiting for the other device...',
        action: async (f) => {
          const name = checkLabel(value(f, 'name'), 'the other device');
          const list = value(f, 'shares').split(/[\n,]+/).map((x) => x.trim()).filter((x) => x !== '');
          const mk = checkMasterKeys(s.seed ?? recoverSecret(list), state.master, state.account);
          const pin = newPin();
          const cmd = joinCommand(state, pin, name);
          const q = new URLSearchParams({ portal: state.portal, account: state.account, pin, master: state.master });
          const img = await qrImage(`${location.origin}${location.pathname}#join&${q.toString()}`, 'QR code to link another browser');
          const out = document.getElementById('link-out') as HTMLElement;
          out.replaceChildren(
            h('h2', {}, 'One-time PIN'),
            h('p', { class: 'mono', id: 'pin' }, pin),
            h('p', {}, 'On a computer, run:'),
            h('pre', { class: 'mono', id: 'join-command' }, cmd),
            h('p', {}, 'On another phone or browser, scan this:'),
            img,
          );
          const ctx = actionCtx(s);
          const found = await waitForJoin(ctx, pin, 180_000);
          if (found === undefined) throw new MeshError('timeout', 'No device asked to join with this PIN in 3 minutes; nothing was changed.');
          await sync(ctx);
          save(ctx);
          const r = await listAdmin(ctx, mk, name, found);
          out.replaceChildren(h('p', { class: 'ok', role: 'status' }, `"${name}" is now an administration device of ${state.account}.`, r.reencrypted.length > 0 ? ` Settings re-sent so it can read them: ${r.reencrypted.join(', ')}.` : ''));
        },
      },
      field('name', 'Name of the other device', h('input', { name: 'name', required: true, value: 'laptop', maxlength: '64' })),
      s.seed === undefined ? field('shares', 'Recovery shares, one per line', h('textarea', { name: 'shares', required: true, rows: '3', autocapitalize: 'characters', spellcheck: 'false' })) : null,
    ),
    h('div', { id: 'link-out', 'aria-live': 'polite' }),
    button('Back', () => void home(), 'secondary'),
  );
}

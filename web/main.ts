/**
 * The owner app: for people who will never open a terminal. It is an administration device of the
 * owner's profile, exactly like a computer running `mesh`: its keys are made here, kept in this
 * browser's IndexedDB, and never sent anywhere; it speaks the same protocol with the same code
 * (client/, mesh/). Served by the portal at / (and at /claim and /invite, whose secret stays in
 * the address's fragment), or from any static host or a local file.
 */
import { MeshError } from '../mesh/errors.js';
import { isInvitation } from '../mesh/invite.js';
import { createProfile, checkAccountName } from '../client/owner-profile.js';
import { recoverAccount } from '../client/owner-recover.js';
import { joinAccount } from '../client/owner-admins.js';
import { checkLabel, newAdminKeys } from '../client/owner-state.js';
import * as store from './store.js';
import { h, show, form, field, value, button, errorText } from './ui.js';
import { note, signIn } from './session.js';
import { addDevice, home } from './devices.js';

/** A label or invitation opened before there was a profile: claimed once there is one. */
let pendingClaim: string | undefined;

/** The portal this page came from (the default for a new profile), when it came from one. */
function defaultPortal(): string {
  return location.protocol === 'http:' || location.protocol === 'https:' ? location.origin : '';
}

/** After a profile exists: go on with a label or invitation that was opened, else the devices. */
export function afterSignIn(): void {
  const text = pendingClaim;
  pendingClaim = undefined;
  if (text !== undefined) addDevice(text);
  else void home();
}

function start(): void {
  show(
    'Your devices, your keys',
    pendingClaim !== undefined ? h('p', { class: 'card' }, isInvitation(pendingClaim) ? 'You opened an invitation to a device. ' : 'You scanned the label of a device. ', 'First make your profile here (or bring back the one you have); then the device is added.') : null,
    h('p', {}, 'This page makes and keeps the keys that own your devices, in this browser only. The portal passes messages on but cannot read your settings or act for you.'),
    h('ul', { class: 'plain' },
      h('li', {}, button('Create my profile', create)),
      h('li', {}, button('Recover with my recovery shares', recover, 'secondary')),
      h('li', {}, button('Link to a profile I already have', () => join(), 'secondary')),
    ),
    h('h2', {}, 'If you lose this phone'),
    h('p', {}, 'Open this page on a new phone or computer, choose "Recover with my recovery shares" and type any three of the shares you wrote down when you made your profile. Your devices keep working meanwhile; nothing needs doing on them.'),
  );
}

function create(): void {
  const portal = h('input', { name: 'portal', type: 'url', required: true, value: defaultPortal(), autocomplete: 'url' });
  const account = h('input', { name: 'account', required: true, pattern: '[a-z0-9][a-z0-9._\\-]{0,63}', autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false' });
  const name = h('input', { name: 'name', required: true, value: 'phone', maxlength: '64' });
  const keep = h('input', { name: 'keep', type: 'checkbox', id: 'keep' });
  show(
    'Create your profile',
    h('p', {}, 'Your profile is your lasting identity as an owner. Its master key is made here and split into recovery shares for you to write down.'),
    form(
      {
        submit: 'Create my profile',
        busy: 'Creating...',
        action: async (f) => {
          checkAccountName(value(f, 'account'));
          const made = await createProfile({ portalUrl: value(f, 'portal'), name: value(f, 'account'), quorum: 3, shares: 5, adminName: checkLabel(value(f, 'name'), 'this device'), note });
          store.saveKeys(made.admin);
          store.saveState(made.state);
          store.saveSeed(keep.checked ? made.seed : null);
          await store.flush();
          signIn(made.state, made.admin, keep.checked ? made.seed : undefined);
          shares(made.account, made.shares, keep.checked ? undefined : made.seed);
        },
      },
      field('portal', 'Portal', portal, 'Where your devices and your other phones or computers meet. The portal never sees your keys.'),
      field('account', 'Account name', account, 'Lowercase letters, digits, ".", "_" or "-", e.g. alice'),
      field('name', 'Name of this phone or browser', name),
      h('label', { for: 'keep', class: 'hint' }, keep, 'Keep the master key in this browser (adding another computer then needs no shares)'),
    ),
  );
}

/** The recovery shares, once: printable, and a check that they were written down. */
function shares(account: string, list: readonly string[], wipe: Uint8Array | undefined): void {
  wipe?.fill(0);
  const ask = 1 + Math.floor(Math.random() * list.length);
  show(
    'Write down your recovery shares',
    h('p', {}, `These ${list.length} shares are shown only this once. Any 3 of them bring back ${account} on a new phone or computer; fewer than 3 reveal nothing.`),
    h('ol', { class: 'shares', id: 'shares' }, list.map((s) => h('li', {}, h('code', {}, s)))),
    h('p', {}, 'Write each one on paper, exactly, dashes and all, or print this page. Keep them in different places: a drawer at home, a safe, someone you trust. Not on this phone, in email or in a photo.'),
    button('Print this page', () => window.print(), 'secondary noprint'),
    h('h2', { class: 'noprint' }, 'Check'),
    form(
      {
        submit: 'Done, I wrote them down',
        action: async (f) => {
          const typed = value(f, 'check').toUpperCase().replace(/\s+/g, '');
          if (typed !== (list[ask - 1] as string).toUpperCase().replace(/\s+/g, '')) throw new MeshError('bad-share', `That is not share ${ask} as shown above: check what you wrote down.`);
          afterSignIn();
        },
      },
      field('check', `Type share ${ask} from what you wrote down`, h('input', { name: 'check', required: true, autocomplete: 'off', autocapitalize: 'characters', spellcheck: 'false' })),
    ),
  );
}

function recover(): void {
  show(
    'Recover your profile',
    h('p', {}, 'Type at least 3 of your recovery shares. This phone becomes your administration device; the lost one can no longer change anything.'),
    form(
      {
        submit: 'Recover',
        busy: 'Recovering...',
        action: async (f) => {
          const list = value(f, 'shares').split(/[\n,]+/).map((x) => x.trim()).filter((x) => x !== '');
          const r = await recoverAccount({
            portalUrl: value(f, 'portal'),
            account: value(f, 'account'),
            shares: list,
            adminName: checkLabel(value(f, 'name'), 'this device'),
            note,
            keep: (st, keys) => {
              store.saveKeys(keys);
              store.saveState(st);
            },
          });
          r.seed.fill(0);
          await store.flush();
          signIn(r.state, r.admin);
          afterSignIn();
        },
      },
      field('portal', 'Portal', h('input', { name: 'portal', type: 'url', required: true, value: defaultPortal() })),
      field('account', 'Your account', h('input', { name: 'account', required: true, autocapitalize: 'none', spellcheck: 'false' }), 'The whole account, e.g. alice@portal.example'),
      field('shares', 'Recovery shares, one per line', h('textarea', { name: 'shares', required: true, autocapitalize: 'characters', spellcheck: 'false', rows: '4' })),
      field('name', 'Name of this phone or browser', h('input', { name: 'name', required: true, value: 'new phone', maxlength: '64' })),
    ),
  );
}

/** Become an administration device of an existing profile, with the PIN another one shows (mesh admin add, or this app). */
export function join(pre: { portal?: string; account?: string; pin?: string; master?: string } = {}): void {
  show(
    'Link to your profile',
    h('p', {}, 'On your computer run ', h('code', {}, 'mesh admin add --name phone'), ' (or choose "Link a computer or browser" in this app on your other phone). It shows a one-time PIN: type it here.'),
    form(
      {
        submit: 'Link',
        busy: 'Waiting for your other device...',
        action: async (f) => {
          const account = value(f, 'account');
          const name = checkLabel(value(f, 'name'), 'this device');
          const prior = (await store.load()).keys;
          const admin = prior !== undefined && prior.pending && prior.account === account ? { ...prior.keys, name } : newAdminKeys(name);
          store.saveKeys(admin, { account, pending: true });
          await store.flush();
          const master = value(f, 'master');
          const r = await joinAccount({ portalUrl: value(f, 'portal'), account, pin: value(f, 'pin'), admin, name, ...(master !== '' ? { expectMaster: master } : {}), waitMs: 180_000, note });
          store.saveState(r.state);
          store.saveKeys(admin);
          await store.flush();
          signIn(r.state, admin);
          afterSignIn();
        },
      },
      field('portal', 'Portal', h('input', { name: 'portal', type: 'url', required: true, value: pre.portal ?? defaultPortal() })),
      field('account', 'Your account', h('input', { name: 'account', required: true, value: pre.account ?? '', autocapitalize: 'none', spellcheck: 'false' }), 'e.g. alice@portal.example'),
      field('pin', 'One-time PIN', h('input', { name: 'pin', required: true, value: pre.pin ?? '', autocomplete: 'one-time-code', autocapitalize: 'characters', spellcheck: 'false' })),
      field('master', 'Master profile (optional)', h('input', { name: 'master', value: pre.master ?? '', spellcheck: 'false' }), 'The --master value shown with the PIN: checked when given'),
      field('name', 'Name of this phone or browser', h('input', { name: 'name', required: true, value: 'phone', maxlength: '64' })),
    ),
  );
}

/** What the address carries: a label or invitation (/claim#..., /invite#...), or a link PIN (#join=...). */
function fromAddress(): { claim?: string; join?: Record<string, string> } {
  const hash = location.hash;
  if (hash.length <= 1) return {};
  const out: { claim?: string; join?: Record<string, string> } = {};
  // as the label or invitation writes it (https://PORTAL/claim#... or /invite#...), whatever served this page
  if (/^\/(claim|invite)$/.test(location.pathname)) out.claim = `https://${location.host}${location.pathname}${hash}`;
  else if (hash.startsWith('#join&')) out.join = Object.fromEntries(new URLSearchParams(hash.slice(6)));
  // the secret leaves the address bar (and the history) once read
  history.replaceState(null, '', location.pathname === '/claim' || location.pathname === '/invite' ? '/' : location.pathname);
  return out;
}

async function boot(): Promise<void> {
  const addr = fromAddress();
  pendingClaim = addr.claim;
  let stored: store.Stored;
  try {
    stored = await store.load();
  } catch (e) {
    show('This browser cannot keep your keys', h('p', { class: 'error' }, errorText(e)), h('p', {}, 'The owner app keeps your keys in this browser (IndexedDB). A private window, or a browser set to keep no site data, cannot.'));
    return;
  }
  if (stored.state !== undefined && stored.keys !== undefined && !stored.keys.pending) {
    signIn(stored.state, stored.keys.keys, stored.seed);
    afterSignIn();
    return;
  }
  if (addr.join !== undefined) {
    join({ ...(addr.join.portal !== undefined ? { portal: addr.join.portal } : {}), ...(addr.join.account !== undefined ? { account: addr.join.account } : {}), ...(addr.join.pin !== undefined ? { pin: addr.join.pin } : {}), ...(addr.join.master !== undefined ? { master: addr.join.master } : {}) });
    return;
  }
  start();
}

// the first screen is up and answers input: npm run bench reads this mark (bench/web-row.ts)
void boot().then(() => performance.mark('mesh-interactive'));
// the app's files kept for offline use (web/sw.ts); not where the page is a local file
if ('serviceWorker' in navigator && (location.protocol === 'https:' || location.hostname === 'localhost' || location.hostname === '127.0.0.1')) {
  navigator.serviceWorker.register('sw.js').catch(() => undefined);
}

/**
 * The owner app in a real browser (Debian's Chromium driven by playwright-core; nothing downloads a
 * browser), against a real portal and real agent processes, at a phone's width (360 px):
 *
 *   Alice creates her profile in the page (shares shown once and checked), claims one thermostat by
 *   its label's QR code fed to the camera (Chromium's fake video capture from a file) and another by
 *   its typed code, sets 21 through the form made from the schema (35 cannot be submitted), invites
 *   Bob; Bob, in a second browser, opens the invitation, makes his profile, accepts and sets 19;
 *   Alice sees 19 with Bob as its source; Alice links the CLI (`mesh admin join` with the page's
 *   PIN) and the CLI lists the same devices, then the CLI adds a browser (`mesh admin add`, its PIN
 *   typed in the page) that sees them too; on a "new phone" (a fresh browser context) she recovers
 *   from 3 shares, the device obeys her, and she removes the other one. A damaged log view shows the badge. Offline, the start
 *   screen (what to do when a phone is lost) still opens, from the app's service worker.
 *
 * Every request any page makes is recorded: none carries a private key, a recovery share, a claim
 * or invitation secret or a plaintext setting, and none goes to another origin. axe-core checks each
 * screen (no serious or critical violation). With MESH_UPDATE_SCREENSHOTS=1 the screens are saved
 * into docs/owner-app/ (shown in docs/owner-app.md).
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import QRCode from 'qrcode';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startPortalProcess } from '../../harness/portal-process.js';
import { provisionDevice, readConfig, REPO, startAgentProcess, until } from '../../harness/agent-process.js';
import { b64u } from '../../mesh/bytes.js';
import { spawn } from 'node:child_process';
import { MESH_CLI, mesh, tmpHome } from '../hostile/world.js';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = process.env.MESH_UPDATE_SCREENSHOTS === '1' ? path.join(REPO, 'docs', 'owner-app') : undefined;
const AXE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const PHONE = { width: 360, height: 740 };

/** A Y4M video (what Chromium's fake camera plays) showing `text` as a QR code. */
function qrVideo(text: string, file: string): void {
  const qr = QRCode.create(text, { errorCorrectionLevel: 'M' });
  const n = qr.modules.size;
  const W = 640;
  const H = 480;
  const scale = Math.floor(400 / (n + 8));
  const x0 = Math.floor((W - n * scale) / 2);
  const y0 = Math.floor((H - n * scale) / 2);
  const y = Buffer.alloc(W * H, 235);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      if (!qr.modules.get(r, c)) continue;
      for (let dy = 0; dy < scale; dy++) y.fill(16, (y0 + r * scale + dy) * W + x0 + c * scale, (y0 + r * scale + dy) * W + x0 + (c + 1) * scale);
    }
  }
  const uv = Buffer.alloc((W / 2) * (H / 2), 128);
  const frame = Buffer.concat([Buffer.from('FRAME\n'), y, uv, uv]);
  fs.writeFileSync(file, Buffer.concat([Buffer.from(`YUV4MPEG2 W${W} H${H} F10:1 Ip A1:1 C420jpeg\n`), frame, frame]));
}

interface Sent {
  readonly url: string;
  readonly body: string;
}

/** Record every request of a context (URL and body). */
function record(ctx: BrowserContext, into: Sent[]): void {
  ctx.on('request', (r) => into.push({ url: r.url(), body: r.postData() ?? '' }));
}

async function shot(page: Page, name: string): Promise<void> {
  if (SHOTS === undefined) return;
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** axe-core on the current screen: the serious and critical violations (none expected). */
async function axe(page: Page): Promise<string[]> {
  await page.evaluate(AXE);
  const r = (await page.evaluate("axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'best-practice'] })")) as { violations: { id: string; impact: string; nodes: { target: string[] }[] }[] };
  return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.nodes.map((x) => x.target.join(' ')).join(', ')}`);
}

/** The private keys this page keeps in IndexedDB (base64url). */
async function storedSecrets(page: Page): Promise<string[]> {
  return (await page.evaluate(`new Promise((resolve, reject) => {
    const r = indexedDB.open('mesh-owner', 1);
    r.onerror = () => reject(new Error('no store'));
    r.onsuccess = () => {
      const g = r.result.transaction('kv').objectStore('kv').get('keys');
      g.onsuccess = () => resolve(g.result === undefined ? [] : [g.result.sign, g.result.enc]);
    };
  })`)) as string[];
}

/** Create a profile in the page; returns the recovery shares it showed. */
async function createProfile(page: Page, account: string, a11y: string[], shots: boolean, portal?: string): Promise<string[]> {
  await page.getByRole('button', { name: 'Create my profile' }).click();
  if (portal !== undefined) await page.getByLabel('Portal').fill(portal);
  await page.getByLabel('Account name').fill(account);
  if (shots) await shot(page, '2-create');
  a11y.push(...(await axe(page)));
  await page.getByRole('button', { name: 'Create my profile' }).click();
  await page.getByRole('heading', { name: 'Write down your recovery shares' }).waitFor();
  const shares = await page.locator('#shares code').allTextContents();
  if (shots) await shot(page, '3-shares');
  a11y.push(...(await axe(page)));
  const label = (await page.locator('label[for=check]').textContent()) ?? '';
  const n = Number(/share (\d+)/.exec(label)?.[1]);
  // a wrong share is not taken
  await page.getByLabel(/Type share/).fill(shares[n % shares.length] as string);
  await page.getByRole('button', { name: 'Done, I wrote them down' }).click();
  await page.getByText('That is not share').waitFor();
  await page.getByLabel(/Type share/).fill((shares[n - 1] as string).toLowerCase());
  await page.getByRole('button', { name: 'Done, I wrote them down' }).click();
  return shares;
}

async function setSetpoint(page: Page, v: string): Promise<void> {
  const input = page.getByLabel(/setpoint/);
  await input.fill(v);
  await page.locator('#form-thermostat button[type=submit]').click();
}

let browser: Browser | undefined;
test.after.always(async () => {
  await browser?.close();
});

test.serial('the owner app: profile, claim by camera and by code, the form, an invitation, a co-owner, the CLI linked, recovery on a new phone; no secret or setting leaves the page', async (t) => {
  t.timeout(420_000);
  const portal = await startPortalProcess({ args: ['--no-mqtt'] });
  const a = provisionDevice(portal.http, { push: false, pollIntervalMs: 200 });
  const b = provisionDevice(portal.http, { push: false, pollIntervalMs: 200 });
  const agentA = await startAgentProcess(a.dir);
  const agentB = await startAgentProcess(b.dir);
  const video = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-web-')), 'label.y4m');
  qrVideo(a.identity.labelUri, video);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${video}`],
  });
  const sent: Sent[] = [];
  const a11y: string[] = [];
  const cliHome = tmpHome('web-cli');
  try {
    // ---------------------------------------------------------------- Alice's phone
    const alice = await browser.newContext({ viewport: PHONE, permissions: ['camera'] });
    record(alice, sent);
    const page = await alice.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const first = await page.goto(portal.http + '/');
    const csp = first?.headers()['content-security-policy'] ?? '';
    t.regex(csp, /script-src 'self'/);
    t.notRegex(csp, /unsafe-inline|unsafe-eval|\*/);
    await page.getByRole('heading', { name: 'Your devices, your keys' }).waitFor();
    await shot(page, '1-start');
    a11y.push(...(await axe(page)));
    const aliceShares = await createProfile(page, 'alice', a11y, true);
    await page.getByRole('heading', { name: 'Your devices' }).waitFor();
    await page.locator('#devices[aria-busy]').waitFor({ state: 'detached' });

    // claim A by the camera
    await page.getByRole('button', { name: 'Add a device' }).click();
    await shot(page, '5-add-device');
    a11y.push(...(await axe(page)));
    await page.getByRole('button', { name: 'Scan with the camera' }).click();
    await page.getByRole('heading', { name: 'Claim this device' }).waitFor({ timeout: 30_000 });
    t.is(await page.locator('#fingerprint').textContent(), a.identity.fingerprint);
    await page.getByLabel('What do you call it?').fill('living room');
    await shot(page, '6-claim');
    a11y.push(...(await axe(page)));
    await page.getByRole('button', { name: 'Claim it' }).click();
    await page.getByRole('heading', { name: 'living room' }).waitFor({ timeout: 40_000 });
    await agentA.waitFor((e) => e.type === 'claimed' && e.account === 'alice@localhost', 20_000, 'alice claims A');

    // the form: 35 is outside the schema's range and cannot be submitted; 21 is applied
    const save = page.locator('#form-thermostat button[type=submit]');
    await page.getByLabel(/setpoint/).fill('35');
    t.true(await save.isDisabled(), 'Save is disabled while the setpoint is 35');
    const before = sent.length;
    await page.getByLabel(/setpoint/).press('Enter');
    t.is(sent.slice(before).filter((s) => s.url.includes('/Publish')).length, 0, 'nothing published for 35');
    await setSetpoint(page, '21');
    await page.getByText('Applied by the device').waitFor({ timeout: 40_000 });
    await until('21 on device A', () => readConfig(a.dir).thermostat?.setpoint === 21, 20_000);
    await shot(page, '7-device');
    a11y.push(...(await axe(page)));

    // claim B by its typed code
    await page.getByRole('button', { name: 'Back to your devices' }).click();
    await page.getByRole('button', { name: 'Add a device' }).click();
    await page.getByLabel('Code and fingerprint').fill(`${b.identity.claimCode} ${b.identity.fingerprint}`);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByLabel('What do you call it?').fill('bedroom');
    await page.getByRole('button', { name: 'Claim it' }).click();
    await page.getByRole('heading', { name: 'bedroom' }).waitFor({ timeout: 40_000 });
    await agentB.waitFor((e) => e.type === 'claimed' && e.account === 'alice@localhost', 20_000, 'alice claims B');

    // invite Bob to the living room
    await page.getByRole('button', { name: 'Back to your devices' }).click();
    await page.getByRole('link', { name: 'living room' }).click();
    await page.getByRole('button', { name: 'Invite a co-owner' }).click();
    await page.getByRole('button', { name: 'Make the invitation' }).click();
    await page.getByRole('heading', { name: 'Invitation ready' }).waitFor();
    const invitation = await page.getByLabel('Invitation link').inputValue();
    t.regex(invitation, /\/invite#code=/);
    await shot(page, '8-invitation');
    a11y.push(...(await axe(page)));

    // ---------------------------------------------------------------- Bob, another browser
    const bob = await browser.newContext({ viewport: PHONE });
    record(bob, sent);
    const bobPage = await bob.newPage();
    // an invitation names its portal with https://; this test portal speaks plain HTTP
    await bobPage.goto(invitation.replace(/^https:/, 'http:'));
    await bobPage.getByText('You opened an invitation').waitFor();
    t.false(bobPage.url().includes('code='), 'the secret leaves the address bar');
    const bobShares = await createProfile(bobPage, 'bob', a11y, false);
    await bobPage.getByRole('heading', { name: 'Accept the invitation' }).waitFor({ timeout: 30_000 });
    await bobPage.getByLabel('What do you call it?').fill('living room');
    await bobPage.getByRole('button', { name: 'Accept' }).click();
    await bobPage.getByRole('heading', { name: 'living room' }).waitFor({ timeout: 40_000 });
    await agentA.waitFor((e) => e.type === 'claimed' && e.account === 'bob@localhost', 20_000, 'bob accepted');
    await setSetpoint(bobPage, '19');
    await bobPage.getByText('Applied by the device').waitFor({ timeout: 40_000 });
    await until('19 on device A', () => readConfig(a.dir).thermostat?.setpoint === 19, 20_000);

    // Alice sees Bob's value, and that it is Bob's
    await page.getByRole('button', { name: 'Done' }).click();
    const row = page.locator('#effective-thermostat tr', { hasText: 'setpoint' });
    await until('alice sees 19 from bob', async () => {
      await page.reload();
      await page.getByRole('link', { name: 'living room' }).click();
      await page.getByRole('heading', { name: 'living room' }).waitFor();
      const text = (await row.count()) > 0 ? ((await row.textContent()) ?? '') : '';
      return text.includes('19') && text.includes('bob@localhost');
    }, 40_000);
    t.regex((await page.locator('#owners').textContent()) ?? '', /bob@localhost.*owner/);
    await shot(page, '9-co-owner');

    // ---------------------------------------------------------------- the CLI linked to Alice's browser profile
    await page.getByRole('button', { name: 'Back to your devices' }).click();
    await page.getByRole('button', { name: 'Link a computer or browser' }).click();
    await page.getByLabel('Name of the other device').fill('laptop');
    await page.getByLabel('Recovery shares, one per line').fill(aliceShares.slice(1, 4).join('\n'));
    await page.getByRole('button', { name: 'Show the PIN' }).click();
    const cmd = (await page.locator('#join-command').textContent({ timeout: 30_000 })) ?? '';
    await shot(page, '10-link');
    t.regex(cmd, /^mesh admin join --portal \S+ --account alice@localhost --pin \S+ --name laptop --master \S+$/);
    const joined = await mesh(cliHome, [...cmd.split(' ').slice(1), '--json'], 120_000);
    t.is(joined.code, 0, joined.stderr);
    await page.getByText('is now an administration device').waitFor({ timeout: 40_000 });
    const list = await mesh(cliHome, ['device', 'list', '--json']);
    t.is(list.code, 0, list.stderr);
    t.deepEqual((list.json as { devices: { name: string }[] }).devices.map((d) => d.name).sort(), ['bedroom', 'living room']);

    // ---------------------------------------------------------------- and the other way: the CLI adds a browser
    const add = spawn(process.execPath, [MESH_CLI, '--home', cliHome, 'admin', 'add', '--name', 'tablet', '--json', ...aliceShares.slice(0, 3).flatMap((x) => ['--share', x])], { stdio: ['ignore', 'pipe', 'pipe'] });
    let addOut = '';
    let addErr = '';
    add.stdout.setEncoding('utf8').on('data', (d: string) => (addOut += d));
    add.stderr.setEncoding('utf8').on('data', (d: string) => (addErr += d));
    const added = new Promise<number | null>((resolve) => add.on('close', resolve));
    const pin = await until('the CLI shows a PIN', () => /"pin":"([^"]+)"/.exec(addOut)?.[1], 30_000);
    const tabletCtx = await browser.newContext({ viewport: PHONE });
    record(tabletCtx, sent);
    const tablet = await tabletCtx.newPage();
    await tablet.goto(portal.http + '/');
    await tablet.getByRole('button', { name: 'Link to a profile I already have' }).click();
    await tablet.getByLabel('Your account').fill('alice@localhost');
    await tablet.getByLabel('One-time PIN').fill(pin);
    await tablet.getByLabel('Name of this phone or browser').fill('tablet');
    a11y.push(...(await axe(tablet)));
    await tablet.getByRole('button', { name: 'Link' }).click();
    t.is(await added, 0, addErr);
    await tablet.getByRole('heading', { name: 'Your devices' }).waitFor({ timeout: 40_000 });
    await tablet.getByRole('link', { name: 'bedroom' }).waitFor({ timeout: 20_000 });
    const secretsTablet = await storedSecrets(tablet);

    // ---------------------------------------------------------------- a damaged log view shows the badge
    const secretsAlice = await storedSecrets(page);
    const secretsBob = await storedSecrets(bobPage);
    // the root of the log head this browser last verified, changed: the next check fails
    await page.evaluate(`new Promise((resolve, reject) => {
      const r = indexedDB.open('mesh-owner', 1);
      r.onsuccess = () => {
        const s = r.result.transaction('kv', 'readwrite').objectStore('kv');
        const g = s.get('state');
        g.onsuccess = () => {
          const st = g.result;
          if (st.lastTreeHead === null) return reject(new Error('no tree head kept yet'));
          st.lastTreeHead.root = 'A'.repeat(43);
          s.put(st, 'state').onsuccess = () => resolve(true);
        };
      };
    })`);
    await page.reload();
    await page.getByText('Log check failed').waitFor({ timeout: 30_000 });
    await shot(page, '11-log-badge');

    // ---------------------------------------------------------------- a new phone, recovered from 3 shares
    const phone = await browser.newContext({ viewport: PHONE });
    record(phone, sent);
    const newPage = await phone.newPage();
    await newPage.goto(portal.http + '/');
    await newPage.getByRole('button', { name: 'Recover with my recovery shares' }).click();
    await newPage.getByLabel('Your account').fill('alice@localhost');
    await newPage.getByLabel('Recovery shares, one per line').fill([aliceShares[0], aliceShares[2], aliceShares[4]].join('\n'));
    await shot(newPage, '12-recover');
    a11y.push(...(await axe(newPage)));
    await newPage.getByRole('button', { name: 'Recover' }).click();
    await newPage.getByRole('heading', { name: 'Your devices' }).waitFor({ timeout: 40_000 });
    await newPage.getByRole('link', { name: 'living room' }).waitFor({ timeout: 20_000 });
    await shot(newPage, '4-devices');
    await newPage.getByRole('link', { name: 'living room' }).click();
    // the schema came back with recovery (checked against the device's signed profile): the form has its range again
    await newPage.getByLabel(/setpoint/).fill('35');
    t.true(await newPage.locator('#form-thermostat button[type=submit]').isDisabled(), 'Save is disabled for 35 after recovery too');
    await setSetpoint(newPage, '23');
    await newPage.getByText('Applied by the device').waitFor({ timeout: 40_000 });
    await until('the device obeys the recovered phone', () => readConfig(a.dir).thermostat?.setpoint === 23, 20_000);
    // and removes the bedroom: the device forgets her
    await newPage.getByRole('button', { name: 'Back to your devices' }).click();
    await newPage.getByRole('link', { name: 'bedroom' }).click();
    await newPage.getByRole('button', { name: 'Remove this device' }).click();
    await newPage.getByRole('button', { name: 'Remove bedroom' }).click();
    await agentB.waitFor((e) => e.type === 'removed' && e.account === 'alice@localhost', 30_000, 'bedroom forgets alice');
    await newPage.getByRole('heading', { name: 'Your devices' }).waitFor({ timeout: 40_000 });
    t.is(await newPage.getByRole('link', { name: 'bedroom' }).count(), 0);
    t.deepEqual(errors, [], 'no script error in the page');

    // ---------------------------------------------------------------- offline: what needs no portal still opens
    const away = await browser.newContext({ viewport: PHONE });
    record(away, sent);
    const awayPage = await away.newPage();
    await awayPage.goto(portal.http + '/');
    t.true(await awayPage.evaluate('Promise.race([navigator.serviceWorker.ready.then(() => true), new Promise((r) => setTimeout(() => r(false), 15000))])'), 'the service worker is ready');
    await away.setOffline(true);
    await awayPage.reload();
    await awayPage.getByRole('heading', { name: 'If you lose this phone' }).waitFor({ timeout: 20_000 });
    await away.setOffline(false);

    // ---------------------------------------------------------------- what left the pages
    const origin = new URL(portal.http).origin;
    t.deepEqual(sent.filter((s) => new URL(s.url).origin !== origin).map((s) => s.url), [], 'no request to another origin');
    const invSecret = new URL(invitation).hash;
    const label = new URL(a.identity.labelUri).hash;
    const secrets = [
      ...secretsAlice,
      ...secretsBob,
      ...secretsTablet,
      ...aliceShares,
      ...bobShares,
      ...[...aliceShares, ...bobShares].map((s) => s.replace(/-/g, '')),
      a.identity.claimCode,
      b.identity.claimCode,
      b64u(a.identity.claimSecret),
      b64u(b.identity.claimSecret),
      label.slice(1),
      invSecret.slice(1),
      new URLSearchParams(invSecret.slice(1)).get('code') ?? 'no code in the invitation',
    ];
    t.true(secretsAlice.length === 2 && secretsBob.length === 2 && secretsTablet.length === 2, 'read the keys kept in the browsers');
    const plain = ['"setpoint"', 'setpoint', '"mode"'];
    const leaks: string[] = [];
    for (const s of sent) {
      const text = `${s.url}\n${s.body}`;
      for (const x of [...secrets, ...plain]) if (x.length > 0 && text.toLowerCase().includes(x.toLowerCase())) leaks.push(`${x.slice(0, 12)}... in ${s.url}`);
    }
    t.true(sent.filter((s) => s.body.length > 0).length > 20, `inspected ${sent.length} requests`);
    t.deepEqual(leaks, []);
    t.deepEqual(a11y, [], 'axe-core: no serious or critical violation');
  } finally {
    await agentA.stop();
    await agentB.stop();
    await portal.stop();
  }
});

test.serial('the portal serves the app with a strict CSP, hands /claim and /invite to it, answers CORS; --web none keeps the static pages', async (t) => {
  const portal = await startPortalProcess({ args: ['--no-mqtt'] });
  const off = await startPortalProcess({ args: ['--no-mqtt', '--web', 'none'] });
  try {
    const app = await fetch(`${portal.http}/claim`);
    t.is(app.status, 200);
    t.regex(await app.text(), /<script defer src="app.js"><\/script>/);
    t.regex(app.headers.get('content-security-policy') ?? '', /default-src 'none'.*script-src 'self'/);
    t.is(app.headers.get('x-content-type-options'), 'nosniff');
    const js = await fetch(`${portal.http}/app.js`);
    t.regex(js.headers.get('content-type') ?? '', /javascript/);
    // another origin (the app on a static host) may call the protocol, with a preflight
    const pre = await fetch(`${portal.http}/.well-known/mmm/Publish`, { method: 'OPTIONS', headers: { origin: 'https://static.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' } });
    t.is(pre.status, 204);
    t.is(pre.headers.get('access-control-allow-origin'), '*');
    t.regex(pre.headers.get('access-control-allow-headers') ?? '', /authorization/);
    const hello = await fetch(`${portal.http}/.well-known/mmm/Hello`, { headers: { origin: 'https://static.example' } });
    t.is(hello.headers.get('access-control-allow-origin'), '*');
    const none = await fetch(`${off.http}/claim`);
    t.regex(await none.text(), /mesh device claim/);
    t.is((await fetch(`${off.http}/`)).status, 404);
  } finally {
    await portal.stop();
    await off.stop();
  }
});

test.serial('the app from another origin (a static host) and from a local file works with the portal through CORS; the keyboard alone makes a profile', async (t) => {
  const portal = await startPortalProcess({ args: ['--no-mqtt'] });
  const dir = path.join(REPO, 'dist', 'web');
  // a plain static host: the app's files, no headers of its own
  const host = http.createServer((req, res) => {
    const name = path.basename(new URL(req.url ?? '/', 'http://x').pathname) || 'index.html';
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': name.endsWith('.js') ? 'text/javascript' : name.endsWith('.css') ? 'text/css' : 'text/html' }).end(fs.readFileSync(file));
  });
  await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve));
  const origin = `http://localhost:${(host.address() as AddressInfo).port}`;
  const b = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const ctx = await b.newContext({ viewport: PHONE });
    const page = await ctx.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${origin}/`);
    await createProfile(page, 'carol', [], false, portal.http);
    await page.getByRole('heading', { name: 'Your devices' }).waitFor({ timeout: 30_000 });
    await page.getByText('Log checked').waitFor({ timeout: 30_000 });
    // the keyboard alone: Tab to a control, Enter to use it
    const keys = await (await b.newContext({ viewport: PHONE })).newPage();
    await keys.goto(`${origin}/`);
    const tabTo = async (text: string): Promise<void> => {
      for (let i = 0; i < 12; i++) {
        await keys.keyboard.press('Tab');
        const at = (await keys.evaluate("(document.activeElement?.labels?.[0]?.textContent ?? document.activeElement?.textContent ?? '').trim()")) as string;
        if (at.startsWith(text)) return;
      }
      throw new Error(`Tab never reached "${text}"`);
    };
    await keys.getByRole('heading', { name: 'Your devices, your keys' }).waitFor();
    await tabTo('Create my profile');
    await keys.keyboard.press('Enter');
    await keys.getByRole('heading', { name: 'Create your profile' }).waitFor();
    await tabTo('Portal');
    await keys.keyboard.press('Control+A');
    await keys.keyboard.type(portal.http);
    await tabTo('Account name');
    await keys.keyboard.type('erin');
    await keys.keyboard.press('Enter');
    await keys.getByRole('heading', { name: 'Write down your recovery shares' }).waitFor({ timeout: 30_000 });

    // and opened as a local file
    const local = await (await b.newContext({ viewport: PHONE })).newPage();
    local.on('pageerror', (e) => errors.push(e.message));
    await local.goto(`file://${path.join(dir, 'index.html')}`);
    await createProfile(local, 'dave', [], false, portal.http);
    await local.getByRole('heading', { name: 'Your devices' }).waitFor({ timeout: 30_000 });
    await local.getByText('Log checked').waitFor({ timeout: 30_000 });
    t.deepEqual(errors, []);
  } finally {
    await b.close();
    host.close();
    await portal.stop();
  }
});

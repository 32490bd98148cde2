/**
 * Fuzzing a REAL portal process from outside: generated and mutated JSON bodies thrown at every
 * POST transaction (with the session each needs, so the body reaches the parser and the
 * verifiers behind it), junk queries at the GET transactions, and garbage at the embedded MQTT
 * broker (junk credentials, malformed and mutated packets, publishes and subscriptions a device
 * may not make). The property: every answer is below 500, and every refusal is a JSON
 * `{"error":{"code","message"}}` with a known code and a 4xx status; the portal stays alive and
 * healthy. Used by test/hostile/fuzz-portal.test.ts (short) and scripts/fuzz-long.ts (long).
 */
import * as http from 'node:http';
import * as net from 'node:net';
import fc from 'fast-check';
import { PortalClient } from '../client/portal-client.js';
import { b64u } from '../mesh/bytes.js';
import { isMeshErrorCode } from '../mesh/errors.js';
import { deriveClaimSecrets, sealClaimBlob } from '../mesh/claim.js';
import { newDeviceIdentity, type DeviceIdentity } from '../mesh/device.js';
import { createClaim, createJoin, createRemove, createSession, createStatus } from '../mesh/messages.js';
import { PATHS, deviceTopic, parseFeedItem } from '../mesh/protocol.js';
import * as c from '../mesh/crypto.js';
import { buildExamples } from './protocol-examples.js';
import { BYTE_OPS, inputFor, mutateBytes, mutateText, type FuzzTarget } from './fuzz-targets.js';
import { TestOwner } from './owner.js';
import { startPortalProcess } from './portal-process.js';

export interface Answer {
  readonly status: number;
  readonly body: string;
}

/** One raw HTTP exchange (no client-side checks: the portal gets exactly these bytes). */
export function raw(base: string, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Answer> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
    const h: Record<string, string> = { ...headers };
    if (data !== undefined && h['content-length'] === undefined) h['content-length'] = String(data.length);
    const req = http.request({ hostname: u.hostname, port: u.port, path, method, headers: h, agent: keepAlive, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (ch: Buffer) => chunks.push(ch));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer to ${method} ${path} in 30 s`)));
    req.on('error', reject);
    req.end(data);
  });
}
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 16 });

/** Why an answer breaks the property, or undefined. */
export function judge(a: Answer): string | undefined {
  if (a.status >= 500) return `HTTP ${a.status}: ${a.body.slice(0, 300)}`;
  if (a.status < 200) return `HTTP ${a.status}`;
  let j: unknown;
  try {
    j = JSON.parse(a.body);
  } catch {
    return `HTTP ${a.status} with a body that is not JSON: ${a.body.slice(0, 200)}`;
  }
  if (a.status >= 400) {
    const e = (j as { error?: { code?: unknown; message?: unknown } }).error;
    if (!isMeshErrorCode(e?.code)) return `HTTP ${a.status} without a known error code: ${a.body.slice(0, 200)}`;
    if (typeof e.message !== 'string') return `HTTP ${a.status} without an error message`;
  }
  return undefined;
}

export function codeOf(a: Answer): string {
  if (a.status < 400) return 'ok';
  try {
    return String((JSON.parse(a.body) as { error: { code: string } }).error.code);
  } catch {
    return `http-${a.status}`;
  }
}

// ---------------------------------------------------------------- the world the bodies are aimed at

export interface FuzzWorld {
  readonly http: string;
  readonly mqtt: string | null;
  readonly alice: TestOwner;
  readonly device: DeviceIdentity;
  readonly ownerToken: string;
  readonly deviceToken: string;
  /** per POST transaction: the session it needs and valid bodies (live ones and the protocol examples) */
  readonly routes: readonly { readonly name: string; readonly path: string; readonly token: string | undefined; readonly seeds: readonly unknown[] }[];
  readonly examples: ReturnType<typeof buildExamples>;
}

function registerBody(d: DeviceIdentity): unknown {
  const secrets = deriveClaimSecrets(d.claimSecret);
  return {
    device: d.profile,
    endorsement: d.endorsement,
    claim: { id: secrets.claimId, blob: sealClaimBlob(secrets, { profile: d.profile, endorsement: d.endorsement }), portalKey: b64u(secrets.portalKey) },
    request: createSession(d.keys.auth, d.id),
  };
}

export async function fuzzWorld(portal: { http: string; mqtt: string | null }): Promise<FuzzWorld> {
  const x = buildExamples();
  const alice = await TestOwner.create(portal.http, 'alice');
  const device = newDeviceIdentity({ model: 'thermostat', manufacturer: 'acme', serial: 'fz-1', portalAuthority: new URL(portal.http).host });
  const dc = new PortalClient({ url: portal.http });
  const deviceToken = await dc.register(registerBody(device) as never);
  dc.close();
  await alice.claim(device.labelUri);
  await alice.publish('thermostat', { setpoint: 20 });
  const ownerToken = alice.client.currentToken ?? (await alice.client.openSession());
  const w = x.wire;
  const secrets = deriveClaimSecrets(device.claimSecret);
  const other = newDeviceIdentity({ model: 'thermostat', manufacturer: 'acme', serial: 'fz-2', portalAuthority: 'x' });
  const admin = { name: 'phone', sign: c.ed25519KeyPair(), enc: c.x25519KeyPair() };
  const routes = [
    { name: 'Session', path: PATHS.session, token: undefined, seeds: [w.sessionRequest, w.ownerSessionRequest, { request: createSession(alice.admin.sign, alice.account) }, { request: createSession(device.keys.auth, device.id) }] },
    { name: 'Register', path: PATHS.register, token: undefined, seeds: [w.registerRequest, registerBody(device), registerBody(other)] },
    { name: 'BindAccount', path: PATHS.bindAccount, token: undefined, seeds: [w.bindAccountRequest] },
    { name: 'Publish', path: PATHS.publish, token: ownerToken, seeds: [w.publishRequest, { object: alice.applicationProfile('thermostat', { setpoint: 21 }, { seq: 1_000_000 }) }, { object: alice.masterEnvelope }] },
    { name: 'Claim', path: PATHS.claim, token: ownerToken, seeds: [w.claimRequest, { id: secrets.claimId, object: createClaim(alice.admin.sign, secrets, { device: device.id, master: alice.masterId, account: alice.account }) }] },
    { name: 'Post', path: PATHS.post, token: ownerToken, seeds: [w.postRequest, { device: other.id, object: createRemove(alice.admin.sign, { device: other.id, master: alice.masterId }) }] },
    { name: 'Status', path: PATHS.status, token: deviceToken, seeds: [w.statusRequest, { object: createStatus(device.keys.sign, { seq: 1, lastContact: new Date().toISOString(), owners: [], errors: [] }) }] },
    { name: 'Join', path: PATHS.join, token: undefined, seeds: [w.joinRequest, { object: createJoin(admin, alice.account, '1234-5678') }] },
  ];
  return { http: portal.http, mqtt: portal.mqtt, alice, device, ownerToken, deviceToken, routes, examples: x };
}

// ---------------------------------------------------------------- generated requests

export interface FuzzRequest {
  readonly method: string;
  readonly path: string;
  readonly body?: string;
  readonly headers: Record<string, string>;
  /** for reports */
  readonly what: string;
}

function toText(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  try {
    const s = JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? Number(x) : x));
    return s ?? 'null';
  } catch {
    return String(v as string);
  }
}

const GETS = [PATHS.hello, PATHS.download, PATHS.account, PATHS.claimLookup, PATHS.deviceStatus, PATHS.treeHead, PATHS.inclusion, PATHS.consistency, PATHS.entry];
const QUERY_NAMES = ['since', 'wait', 'id', 'index', 'size', 'from', 'to', 'x'];
const junkQueryValue = fc.oneof(fc.nat().map(String), fc.integer().map(String), fc.constantFrom('', '-1', '1e3', '9007199254740993', '99999999999999999', 'NaN', '0x10', '%201', '%00', '%ff'), fc.string({ maxLength: 20 }).map(encodeURIComponent));

/** An arbitrary request: mostly a generated or mutated body for one POST transaction, with its session. */
export function requestArb(w: FuzzWorld): fc.Arbitrary<FuzzRequest> {
  const posts = w.routes.map((r) => {
    const t: FuzzTarget = { name: r.name, input: 'value', seeds: r.seeds, run: () => undefined };
    const values = inputFor(t, w.examples).map(toText);
    const texts = fc
      .tuple(fc.nat({ max: r.seeds.length - 1 }), fc.constantFrom(...BYTE_OPS), fc.nat(), fc.nat(), fc.string({ maxLength: 12 }))
      .map(([i, op, a, n, ins]) => mutateText(JSON.stringify(r.seeds[i]), op, a, n, ins));
    const tokens = fc.constantFrom<string | undefined>(r.token, r.token, r.token, r.token, r.token, r.token, undefined, w.ownerToken, w.deviceToken, 'junk-token');
    return fc.tuple(fc.oneof({ weight: 3, arbitrary: values }, { weight: 1, arbitrary: texts }), tokens).map(([body, token]): FuzzRequest => ({
      method: 'POST',
      path: r.path,
      body,
      headers: { 'content-type': 'application/json', ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}) },
      what: `${r.name} ${body.slice(0, 160)}`,
    }));
  });
  const gets = fc
    .tuple(fc.constantFrom(...GETS), fc.array(fc.tuple(fc.constantFrom(...QUERY_NAMES), junkQueryValue), { maxLength: 3 }), fc.constantFrom<string | undefined>(w.ownerToken, w.deviceToken, undefined))
    .map(([p, q, token]): FuzzRequest => ({
      method: 'GET',
      path: p + (q.length > 0 ? `?${q.map(([k, v]) => `${k}=${v}`).join('&')}` : ''),
      headers: token !== undefined ? { authorization: `Bearer ${token}` } : {},
      what: `GET ${p}`,
    }));
  const odd = fc.constantFrom<FuzzRequest>(
    { method: 'GET', path: PATHS.publish, headers: {}, what: 'GET on a POST transaction' },
    { method: 'POST', path: PATHS.hello, body: '{}', headers: {}, what: 'POST on a GET transaction' },
    { method: 'PUT', path: PATHS.publish, body: '{}', headers: {}, what: 'PUT' },
    { method: 'POST', path: '/.well-known/mmm/Nope', body: '{}', headers: {}, what: 'unknown transaction' },
    { method: 'POST', path: PATHS.publish, body: '{}', headers: { authorization: 'Bearer ' + 'A'.repeat(500) }, what: 'huge token' },
    { method: 'POST', path: PATHS.publish, body: '{}', headers: { authorization: 'Basic YTpi' }, what: 'basic auth' },
    { method: 'POST', path: PATHS.session, body: '', headers: {}, what: 'empty body' },
    { method: 'POST', path: PATHS.session, body: '\u0000\u0001\u0002', headers: {}, what: 'binary body' },
    { method: 'POST', path: PATHS.session, body: '{"request":' + '['.repeat(100_000) + ']'.repeat(100_000) + '}', headers: {}, what: 'deep nesting' },
    { method: 'POST', path: PATHS.register, body: 'x'.repeat(1024 * 1024 + 10), headers: {}, what: 'body over the limit' },
    { method: 'POST', path: PATHS.join, body: JSON.stringify({ object: { payload: 'A'.repeat(900_000), sigs: [] } }), headers: {}, what: 'large payload' },
    { method: 'GET', path: '/healthz?x=1', headers: {}, what: 'healthz' },
    { method: 'POST', path: '/metrics', body: '', headers: {}, what: 'POST metrics' },
  );
  return fc.oneof({ weight: 16, arbitrary: fc.oneof(...posts) }, { weight: 3, arbitrary: gets }, { weight: 1, arbitrary: odd });
}

export interface HttpStats {
  requests: number;
  statuses: Record<string, number>;
  codes: Record<string, number>;
  serverErrors: number;
  badAnswers: number;
  failures: string[];
}

export function newStats(): HttpStats {
  return { requests: 0, statuses: {}, codes: {}, serverErrors: 0, badAnswers: 0, failures: [] };
}

/** Send `n` generated requests (8 in flight), judging each answer. */
export async function throwRequests(w: FuzzWorld, n: number, seed: number, stats: HttpStats, onBatch?: (done: number) => void): Promise<void> {
  const arb = requestArb(w);
  const BATCH = 400;
  for (let done = 0, b = 0; done < n; b++) {
    const reqs = fc.sample(arb, { numRuns: Math.min(BATCH, n - done), seed: (seed + b * 7919) | 0 });
    let i = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (i < reqs.length) {
          const r = reqs[i++] as FuzzRequest;
          let a: Answer;
          try {
            a = await raw(w.http, r.method, r.path, r.body, r.headers);
          } catch (e) {
            // a refused oversized body may be cut by the portal after its 413: that is not a failure
            if (r.what === 'body over the limit') continue;
            stats.badAnswers++;
            if (stats.failures.length < 10) stats.failures.push(`${r.what}: no answer (${(e as Error).message})`);
            continue;
          }
          stats.requests++;
          const cls = `${Math.floor(a.status / 100)}xx`;
          stats.statuses[cls] = (stats.statuses[cls] ?? 0) + 1;
          const code = codeOf(a);
          stats.codes[code] = (stats.codes[code] ?? 0) + 1;
          const why = judge(a);
          if (why !== undefined) {
            if (a.status >= 500) stats.serverErrors++;
            else stats.badAnswers++;
            if (stats.failures.length < 10) stats.failures.push(`${r.what}: ${why}`);
          }
        }
      }),
    );
    done += reqs.length;
    onBatch?.(done);
  }
}

// ---------------------------------------------------------------- MQTT garbage

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n & 0xffff);
  return b;
}
function mstr(s: string | Buffer): Buffer {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8');
  return Buffer.concat([u16(b.length), b]);
}
function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let d = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) d |= 0x80;
    out.push(d);
  } while (n > 0);
  return Buffer.from(out);
}
function packet(type: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([type]), varint(body.length), body]);
}

/** An MQTT 3.1.1 CONNECT packet. */
export function connectPacket(clientId: string, username?: string, password?: string): Buffer {
  const flags = 0x02 | (username !== undefined ? 0x80 : 0) | (password !== undefined ? 0x40 : 0);
  const vh = Buffer.concat([mstr('MQTT'), Buffer.from([4, flags, 0, 30])]);
  const payload = Buffer.concat([mstr(clientId), ...(username !== undefined ? [mstr(username)] : []), ...(password !== undefined ? [mstr(password)] : [])]);
  return packet(0x10, Buffer.concat([vh, payload]));
}

function publishPacket(topic: string, payload: Buffer): Buffer {
  return packet(0x30, Buffer.concat([mstr(topic), payload]));
}

/** Write bytes to the broker and wait until it closes the connection (or 400 ms). Resolves with what it answered. */
export function mqttRaw(url: string, bytes: readonly Buffer[]): Promise<Buffer> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    const s = net.connect(Number(u.port), u.hostname, () => {
      for (const b of bytes) s.write(b);
    });
    const t = setTimeout(() => s.destroy(), 400);
    s.on('data', (d: Buffer) => got.push(d));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(t);
      resolve(Buffer.concat(got));
    });
  });
}

/** The junk the broker gets: raw garbage, mutated CONNECTs, junk credentials, and, once authenticated, forbidden publishes. */
export function mqttJunkArb(w: FuzzWorld): fc.Arbitrary<{ what: string; bytes: Buffer[] }> {
  const validPw = (): string => JSON.stringify(createSession(w.device.keys.auth, w.device.id));
  const good = connectPacket('fz-good', w.device.id, 'PLACEHOLDER');
  const rawJunk = fc.uint8Array({ minLength: 1, maxLength: 300 }).map((b) => ({ what: 'random bytes', bytes: [Buffer.from(b)] }));
  const mutated = fc
    .tuple(fc.constantFrom(...BYTE_OPS), fc.nat(), fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 8 }))
    .map(([op, a, n, ins]) => ({ what: `mutated CONNECT (${op})`, bytes: [Buffer.from(mutateBytes(good, op, a, n, ins))] }));
  const creds = fc
    .tuple(fc.option(fc.string({ maxLength: 80 })), fc.option(fc.oneof(fc.string({ maxLength: 200 }), fc.json({ maxDepth: 3 }))), fc.boolean())
    .map(([u, p, udf]) => ({ what: 'junk credentials', bytes: [connectPacket(`fz-${Math.random().toString(36).slice(2)}`, udf ? w.device.id : (u ?? undefined), p ?? undefined)] }));
  const forged = fc.constant(null).map(() => {
    // a session for this device, but with the signature of another key
    const env = createSession(w.alice.admin.sign, w.device.id);
    return { what: 'session signed by another key', bytes: [connectPacket('fz-forged', w.device.id, JSON.stringify(env))] };
  });
  const noConnect = fc.tuple(fc.string({ maxLength: 60 }), fc.uint8Array({ maxLength: 200 })).map(([topic, p]) => ({ what: 'PUBLISH before CONNECT', bytes: [publishPacket(topic, Buffer.from(p))] }));
  const huge = fc.constantFrom<{ what: string; bytes: Buffer[] }>(
    { what: 'remaining length 268 MB', bytes: [Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f, 0, 4])] },
    { what: 'remaining length varint too long', bytes: [Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])] },
    { what: 'reserved packet type 0', bytes: [Buffer.from([0x00, 0x00])] },
    { what: 'reserved packet type 15', bytes: [Buffer.from([0xf0, 0x00])] },
    { what: 'two CONNECTs', bytes: [connectPacket('fz-2a'), connectPacket('fz-2b')] },
  );
  const authedJunk = fc.tuple(fc.oneof(fc.constant(deviceTopic(w.device.id)), fc.constant('#'), fc.constant('mmm/v1/device/+'), fc.string({ maxLength: 60 })), fc.uint8Array({ maxLength: 400 })).map(([topic, p]) => ({
    what: `authenticated device publishes to ${topic.slice(0, 40)}`,
    bytes: [connectPacket(`fz-dev-${Math.random().toString(36).slice(2)}`, w.device.id, validPw()), publishPacket(topic, Buffer.from(p))],
  }));
  return fc.oneof(rawJunk, mutated, creds, forged, noConnect, huge, authedJunk);
}

export async function throwMqttJunk(w: FuzzWorld, n: number, seed: number): Promise<{ sent: number; kinds: Record<string, number> }> {
  if (w.mqtt === null) return { sent: 0, kinds: {} };
  const kinds: Record<string, number> = {};
  const arb = mqttJunkArb(w);
  for (let done = 0, b = 0; done < n; b++) {
    const batch = fc.sample(arb, { numRuns: Math.min(50, n - done), seed: (seed + b * 104729) | 0 });
    await Promise.all(batch.map((j) => mqttRaw(w.mqtt as string, j.bytes)));
    for (const j of batch) {
      const k = j.what.split(' (')[0]?.split(' to ')[0] ?? j.what;
      kinds[k] = (kinds[k] ?? 0) + 1;
    }
    done += batch.length;
  }
  return { sent: n, kinds };
}

/** A real device session on the broker still works: it subscribes and hears the owner's next publication. */
export async function pushStillWorks(w: FuzzWorld): Promise<boolean> {
  if (w.mqtt === null) return true;
  const { connectAsync } = await import('mqtt');
  const client = await connectAsync(w.mqtt, { username: w.device.id, password: JSON.stringify(createSession(w.device.keys.auth, w.device.id)), reconnectPeriod: 0, connectTimeout: 5000, clientId: `fz-check-${Date.now()}` });
  try {
    const heard = new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 10_000);
      client.on('message', (_topic, payload) => {
        try {
          const item = parseFeedItem(JSON.parse(payload.toString('utf8')));
          if (item.kind === 'application') {
            clearTimeout(t);
            resolve(true);
          }
        } catch {
          // keep listening
        }
      });
    });
    await client.subscribeAsync(deviceTopic(w.device.id), { qos: 1 });
    await w.alice.publish('thermostat', { setpoint: 22 });
    return await heard;
  } finally {
    await client.endAsync(true);
  }
}

export async function healthy(base: string): Promise<{ ok: boolean; body: string }> {
  try {
    const a = await raw(base, 'GET', '/healthz');
    return { ok: a.status === 200 && (JSON.parse(a.body) as { ok: boolean }).ok, body: a.body };
  } catch (e) {
    return { ok: false, body: String(e) };
  }
}

// ---------------------------------------------------------------- the long run (scripts/fuzz-long.ts)

export interface HttpSummary {
  readonly requests: number;
  readonly seconds: number;
  readonly statuses: Record<string, number>;
  readonly codes: Record<string, number>;
  readonly serverErrors: number;
  readonly badAnswers: number;
  readonly mqttJunk: number;
  readonly alive: boolean;
  readonly examples: string[];
}

export async function fuzzPortalLong(n: number, seed: number, progress: (line: string) => void): Promise<HttpSummary> {
  const portal = await startPortalProcess({ timeoutMs: 30_000 });
  const started = Date.now();
  try {
    const w = await fuzzWorld(portal);
    const stats = newStats();
    await throwRequests(w, n, seed, stats, (done) => {
      if (done % 10_000 < 400) progress(`  [portal over HTTP] ${done.toLocaleString('en-US')}/${n.toLocaleString('en-US')} requests, 5xx ${stats.serverErrors}, bad ${stats.badAnswers}\n`);
    });
    const junk = await throwMqttJunk(w, Math.max(200, Math.floor(n / 50)), seed);
    progress(`  [portal MQTT] ${junk.sent} junk connections: ${JSON.stringify(junk.kinds)}\n`);
    const h = await healthy(portal.http);
    const push = await pushStillWorks(w);
    w.alice.close();
    return {
      requests: stats.requests,
      seconds: Math.round((Date.now() - started) / 1000),
      statuses: stats.statuses,
      codes: stats.codes,
      serverErrors: stats.serverErrors + (portal.logs().includes('"uncaught exception"') ? 1 : 0),
      badAnswers: stats.badAnswers,
      mqttJunk: junk.sent,
      alive: h.ok && push && portal.proc.exitCode === null,
      examples: stats.failures,
    };
  } finally {
    await portal.stop();
  }
}

/**
 * Per-device push authorization on NATS (its MQTT interface), without a callout service: NATS
 * "operator mode" (decentralized JWT auth, nats-server >= 2.2). An operator key signs an account;
 * the account key (held by the portal) signs a short-lived **bearer** user JWT per device, which
 * the device presents as its MQTT password. nats-server checks the chain (operator -> account ->
 * user) and enforces the user JWT's permissions on the MQTT topics, converted to NATS subjects
 * (`mmm/v1/device/X` is `mmm.v1.device.X`):
 *
 * - a device: subscribe to its own topic only; publish nothing; until the JWT expires (its
 *   session's expiry);
 * - the portal: publish on every device topic; subscribe to nothing.
 *
 * MQTT cannot sign the server's nonce, so these JWTs are bearer tokens (`bearer_token: true`):
 * whoever holds one can use it until it expires, which is why each is scoped to one device topic
 * and lives no longer than the portal session it came with.
 *
 * Formats (nats-io/nkeys and nats-io/jwt v2, reimplemented here in ~150 lines rather than adding
 * two dependencies): an nkey is base32 (RFC 4648, no padding) of a prefix byte, the 32-byte
 * Ed25519 public key (or seed) and a CRC-16/XMODEM, little-endian; a JWT is
 * base64url(header).base64url(claims).base64url(Ed25519 signature of the first two parts).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { b64u, fromB64u, utf8 } from '../../mesh/bytes.js';
import { ed25519KeyPair, ed25519Sign, randomBytes, type KeyPair } from '../../mesh/crypto.js';
import { fail } from '../../mesh/errors.js';
import { deviceTopic } from '../../mesh/protocol.js';
import { systemClock, type Clock } from '../../runtime/clock.js';

// ---------------------------------------------------------------- nkeys

/** nkeys prefix bytes: they make the first base32 character of a key say what it is. */
const PREFIX = { seed: 18 << 3, operator: 14 << 3, account: 0, user: 20 << 3 } as const;
type Role = 'operator' | 'account' | 'user';

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32(b: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const x of b) {
    value = (value << 8) | x;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

function unbase32(s: string): Uint8Array {
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of s) {
    const v = B32.indexOf(ch);
    if (v < 0) fail('malformed', 'an nkey must be base32');
    value = ((value << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return new Uint8Array(out);
}

/** CRC-16/XMODEM (polynomial 0x1021, initial 0), as nkeys appends it. */
function crc16(b: Uint8Array): number {
  let crc = 0;
  for (const x of b) {
    crc ^= x << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

function withCrc(raw: Uint8Array): string {
  const c = crc16(raw);
  const out = new Uint8Array(raw.length + 2);
  out.set(raw);
  out[raw.length] = c & 0xff;
  out[raw.length + 1] = c >>> 8;
  return base32(out);
}

/** The public nkey of an Ed25519 public key: 'O...', 'A...' or 'U...'. */
export function publicNkey(role: Role, publicKey: Uint8Array): string {
  const raw = new Uint8Array(33);
  raw[0] = PREFIX[role];
  raw.set(publicKey, 1);
  return withCrc(raw);
}

/** A seed as nkeys writes it ('SO...', 'SA...', 'SU...'): the secret to keep in a 0600 file. */
export function seedNkey(role: Role, seed: Uint8Array): string {
  const raw = new Uint8Array(34);
  raw[0] = PREFIX.seed | (PREFIX[role] >> 5);
  raw[1] = (PREFIX[role] & 31) << 3;
  raw.set(seed, 2);
  return withCrc(raw);
}

/** An nkey seed back to its role and key pair; `malformed` for anything else (a wrong checksum included). */
export function parseSeedNkey(text: string): { role: Role; key: KeyPair } {
  const t = text.trim();
  if (!/^S[OAU][A-Z2-7]{56}$/.test(t)) fail('malformed', 'an nkey seed is 58 base32 characters starting SO, SA or SU');
  const all = unbase32(t);
  const raw = all.subarray(0, 34);
  const crc = (all[34] as number) | ((all[35] as number) << 8);
  if (crc16(raw) !== crc) fail('malformed', 'the nkey seed has a wrong checksum');
  const prefix = (((raw[0] as number) & 7) << 5) | ((raw[1] as number) >> 3);
  const role = (Object.keys(PREFIX) as (keyof typeof PREFIX)[]).find((k) => k !== 'seed' && PREFIX[k] === prefix) as Role | undefined;
  if (role === undefined) fail('malformed', 'the nkey seed is not an operator, account or user seed');
  return { role, key: ed25519KeyPair(raw.slice(2)) };
}

// ---------------------------------------------------------------- JWTs

const HEADER = b64u(utf8(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' })));

/** A NATS JWT (v2) with `claims`, issued by `issuer` (its role names the `iss` key). */
function jwt(issuer: { role: Role; key: KeyPair }, claims: Record<string, unknown>, clock: Clock): string {
  const body: Record<string, unknown> = { jti: '', iat: Math.floor(clock.now() / 1000), iss: publicNkey(issuer.role, issuer.key.publicKey), ...claims };
  // jti as nats-io/jwt sets it: base32 of SHA-512/256 of the claims with an empty jti
  body.jti = base32(createHash('sha512-256').update(JSON.stringify(body)).digest());
  const payload = b64u(utf8(JSON.stringify(body)));
  const sig = ed25519Sign(issuer.key.privateKey, utf8(`${HEADER}.${payload}`));
  return `${HEADER}.${payload}.${b64u(sig)}`;
}

/** The claims of a JWT (not verified: for tests and diagnostics). */
export function jwtClaims(token: string): Record<string, unknown> {
  const part = token.split('.')[1] ?? fail('malformed', 'not a JWT');
  return JSON.parse(Buffer.from(fromB64u(part, 'JWT claims')).toString('utf8')) as Record<string, unknown>;
}

const UNLIMITED = { subs: -1, data: -1, payload: -1 };

/** MQTT topic -> NATS subject, for the topics the portal uses (no '.', no wildcards in them). */
export function mqttSubject(topic: string): string {
  if (/[.\s*>#+]/.test(topic)) fail('malformed', `the MQTT topic ${topic} has characters this mapping does not cover`);
  return topic.split('/').join('.');
}

export interface Permissions {
  readonly pub: { readonly allow?: readonly string[]; readonly deny?: readonly string[] };
  readonly sub: { readonly allow?: readonly string[]; readonly deny?: readonly string[] };
}

/** A bearer user JWT signed by the account: `name` for logs, its permissions, its expiry. */
export function userJwt(account: KeyPair, o: { name: string; permissions: Permissions; expiresMs?: number }, clock: Clock = systemClock): string {
  const user = publicNkey('user', ed25519KeyPair(randomBytes(32)).publicKey);
  return jwt(
    { role: 'account', key: account },
    {
      name: o.name,
      sub: user,
      ...(o.expiresMs !== undefined ? { exp: Math.floor(o.expiresMs / 1000) } : {}),
      nats: { pub: o.permissions.pub, sub: o.permissions.sub, ...UNLIMITED, bearer_token: true, type: 'user', version: 2 },
    },
    clock,
  );
}

// ---------------------------------------------------------------- the authority

/** Keys for a NATS deployment that carries the mesh's push: operator, mesh account, system account. */
export interface NatsAuthority {
  readonly operator: KeyPair;
  readonly account: KeyPair;
  readonly system: KeyPair;
}

export function newNatsAuthority(): NatsAuthority {
  return { operator: ed25519KeyPair(), account: ed25519KeyPair(), system: ed25519KeyPair() };
}

/**
 * The nats-server configuration lines that trust this authority: the operator JWT, the system
 * account, and both account JWTs preloaded in a memory resolver (no account server to run). The
 * mesh account has JetStream (the MQTT interface keeps its sessions there).
 */
export function natsServerAuthConfig(a: NatsAuthority, clock: Clock = systemClock): string {
  const op = { role: 'operator' as const, key: a.operator };
  const opKey = publicNkey('operator', a.operator.publicKey);
  const acc = publicNkey('account', a.account.publicKey);
  const sys = publicNkey('account', a.system.publicKey);
  const operatorJwt = jwt(op, { name: 'mesh', sub: opKey, nats: { system_account: sys, type: 'operator', version: 2 } }, clock);
  const limits = { ...UNLIMITED, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };
  const accountJwt = jwt(op, {
    name: 'MESH',
    sub: acc,
    nats: { limits: { ...limits, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 }, default_permissions: { pub: {}, sub: {} }, type: 'account', version: 2 },
  }, clock);
  const systemJwt = jwt(op, { name: 'SYS', sub: sys, nats: { limits: { ...limits, mem_storage: 0, disk_storage: 0, streams: 0, consumer: 0 }, default_permissions: { pub: {}, sub: {} }, type: 'account', version: 2 } }, clock);
  return [
    '# mesh push authorization (operator mode): generated by mesh-portal nats-auth',
    `operator: ${JSON.stringify(operatorJwt)}`,
    `system_account: ${sys}`,
    'resolver: MEMORY',
    'resolver_preload: {',
    `  ${acc}: ${JSON.stringify(accountJwt)}`,
    `  ${sys}: ${JSON.stringify(systemJwt)}`,
    '}',
    '',
  ].join('\n');
}

/** What the portal mints with the account key it holds. */
export interface PushCredentials {
  /** the portal's own MQTT password: publish on every device topic, for a day (renewed at each connection) */
  portal(): string;
  /** a device's MQTT password: subscribe to its own topic, until `expiresMs` */
  device(deviceTopic: string, deviceId: string, expiresMs: number): string;
}

export function pushCredentials(account: KeyPair, topicRoot: string, clock: Clock = systemClock): PushCredentials {
  return {
    portal: () => userJwt(account, { name: 'mesh-portal', expiresMs: clock.now() + 24 * 3600_000, permissions: { pub: { allow: [`${mqttSubject(topicRoot)}.*`] }, sub: { deny: ['>'] } } }, clock),
    device: (topic, deviceId, expiresMs) => userJwt(account, { name: deviceId, expiresMs, permissions: { pub: { deny: ['>'] }, sub: { allow: [mqttSubject(topic), '$MQTT.sub.>'] } } }, clock),
  };
}

/** The portal's credentials from an account seed file (0600; `usage` if it is not an account seed). */
export function loadPushCredentials(file: string, clock: Clock = systemClock): PushCredentials {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    return fail('usage', `cannot read the NATS account seed ${file}: ${(e as Error).message}`);
  }
  const { role, key } = parseSeedNkey(text);
  if (role !== 'account') fail('usage', `${file} holds a ${role} seed; the portal needs the account seed (SA...)`);
  return pushCredentials(key, deviceTopic('').replace(/\/$/, ''), clock);
}

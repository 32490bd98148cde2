/**
 * The Mesh Portal Protocol (mmm) over HTTP: JSON bodies, transactions under /.well-known/mmm/.
 * This file is the contract between the portal and its clients (agent, owner CLI):
 * paths, request and response shapes, and their parsers. docs/protocol.md shows each with
 * a real example.
 *
 * Authentication: `Authorization: Bearer <token>`, where the token comes from Session (a
 * signed, fresh session request), BindAccount or Register. An unchanged Download is one
 * cheap round trip: a token lookup and a cursor comparison, no cryptography on either side.
 */
import { fail } from './errors.js';
import { arr, int, obj, optStr, str, type Obj } from './json.js';
import { parseSignedEnvelope, type SignedEnvelope, UDF_TEXT } from './envelope.js';

export const MMM_PREFIX = '/.well-known/mmm/';
export const PROTOCOL_VERSION = 1;

export const PATHS = {
  hello: `${MMM_PREFIX}Hello`,
  session: `${MMM_PREFIX}Session`,
  challenge: `${MMM_PREFIX}Challenge`,
  register: `${MMM_PREFIX}Register`,
  bindAccount: `${MMM_PREFIX}BindAccount`,
  publish: `${MMM_PREFIX}Publish`,
  download: `${MMM_PREFIX}Download`,
  account: `${MMM_PREFIX}Account`,
  claimLookup: `${MMM_PREFIX}ClaimLookup`,
  claim: `${MMM_PREFIX}Claim`,
  post: `${MMM_PREFIX}Post`,
  status: `${MMM_PREFIX}Status`,
  deviceStatus: `${MMM_PREFIX}DeviceStatus`,
  treeHead: `${MMM_PREFIX}Log/TreeHead`,
  inclusion: `${MMM_PREFIX}Log/Inclusion`,
  consistency: `${MMM_PREFIX}Log/Consistency`,
  entry: `${MMM_PREFIX}Log/Entry`,
  join: `${MMM_PREFIX}Join`,
} as const;

/** Limits the portal enforces and announces in Hello. */
export const LIMITS = {
  maxBodyBytes: 1024 * 1024,
  maxLongPollMs: 60_000,
  maxItemsPerDownload: 100,
} as const;

/**
 * A Publish body may be larger than other requests: an application profile to many devices
 * carries every device's part (about 170 bytes each; MAX_PARTS of them fit).
 */
export const MAX_PUBLISH_BYTES = 4 * 1024 * 1024;

const B64U = /^[A-Za-z0-9_-]+$/;
const what = (s: string): string => `response ${s}`;

// ---------------------------------------------------------------- errors on the wire

/** Every refusal: `{"error":{"code":"rate-limited","message":"..."}}` with the right HTTP status. */
export interface WireError {
  readonly error: { readonly code: string; readonly message: string; readonly detail?: Record<string, unknown> };
}

// ---------------------------------------------------------------- Hello

export interface HelloResponse {
  readonly version: number;
  readonly portal: SignedEnvelope;
  readonly treeHead: SignedEnvelope;
  /** where devices hear pushes; null when push is off */
  readonly mqtt: string | null;
  readonly limits: { readonly maxBodyBytes: number; readonly maxLongPollMs: number; readonly maxItemsPerDownload: number };
}

export function parseHelloResponse(v: unknown): HelloResponse {
  const w = what('Hello');
  const o = obj(v, w, ['version', 'portal', 'treeHead', 'mqtt', 'limits']);
  const lo = obj(o.limits, `${w}.limits`, ['maxBodyBytes', 'maxLongPollMs', 'maxItemsPerDownload']);
  return {
    version: int(o, 'version', w, 1),
    portal: parseSignedEnvelope(o.portal, `${w}.portal`),
    treeHead: parseSignedEnvelope(o.treeHead, `${w}.treeHead`),
    mqtt: o.mqtt === null ? null : str(o, 'mqtt', w, 300),
    limits: {
      maxBodyBytes: int(lo, 'maxBodyBytes', w),
      maxLongPollMs: int(lo, 'maxLongPollMs', w),
      maxItemsPerDownload: int(lo, 'maxItemsPerDownload', w),
    },
  };
}

// ---------------------------------------------------------------- Challenge, Session, Register, BindAccount

/** GET Challenge (no session): `{ challenge }`, opaque, to sign into the next session request (mesh/challenge.ts). */
export interface ChallengeResponse {
  readonly challenge: string;
}

export function parseChallengeResponse(v: unknown): ChallengeResponse {
  const w = what('Challenge');
  const o = obj(v, w, ['challenge']);
  return { challenge: str(o, 'challenge', w, 100, B64U) };
}

/** POST Session: `{ "request": <signed session payload> }` -> `{ token, expires }` */
export interface SessionRequest {
  readonly request: SignedEnvelope;
}
export interface SessionResponse {
  readonly token: string;
  readonly expires: string;
  /**
   * A device's password for the push broker, when the broker checks credentials the portal mints
   * (NATS operator mode: a bearer JWT for the device's own topic, valid until `expires`).
   * Absent: the password is a fresh signed session request, as the embedded broker checks.
   */
  readonly push?: { readonly password: string };
}

export function parseSessionRequest(v: unknown): SessionRequest {
  const o = obj(v, 'Session request', ['request']);
  return { request: parseSignedEnvelope(o.request, 'Session request.request') };
}

export function parseSessionResponse(v: unknown): SessionResponse {
  const w = what('Session');
  const o = obj(v, w, ['token', 'expires'], ['account', 'device', 'push']);
  const out = { token: str(o, 'token', w, 100, B64U), expires: str(o, 'expires', w, 30) };
  if (o.push === undefined) return out;
  const p = obj(o.push, `${w}.push`, ['password']);
  return { ...out, push: { password: str(p, 'password', `${w}.push`, 4096, /^[A-Za-z0-9_.-]+$/) } };
}

/**
 * POST Register (a device): its self-signed profile, the manufacturer's endorsement, its claim
 * publication (id, the profile sealed under the label secret, and the portal's verifier key),
 * and a session request signed by its authentication key. Idempotent.
 */
export interface RegisterRequest {
  readonly device: SignedEnvelope;
  readonly endorsement: SignedEnvelope | null;
  readonly claim: { readonly id: string; readonly blob: string; readonly portalKey: string };
  readonly request: SignedEnvelope;
}

export function parseRegisterRequest(v: unknown): RegisterRequest {
  const w = 'Register request';
  const o = obj(v, w, ['device', 'endorsement', 'claim', 'request']);
  const co = obj(o.claim, `${w}.claim`, ['id', 'blob', 'portalKey']);
  return {
    device: parseSignedEnvelope(o.device, `${w}.device`),
    endorsement: o.endorsement === null ? null : parseSignedEnvelope(o.endorsement, `${w}.endorsement`),
    claim: {
      id: str(co, 'id', `${w}.claim`, 40, B64U),
      blob: str(co, 'blob', `${w}.claim`, 200_000, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/),
      portalKey: str(co, 'portalKey', `${w}.claim`, 60, B64U),
    },
    request: parseSignedEnvelope(o.request, `${w}.request`),
  };
}

/** POST BindAccount: `alice` on this portal bound to a master profile, with the first personal profile. */
export interface BindAccountRequest {
  readonly account: string;
  /**
   * A visitor's binding (the Intermesh): the name of the portal the account lives at, not this one.
   * The account is then account@home, bound here only so that its owner can claim, configure and
   * read devices registered here that invited it; it may do nothing else at this portal.
   */
  readonly home?: string;
  readonly master: SignedEnvelope;
  readonly personal: SignedEnvelope;
  readonly request: SignedEnvelope;
}

export function parseBindAccountRequest(v: unknown): BindAccountRequest {
  const w = 'BindAccount request';
  const o = obj(v, w, ['account', 'master', 'personal', 'request'], ['home']);
  return {
    account: str(o, 'account', w, 64, /^[a-z0-9][a-z0-9._-]{0,63}$/),
    ...(o.home !== undefined ? { home: str(o, 'home', w, 253, /^[a-z0-9][a-z0-9.:-]{0,252}$/) } : {}),
    master: parseSignedEnvelope(o.master, `${w}.master`),
    personal: parseSignedEnvelope(o.personal, `${w}.personal`),
    request: parseSignedEnvelope(o.request, `${w}.request`),
  };
}

export interface BindAccountResponse {
  readonly account: string;
  readonly master: string;
  readonly token: string;
  readonly expires: string;
  /** log receipts for the master and personal profiles, when this call bound the account (absent on a repeat) */
  readonly receipts?: { readonly master: LogReceipt; readonly personal: LogReceipt };
}

export function parseBindAccountResponse(v: unknown): BindAccountResponse {
  const w = what('BindAccount');
  const o = obj(v, w, ['account', 'master', 'token', 'expires'], ['receipts']);
  const r = { account: str(o, 'account', w, 320), master: str(o, 'master', w, 120, UDF_TEXT), token: str(o, 'token', w, 100, B64U), expires: str(o, 'expires', w, 30) };
  if (o.receipts === undefined) return r;
  const ro = obj(o.receipts, `${w}.receipts`, ['master', 'personal']);
  return { ...r, receipts: { master: parseLogReceipt(ro.master, 'BindAccount.receipts.master'), personal: parseLogReceipt(ro.personal, 'BindAccount.receipts.personal') } };
}

// ---------------------------------------------------------------- Publish

/**
 * POST Publish (owner): a personal profile, an application profile, or a new master profile
 * (same master key, higher seq: how an administration key is revoked). The portal verifies the
 * chain to the account's master before storing; application profiles go to each target device's feed.
 */
export interface PublishRequest {
  readonly object: SignedEnvelope;
}

export interface LogReceipt {
  /** index of the log leaf that records this object */
  readonly index: number;
  /** the signed tree head that includes it */
  readonly treeHead: SignedEnvelope;
}

export function parsePublishRequest(v: unknown): PublishRequest {
  const o = obj(v, 'Publish request', ['object']);
  return { object: parseSignedEnvelope(o.object, 'Publish request.object') };
}

export function parseLogReceipt(v: unknown, name: string): LogReceipt {
  const w = what(name);
  const o = obj(v, w, ['index', 'treeHead'], ['device', 'delivered']);
  return { index: int(o, 'index', w, 0), treeHead: parseSignedEnvelope(o.treeHead, `${w}.treeHead`) };
}

// ---------------------------------------------------------------- Account (owner reads back its own profiles)

export interface AccountResponse {
  readonly account: string;
  readonly master: SignedEnvelope;
  readonly personal: SignedEnvelope | null;
  /** latest application profile per application name, as published */
  readonly applications: Readonly<Record<string, SignedEnvelope>>;
  /** pending join requests from would-be administration devices (newest last, at most 16) */
  readonly joins: readonly SignedEnvelope[];
}

export function parseAccountResponse(v: unknown): AccountResponse {
  const w = what('Account');
  const o = obj(v, w, ['account', 'master', 'personal', 'applications', 'joins']);
  const ao = obj(o.applications, `${w}.applications`, [], Object.keys((o.applications ?? {}) as Obj));
  const applications: Record<string, SignedEnvelope> = Object.create(null) as Record<string, SignedEnvelope>;
  for (const [k, x] of Object.entries(ao)) {
    if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(k)) fail('malformed', `${w}.applications has a key that is not an application name`);
    applications[k] = parseSignedEnvelope(x, `${w}.applications.${k}`);
  }
  return {
    account: str(o, 'account', w, 320),
    master: parseSignedEnvelope(o.master, `${w}.master`),
    personal: o.personal === null ? null : parseSignedEnvelope(o.personal, `${w}.personal`),
    applications,
    joins: arr(o, 'joins', w, 16).map((x, i) => parseSignedEnvelope(x, `${w}.joins[${i}]`)),
  };
}

/** POST Join (unauthenticated, rate-limited): a would-be administration device's signed join request. -> `{ ok: true }` */
export interface JoinRequest {
  readonly object: SignedEnvelope;
}

export function parseJoinRequest(v: unknown): JoinRequest {
  const o = obj(v, 'Join request', ['object']);
  return { object: parseSignedEnvelope(o.object, 'Join request.object') };
}

// ---------------------------------------------------------------- Download (device feed)

export type ItemKind = 'claim' | 'application' | 'remove' | 'master' | 'invite' | 'move';
const KINDS: readonly ItemKind[] = ['claim', 'application', 'remove', 'master', 'invite', 'move'];

/**
 * One item of a device's feed. `n` counts the device's items 1, 2, 3, ...: a device that holds
 * n-1 can apply a pushed item n at once, and polls on any gap.
 */
export interface FeedItem {
  readonly n: number;
  readonly kind: ItemKind;
  readonly object: SignedEnvelope;
  /** the master profile the object chains to (claims carry it; others when it changed) */
  readonly master?: SignedEnvelope;
  /** the log leaf recording this object */
  readonly index: number;
  /** with `log` asked for: the inclusion proof of leaf `index` in the tree of the answer's checkpoint (base64url hashes); absent if that head does not hold it yet */
  readonly path?: readonly string[];
}

/**
 * What a Download answer proves about the log when the device asks (`log=SIZE`, the size of the
 * head it holds): the portal's newest head as a C2SP checkpoint (signed note) and the consistency
 * proof from the device's head (`from` leaves) to it. Each item's `path` proves it in that head.
 */
export interface FeedLog {
  readonly treeHead: string;
  readonly from: number;
  readonly consistency: readonly string[];
}

/** GET Download?since=N[&wait=MS][&log=SIZE] -> `{ "n": latest, "items": [...], "log": {...} }`; unchanged: `{"n":N,"items":[]}` */
export interface DownloadResponse {
  readonly n: number;
  readonly items: readonly FeedItem[];
  /** present when asked for and the answer has items */
  readonly log?: FeedLog;
}

export function parseFeedItem(v: unknown, w = 'feed item'): FeedItem {
  const o = obj(v, w, ['n', 'kind', 'object', 'index'], ['master', 'path']);
  const kind = str(o, 'kind', w, 20);
  if (!(KINDS as readonly string[]).includes(kind)) fail('malformed', `${w}.kind is unknown`);
  const item: FeedItem = { n: int(o, 'n', w, 1), kind: kind as ItemKind, object: parseSignedEnvelope(o.object, `${w}.object`), index: int(o, 'index', w, 0) };
  const withMaster = o.master === undefined ? item : { ...item, master: parseSignedEnvelope(o.master, `${w}.master`) };
  return o.path === undefined ? withMaster : { ...withMaster, path: hashList(o, 'path', w) };
}

export function parseFeedLog(v: unknown, w = 'Download.log'): FeedLog {
  const o = obj(v, w, ['treeHead', 'from', 'consistency']);
  return { treeHead: str(o, 'treeHead', w, 16 * 1024), from: int(o, 'from', w, 0), consistency: hashList(o, 'consistency', w) };
}

export function parseDownloadResponse(v: unknown): DownloadResponse {
  const w = what('Download');
  const o = obj(v, w, ['n', 'items'], ['log']);
  const r = { n: int(o, 'n', w, 0), items: arr(o, 'items', w, LIMITS.maxItemsPerDownload).map((x, i) => parseFeedItem(x, `${w}.items[${i}]`)) };
  return o.log === undefined ? r : { ...r, log: parseFeedLog(o.log, `${w}.log`) };
}

/** MQTT push: the same item JSON on topic `mmm/v1/device/<device UDF>` (QoS 1). */
export function deviceTopic(deviceId: string): string {
  return `mmm/v1/device/${deviceId}`;
}

// ---------------------------------------------------------------- claims

/** GET ClaimLookup?id=ID (owner) -> `{ blob }`: the device profile sealed under the label secret. */
export interface ClaimLookupResponse {
  readonly blob: string;
}

export function parseClaimLookupResponse(v: unknown): ClaimLookupResponse {
  const o = obj(v, what('ClaimLookup'), ['blob']);
  return { blob: str(o, 'blob', what('ClaimLookup'), 200_000) };
}

/** POST Claim (owner): the claim, signed by an administration key, for the device registered under `id`. */
export interface ClaimRequest {
  readonly id: string;
  readonly object: SignedEnvelope;
}

export function parseClaimRequest(v: unknown): ClaimRequest {
  const w = 'Claim request';
  const o = obj(v, w, ['id', 'object']);
  return { id: str(o, 'id', w, 40, B64U), object: parseSignedEnvelope(o.object, `${w}.object`) };
}

/**
 * POST Post (owner): a message to one device's feed: a `remove`, or an `invite` with what the
 * portal keeps for the invitee (`invitation`: the claim id, the portal-proof key, the record
 * sealed under the invitation secret, and until when, in seconds from now, it may be used).
 */
export interface PostRequest {
  readonly device: string;
  readonly object: SignedEnvelope;
  readonly invitation?: { readonly id: string; readonly blob: string; readonly portalKey: string; readonly ttl: number };
}

export function parsePostRequest(v: unknown): PostRequest {
  const w = 'Post request';
  const o = obj(v, w, ['device', 'object'], ['invitation']);
  const out = { device: str(o, 'device', w, 120, UDF_TEXT), object: parseSignedEnvelope(o.object, `${w}.object`) };
  if (o.invitation === undefined) return out;
  const iw = `${w}.invitation`;
  const io = obj(o.invitation, iw, ['id', 'blob', 'portalKey', 'ttl']);
  return {
    ...out,
    invitation: {
      id: str(io, 'id', iw, 40, B64U),
      blob: str(io, 'blob', iw, 200_000, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/),
      portalKey: str(io, 'portalKey', iw, 60, B64U),
      ttl: int(io, 'ttl', iw, 1, 7 * 24 * 3600),
    },
  };
}

// ---------------------------------------------------------------- status

/** POST Status (device): its signed status report. -> `{ ok: true }` */
export interface StatusRequest {
  readonly object: SignedEnvelope;
}

export function parseStatusRequest(v: unknown): StatusRequest {
  const o = obj(v, 'Status request', ['object']);
  return { object: parseSignedEnvelope(o.object, 'Status request.object') };
}

/** GET DeviceStatus (owner) -> each device this account has claimed, its profile and its last signed status. */
export interface DeviceStatusEntry {
  readonly device: string;
  readonly profile: SignedEnvelope;
  readonly status: SignedEnvelope | null;
  /** when the portal received the status */
  readonly received: string | null;
}

export function parseDeviceStatusResponse(v: unknown): { devices: DeviceStatusEntry[] } {
  const w = what('DeviceStatus');
  const o = obj(v, w, ['devices']);
  return {
    devices: arr(o, 'devices', w, 1000).map((x, i) => {
      const dw = `${w}.devices[${i}]`;
      const d = obj(x, dw, ['device', 'profile', 'status', 'received']);
      return {
        device: str(d, 'device', dw, 120, UDF_TEXT),
        profile: parseSignedEnvelope(d.profile, `${dw}.profile`),
        status: d.status === null ? null : parseSignedEnvelope(d.status, `${dw}.status`),
        received: d.received === null ? null : (optStr(d, 'received', dw, 30) ?? null),
      };
    }),
  };
}

// ---------------------------------------------------------------- log

/** GET Log/TreeHead -> `{ treeHead }` */
export function parseTreeHeadResponse(v: unknown): { treeHead: SignedEnvelope } {
  const o = obj(v, what('TreeHead'), ['treeHead']);
  return { treeHead: parseSignedEnvelope(o.treeHead, what('TreeHead.treeHead')) };
}

/** GET Log/Inclusion?index=I&size=N -> `{ index, size, proof: [b64u...] }` */
export interface InclusionResponse {
  readonly index: number;
  readonly size: number;
  readonly proof: readonly string[];
}

export function parseInclusionResponse(v: unknown): InclusionResponse {
  const w = what('Inclusion');
  const o = obj(v, w, ['index', 'size', 'proof']);
  return { index: int(o, 'index', w), size: int(o, 'size', w), proof: proofList(o, w) };
}

/** GET Log/Consistency?from=M&to=N -> `{ from, to, proof: [b64u...] }` */
export interface ConsistencyResponse {
  readonly from: number;
  readonly to: number;
  readonly proof: readonly string[];
}

export function parseConsistencyResponse(v: unknown): ConsistencyResponse {
  const w = what('Consistency');
  const o = obj(v, w, ['from', 'to', 'proof']);
  return { from: int(o, 'from', w), to: int(o, 'to', w), proof: proofList(o, w) };
}

/** GET Log/Entry?index=I -> `{ index, kind, data: b64u }`: the leaf's data (the signed payload bytes). */
export interface EntryResponse {
  readonly index: number;
  readonly kind: string;
  readonly data: string;
}

export function parseEntryResponse(v: unknown): EntryResponse {
  const w = what('Entry');
  const o = obj(v, w, ['index', 'kind', 'data']);
  return { index: int(o, 'index', w), kind: str(o, 'kind', w, 20), data: str(o, 'data', w, 400_000) };
}

function proofList(o: Obj, w: string): string[] {
  return hashList(o, 'proof', w);
}

/** A Merkle proof: at most 64 base64url SHA-256 hashes. */
function hashList(o: Obj, k: string, w: string): string[] {
  return arr(o, k, w, 64).map((p, i) => {
    if (typeof p !== 'string' || !B64U.test(p) || p.length !== 43) return fail('malformed', `${w}.${k}[${i}] must be a 32-byte base64url hash`);
    return p;
  });
}

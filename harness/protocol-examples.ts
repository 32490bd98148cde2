/**
 * Real examples of every wire format, made with the code in mesh/, and docs/protocol.md built
 * around them:
 *
 *   npx tsc -p . && node dist/scripts/protocol-doc.js > docs/protocol.md
 *
 * Keys come from fixed labels (so key UDFs stay the same from one run to the next); times, nonces,
 * IVs and ephemeral keys are fresh on every run. `buildExamples()` is also the source of valid
 * seeds for the fuzz targets (harness/fuzz-targets.ts) and the fixtures of the protocol tests, so every
 * example shown in the document is one the tests parse, verify and mutate.
 */
import * as c from '../mesh/crypto.js';
import { b64u, utf8 } from '../mesh/bytes.js';
import { MESH_ERRORS, MeshError } from '../mesh/errors.js';
import { httpStatus } from '../portal/status-codes.js';
import { type SignedEnvelope, payloadBytes, MAX_ENVELOPE_BYTES, MAX_PARTS, MAX_RECIPIENTS, MAX_SIGNATURES } from '../mesh/envelope.js';
import { type DeviceKeys, type MasterKeys, masterKeysFromSeed, signKeyId, encKeyId, KEYINFO_CONTENT_TYPE } from '../mesh/keys.js';
import {
  type AdminKeys,
  MAX_CONFIG_BYTES,
  MAX_PROFILE_BYTES,
  adminEntry,
  createApplicationProfile,
  createDeviceProfile,
  createMasterProfile,
  createPersonalProfile,
  endorseDevice,
  verifyApplicationProfile,
  verifyMasterProfile,
  openApplicationProfile,
} from '../mesh/profiles.js';
import { type ClaimSecrets, claimCode, deriveClaimSecrets, LABEL_FINGERPRINT_BITS, labelUri, sealClaimBlob, shortFingerprint } from '../mesh/claim.js';
import { challengeKey, makeChallenge, CHALLENGE_TTL_MS } from '../mesh/challenge.js';
import { createClaim, createJoin, createMove, createPortalProfile, createRemove, createSession, createStatus, createTreeHead, sealPrivateStatus, MAX_PRIVATE_STATUS_BYTES, type PrivateStatus } from '../mesh/messages.js';
import { createInvite, deriveInviteSecrets, invitationUri, parseInvitePayload, type Grant } from '../mesh/invite.js';
import { logOrigin, signCheckpoint } from '../mesh/checkpoint.js';
import { addSignatures, cosign, formatAddCheckpoint, formatVkey, NOTE_ED25519_TYPE } from '../mesh/cosignature.js';
import { LIMITS, MAX_PUBLISH_BYTES, PATHS, PROTOCOL_VERSION, deviceTopic, type WireError } from '../mesh/protocol.js';
import { MerkleTree } from '../mesh/merkle.js';
import { splitSecret } from '../mesh/shamir.js';
import { schemaFingerprint } from '../mesh/schema.js';
import type { Json } from '../mesh/json.js';

// ---------------------------------------------------------------- the examples

/** A device as it leaves the factory (mesh/device.ts newDeviceIdentity, with fixed keys). */
export interface ExampleDevice {
  readonly keys: DeviceKeys;
  readonly id: string;
  readonly fingerprint: string;
  readonly model: string;
  readonly serial: string;
  readonly profile: SignedEnvelope;
  readonly endorsement: SignedEnvelope;
  readonly claimSecret: Uint8Array;
  readonly secrets: ClaimSecrets;
  readonly labelUri: string;
}

export interface LogLeaf {
  readonly kind: 'master' | 'personal' | 'application' | 'claim' | 'remove';
  readonly data: Uint8Array;
}

export interface Examples {
  readonly portalName: string;
  readonly account: string;
  readonly pin: string;
  readonly keys: {
    readonly master: MasterKeys;
    /** the first administration device ("laptop") and a second one ("phone", revoked in masterV2) */
    readonly admin: AdminKeys;
    readonly admin2: AdminKeys;
    /** a would-be administration device asking to join with the PIN */
    readonly joiner: AdminKeys;
    readonly manufacturer: c.KeyPair;
    readonly portal: c.KeyPair;
  };
  readonly masterId: string;
  readonly portalId: string;
  /** devices[0] and devices[1] are the application's targets; devices[2] is not */
  readonly devices: readonly ExampleDevice[];
  readonly master: SignedEnvelope;
  /** seq 2: the same master key, admin2 removed and revoked */
  readonly masterV2: SignedEnvelope;
  readonly personal: SignedEnvelope;
  readonly application: SignedEnvelope;
  readonly config: { readonly [k: string]: unknown };
  readonly claim: SignedEnvelope;
  readonly remove: SignedEnvelope;
  readonly move: SignedEnvelope;
  readonly invite: SignedEnvelope;
  readonly invitation: string;
  readonly guestClaim: SignedEnvelope;
  readonly ginaMaster: SignedEnvelope;
  readonly privateStatus: PrivateStatus;
  readonly status: SignedEnvelope;
  /** device session request (subject = device UDF, signed by its authentication key) */
  readonly session: SignedEnvelope;
  /** owner session request (subject = account, signed by an administration key) */
  readonly ownerSession: SignedEnvelope;
  readonly portalProfile: SignedEnvelope;
  readonly join: SignedEnvelope;
  readonly claimBlob: string;
  readonly escrowShares: readonly string[];
  readonly log: { readonly leaves: readonly LogLeaf[]; readonly tree: MerkleTree; readonly treeHead: SignedEnvelope; readonly treeHeadAt: (size: number) => SignedEnvelope };
  /** HTTP bodies, by transaction: `<name>Request` and `<name>Response` */
  readonly wire: { readonly [name: string]: unknown };
  readonly wireError: WireError;
}

/** 32 bytes that depend only on the label: the examples' keys stay the same from run to run. */
export function exampleSeed(label: string): Uint8Array {
  return c.sha512(utf8(`mmm-example-v1 ${label}`)).slice(0, 32);
}

/** The schema the example thermostats run (declared, by fingerprint, in their device profiles). */
export const EXAMPLE_SCHEMA = { type: 'object', additionalProperties: false, properties: { setpointC: { type: 'number', minimum: 5, maximum: 30 }, mode: { enum: ['comfort', 'eco', 'off'] } } };

function exampleDevice(i: number, manufacturer: c.KeyPair, portalName: string, created: string): ExampleDevice {
  const keys: DeviceKeys = {
    sign: c.ed25519KeyPair(exampleSeed(`device-${i}-sign`)),
    enc: c.x25519KeyPair(exampleSeed(`device-${i}-enc`)),
    auth: c.ed25519KeyPair(exampleSeed(`device-${i}-auth`)),
  };
  const model = 'thermostat-t2';
  const serial = `sn-${String(1001 + i)}`;
  const id = signKeyId(keys.sign.publicKey);
  const profile = createDeviceProfile(keys, model, created, [{ name: 'thermostat', schema: schemaFingerprint(EXAMPLE_SCHEMA) }]);
  const endorsement = endorseDevice(manufacturer, { id, model }, { manufacturer: 'acme', serial }, created);
  const claimSecret = exampleSeed(`device-${i}-claim`).slice(0, 16);
  const fingerprint = shortFingerprint(id);
  return {
    keys,
    id,
    fingerprint,
    model,
    serial,
    profile,
    endorsement,
    claimSecret,
    secrets: deriveClaimSecrets(claimSecret),
    labelUri: labelUri({ manufacturer: 'acme', portal: portalName, secret: claimSecret, fingerprint }),
  };
}

export function buildExamples(opts: { now?: Date } = {}): Examples {
  const nowMs = (opts.now ?? new Date()).getTime();
  const at = (minutesAgo: number): string => new Date(nowMs - minutesAgo * 60_000).toISOString();
  const portalName = 'portal.example';
  const account = `alice@${portalName}`;
  const pin = 'QX7T-M2KD';

  const master = masterKeysFromSeed(exampleSeed('master'));
  const admin: AdminKeys = { name: 'laptop', sign: c.ed25519KeyPair(exampleSeed('admin-sign')), enc: c.x25519KeyPair(exampleSeed('admin-enc')) };
  const admin2: AdminKeys = { name: 'phone', sign: c.ed25519KeyPair(exampleSeed('admin2-sign')), enc: c.x25519KeyPair(exampleSeed('admin2-enc')) };
  const joiner: AdminKeys = { name: 'tablet', sign: c.ed25519KeyPair(exampleSeed('joiner-sign')), enc: c.x25519KeyPair(exampleSeed('joiner-enc')) };
  const manufacturer = c.ed25519KeyPair(exampleSeed('manufacturer'));
  const portal = c.ed25519KeyPair(exampleSeed('portal'));
  const masterId = signKeyId(master.sign.publicKey);
  const portalId = signKeyId(portal.publicKey);

  const devices = [0, 1, 2].map((i) => exampleDevice(i, manufacturer, portalName, at(60 * 24 * 30)));
  const [d0, d1, d2] = devices as [ExampleDevice, ExampleDevice, ExampleDevice];

  const masterEnv = createMasterProfile(master, [adminEntry(admin, at(600)), adminEntry(admin2, at(500))], { seq: 1, created: at(500) });
  const masterV2 = createMasterProfile(master, [adminEntry(admin, at(600))], { seq: 2, revoked: [signKeyId(admin2.sign.publicKey)], created: at(5) });
  const personal = createPersonalProfile(admin, {
    master: masterId,
    account,
    seq: 1,
    created: at(400),
    devices: [d0, d1].map((d, i) => ({ id: d.id, name: i === 0 ? 'Kitchen' : 'Hall', model: d.model, enc: b64u(d.keys.enc.publicKey) })),
    apps: ['thermostat'],
    // one copy of each schema the devices declare, by fingerprint (recovery takes them back from here)
    schemas: { [schemaFingerprint(EXAMPLE_SCHEMA)]: EXAMPLE_SCHEMA as Json },
  });
  const config = { setpointC: 20.5, schedule: [{ from: '06:30', to: '22:00', setpointC: 21 }], units: 'metric' };
  const application = createApplicationProfile(admin, {
    master: masterId,
    app: 'thermostat',
    seq: 1,
    created: at(300),
    config,
    devices: [d0, d1].map((d) => ({ id: d.id, enc: d.keys.enc.publicKey })),
    alsoReadableBy: [admin.enc.publicKey],
  });
  // the device's ownership epoch (drawn when its agent first ran; a factory reset draws another)
  const epoch = b64u(exampleSeed('epoch').slice(0, 16));
  const claim = createClaim(admin.sign, d0.secrets, { device: d0.id, master: masterId, account, epoch });
  const remove = createRemove(admin.sign, { device: d2.id, master: masterId, epoch });
  const move = createMove(admin.sign, { device: d0.id, master: masterId, portal: 'https://portal-b.example', portalId: signKeyId(c.ed25519KeyPair(exampleSeed('portal-b')).publicKey), epoch });
  // Alice invites Gina to the kitchen thermostat as a guest: the setpoint only, 16..24, for two days
  const gina = masterKeysFromSeed(exampleSeed('gina-master'));
  const ginaAdmin: AdminKeys = { name: 'phone', sign: c.ed25519KeyPair(exampleSeed('gina-sign')), enc: c.x25519KeyPair(exampleSeed('gina-enc')) };
  const ginaMaster = createMasterProfile(gina, [adminEntry(ginaAdmin, at(90))], { seq: 1, created: at(90) });
  const ginaAccount = `gina@${portalName}`;
  const inviteSecret = exampleSeed('invite').slice(0, 16);
  const inviteSecrets = deriveInviteSecrets(inviteSecret);
  const grant: Grant = { scope: [{ app: 'thermostat', keys: ['setpointC'], ranges: { setpointC: [16, 24] } }], until: at(-2 * 24 * 60) };
  const invite = createInvite(admin.sign, inviteSecrets, { device: { id: d0.id, enc: d0.keys.enc.publicKey }, epoch, master: masterId, account, ttlS: 900, grant, created: at(10) });
  const inviteNonce = parseInvitePayload(invite).nonce;
  const invitation = invitationUri({ portal: portalName, secret: inviteSecret, fingerprint: d0.id });
  const inviteRecord = sealClaimBlob(inviteSecrets, { profile: d0.profile, endorsement: null, epoch, invite: inviteNonce, by: account, role: 'guest', grant, expires: at(-5), schemas: { thermostat: EXAMPLE_SCHEMA } });
  const guestClaim = createClaim(ginaAdmin.sign, inviteSecrets, { device: d0.id, master: signKeyId(gina.sign.publicKey), account: ginaAccount, epoch, invite: inviteNonce });
  // the device has no real-time clock and booted at 1970: its session request is fresh by the challenge the portal issued
  const challenge = makeChallenge(challengeKey(portal.privateKey), nowMs - 1000, exampleSeed('challenge').slice(0, 16));
  const ownerChallenge = makeChallenge(challengeKey(portal.privateKey), nowMs - 1000, exampleSeed('owner-challenge').slice(0, 16));
  const session = createSession(d0.keys.auth, d0.id, { created: '1970-01-01T00:02:11.000Z', challenge });
  const ownerSession = createSession(admin.sign, account, { created: at(0), challenge: ownerChallenge });
  const portalProfile = createPortalProfile(portal, portalName, at(60 * 24 * 60));
  const join = createJoin(joiner, account, pin);
  const claimBlob = sealClaimBlob(d0.secrets, { profile: d0.profile, endorsement: d0.endorsement, epoch, schemas: { thermostat: EXAMPLE_SCHEMA } });

  // the log, in the order a portal would accept these objects
  const leaves: LogLeaf[] = [
    { kind: 'master', data: payloadBytes(masterEnv) },
    { kind: 'personal', data: payloadBytes(personal) },
    { kind: 'claim', data: payloadBytes(claim) },
    { kind: 'application', data: payloadBytes(application) },
    { kind: 'master', data: payloadBytes(masterV2) },
    { kind: 'remove', data: payloadBytes(remove) },
  ];
  const tree = new MerkleTree();
  for (const l of leaves) tree.appendData(l.data);
  const heads = new Map<number, SignedEnvelope>();
  const treeHeadAt = (size: number): SignedEnvelope => {
    let h = heads.get(size);
    if (h === undefined) {
      h = createTreeHead(portal, size, tree.root(size), at(0));
      heads.set(size, h);
    }
    return h;
  };
  const treeHead = treeHeadAt(tree.size);

  // what only the owners read (sealed in the status below to Alice's administration keys)
  const privateStatus: PrivateStatus = {
    effective: { thermostat: { setpointC: { value: 20.5, owner: account, master: masterId, n: 2, at: at(300) }, units: { value: 'metric', owner: account, master: masterId, n: 2, at: at(300) } } },
    grants: { [signKeyId(gina.sign.publicKey)]: grant },
    errors: [{ code: 'out-of-scope', message: 'a guest may set thermostat setpointC within 16..24, not 28', at: at(1), master: signKeyId(gina.sign.publicKey), app: 'thermostat', seq: 2 }],
  };
  const status = createStatus(d0.keys.sign, {
    seq: 7,
    created: at(0),
    lastContact: at(1),
    owners: [
      { master: masterId, account, apps: [{ app: 'thermostat', seq: 1, appliedAt: at(2) }], since: at(60 * 24 * 20) },
      { master: signKeyId(gina.sign.publicKey), account: ginaAccount, apps: [], role: 'guest', since: at(4), invitedBy: account },
    ],
    errors: [{ code: 'out-of-scope', message: "a guest's change to an application, key or value outside what the guest's invitation allows", at: at(1), master: signKeyId(gina.sign.publicKey), app: 'thermostat', seq: 2 }],
    treeHead: { size: tree.size, root: b64u(tree.root()) },
    epoch,
    n: 3,
    private: [sealPrivateStatus(privateStatus, [admin.enc.publicKey, admin2.enc.publicKey])],
  });

  const token = b64u(exampleSeed('token').slice(0, 32));
  const expires = new Date(nowMs + 24 * 3600_000).toISOString();
  const receipt = (index: number, extra: Record<string, unknown> = {}): unknown => ({ index, treeHead: treeHeadAt(index + 1), ...extra });
  const items = [
    { n: 1, kind: 'claim', object: claim, master: masterEnv, index: 2 },
    { n: 2, kind: 'application', object: application, index: 3 },
    { n: 3, kind: 'master', object: masterV2, index: 4 },
  ];
  const wire: Record<string, unknown> = {
    helloResponse: { version: PROTOCOL_VERSION, portal: portalProfile, treeHead, mqtt: `mqtts://${portalName}:8883`, limits: LIMITS },
    challengeResponse: { challenge },
    sessionRequest: { request: session },
    sessionResponse: { token, expires, device: d0.id },
    ownerSessionRequest: { request: ownerSession },
    ownerSessionResponse: { token, expires, account },
    registerRequest: { device: d0.profile, endorsement: d0.endorsement, claim: { id: d0.secrets.claimId, blob: claimBlob, portalKey: b64u(d0.secrets.portalKey) }, request: session },
    registerResponse: { token, expires, device: d0.id },
    bindAccountRequest: { account: 'alice', master: masterEnv, personal, request: ownerSession },
    visitorBindAccountRequest: { account: 'alice', home: portalName, master: masterEnv, personal, request: ownerSession },
    bindAccountResponse: { account, master: masterId, token, expires, receipts: { master: { index: 0, treeHead: treeHeadAt(2) }, personal: { index: 1, treeHead: treeHeadAt(2) } } },
    publishRequest: { object: application },
    publishResponse: receipt(3, { delivered: 2 }),
    accountResponse: { account, master: masterV2, personal, applications: { thermostat: application }, joins: [join] },
    joinRequest: { object: join },
    joinResponse: { ok: true },
    downloadResponse: { n: 3, items },
    downloadUnchangedResponse: { n: 3, items: [] },
    // the same answer to a device that holds the head of 2 leaves (Download?since=0&log=2)
    downloadLogResponse: {
      n: 3,
      items: items.map((i) => ({ ...i, path: tree.inclusionProof(i.index).map(b64u) })),
      log: { treeHead: signCheckpoint({ origin: logOrigin(portalName), size: tree.size, root: tree.root() }, portal), from: 2, consistency: tree.consistencyProof(2).map(b64u) },
    },
    claimLookupResponse: { blob: claimBlob },
    claimRequest: { id: d0.secrets.claimId, object: claim },
    claimResponse: receipt(2, { device: d0.id, delivered: 1 }),
    postRequest: { device: d2.id, object: remove },
    postInviteRequest: { device: d0.id, object: invite, invitation: { id: inviteSecrets.claimId, blob: inviteRecord, portalKey: b64u(inviteSecrets.portalKey), ttl: 900 } },
    inviteClaimRequest: { id: inviteSecrets.claimId, object: guestClaim },
    postResponse: receipt(5, { device: d2.id, delivered: 1 }),
    statusRequest: { object: status },
    statusResponse: { ok: true },
    deviceStatusResponse: { devices: [{ device: d0.id, profile: d0.profile, status, received: at(0) }, { device: d1.id, profile: d1.profile, status: null, received: null }] },
    treeHeadResponse: { treeHead },
    inclusionResponse: { index: 3, size: tree.size, proof: tree.inclusionProof(3).map(b64u) },
    consistencyResponse: { from: 2, to: tree.size, proof: tree.consistencyProof(2).map(b64u) },
    entryResponse: { index: 3, kind: 'application', data: b64u(leaves[3]!.data) },
  };
  const refusal = new MeshError('rate-limited', 'too many failed claims for this device; try again in 1740 s', { retryAfterS: 1740 });
  const wireError: WireError = { error: refusal.toJSON() };

  return {
    portalName,
    account,
    pin,
    keys: { master, admin, admin2, joiner, manufacturer, portal },
    masterId,
    portalId,
    devices,
    master: masterEnv,
    masterV2,
    personal,
    application,
    config,
    claim,
    remove,
    move,
    invite,
    invitation,
    guestClaim,
    ginaMaster,
    status,
    privateStatus,
    session,
    ownerSession,
    portalProfile,
    join,
    claimBlob,
    escrowShares: splitSecret(master.seed, 2, 3),
    log: { leaves, tree, treeHead, treeHeadAt },
    wire,
    wireError,
  };
}

// ---------------------------------------------------------------- the document

const pretty = (v: unknown): string => JSON.stringify(v, null, 2);
/** The table of every error code (docs/protocol.md §11), from the one list in mesh/errors.ts. */
export function errorCodeTable(): string {
  return ['| code | HTTP | meaning |', '|---|---|---|', ...MESH_ERRORS.map((e) => `| \`${e.code}\` | ${httpStatus(e.code)} | ${e.meaning} |`)].join('\n') + '\n';
}

const block = (lang: string, text: string): string => '```' + lang + '\n' + text + '\n```\n';

/** The envelope as it travels and its payload decoded, side by side. */
function envelope(title: string, env: SignedEnvelope, note = ''): string {
  const payload = JSON.parse(Buffer.from(payloadBytes(env)).toString('utf8')) as unknown;
  return `#### ${title}\n\n${note === '' ? '' : note + '\n\n'}On the wire:\n\n${block('json', pretty(env))}\nPayload (the base64url \`payload\` decoded; these exact bytes are what is signed):\n\n${block('json', pretty(payload))}`;
}

interface Tx {
  readonly name: keyof typeof PATHS;
  readonly method: 'GET' | 'POST';
  readonly auth: string;
  readonly query?: string;
  readonly request?: string;
  readonly response: string;
  readonly errors: string;
  readonly what: string;
}

const TXS: readonly Tx[] = [
  { name: 'hello', method: 'GET', auth: 'none', response: 'helloResponse', what: 'Who the portal is (its self-signed portal profile), its current signed tree head, the MQTT URL (or null), its limits.', errors: '' },
  {
    name: 'challenge',
    method: 'GET',
    auth: 'none',
    response: 'challengeResponse',
    what: 'A fresh challenge to sign into the next session request (Session, Register, BindAccount, the MQTT password), so that the request is fresh by the portal\'s clock and not the client\'s (section 7, "Session challenges"). Opaque to clients; good for 5 minutes, once.',
    errors: '',
  },
  {
    name: 'session',
    method: 'POST',
    auth: 'none (the request is signed)',
    request: 'sessionRequest',
    response: 'sessionResponse',
    what: 'A signed session request buys a bearer token (24 h). Subject = a device UDF (signed by the device authentication key) or an account name@portal (signed by an administration key the master lists, or the master key itself). Fresh by its `challenge` (issued by this portal within 5 minutes, used once; `created` is then ignored: here the device\'s clock says 1970), or, without a challenge, by `created` within 5 minutes of the portal clock. Each nonce is accepted once.',
    errors: '`wrong-type` 422 (payload is not a session), `bad-challenge` 422 (a challenge this portal did not issue), `replay` 422 (a challenge older than 5 minutes or used before; without a challenge, outside the time window; a nonce seen before), `not-found` 404 (unknown device or account), `unknown-signer` / `bad-signature` / `revoked-key` / `bad-key` 422',
  },
  {
    name: 'register',
    method: 'POST',
    auth: 'none (the request is signed by the device)',
    request: 'registerRequest',
    response: 'registerResponse',
    what: 'A device publishes its self-signed profile, its manufacturer endorsement (or null), its claim publication (claim id, the profile sealed under the label secret, the portal verifier key) and a session request signed by its authentication key. Idempotent; answers a device token.',
    errors: '`bad-signature` / `unknown-signer` / `bad-key` 422 (device profile), `endorsement-invalid` 422, `wrong-device` 422 (session subject is not this device), `bad-challenge` / `replay` 422 (the session request, as in Session), `conflict` 409 (another device holds this claim id)',
  },
  {
    name: 'bindAccount',
    method: 'POST',
    auth: 'none (the request is signed by an administration key)',
    request: 'bindAccountRequest',
    response: 'bindAccountResponse',
    what: 'Binds `alice@<portal>` to a master profile with the first personal profile; logs both. Answers an owner token and, when this call bound the account, the log receipts of both profiles (absent on a repeat of the same binding). With `home` (another portal\'s name) it binds a visitor, `alice@<home>`: section 6, "Co-owning a device at another portal".',
    errors: '`wrong-master` / `bad-signature` / `unknown-signer` / `revoked-key` 422, `forbidden` 403 (the personal profile or session is for another account), `bad-challenge` / `replay` 422 (the session request, as in Session), `conflict` 409 (the account is bound to another master), `malformed` 400 (`home` names this portal), `rate-limited` 429 (new accounts, visitors included, are budgeted per address and in all)',
  },
  {
    name: 'publish',
    method: 'POST',
    auth: 'owner token',
    request: 'publishRequest',
    response: 'publishResponse',
    what: 'A new master profile (same master key, higher seq: how administration keys are added and revoked), a personal profile, or an application profile. Verified against the account\'s master, logged, and (masters and application profiles) put on the target devices\' feeds. Answers the log receipt: leaf index, a signed tree head that includes it, and how many feeds received it.',
    errors: '`wrong-type` 422 (not master/personal/application), `wrong-master` / `unknown-signer` / `revoked-key` / `bad-signature` 422, `rollback` 409 (seq not higher than the one held), `forbidden` 403 (a target device is not claimed by this account, or a personal profile for another account), `not-found` 404',
  },
  {
    name: 'account',
    method: 'GET',
    auth: 'owner token',
    response: 'accountResponse',
    what: 'The account\'s current master, personal and application profiles as published, and pending join requests (newest last, at most 16).',
    errors: '`not-found` 404',
  },
  {
    name: 'join',
    method: 'POST',
    auth: 'none (rate-limited per address and per account)',
    request: 'joinRequest',
    response: 'joinResponse',
    what: 'A would-be administration device leaves its self-signed join request (with the PIN MAC) for the owner\'s existing administration device to approve.',
    errors: '`bad-signature` / `wrong-type` 422, `not-found` 404 (no such account), `rate-limited` 429',
  },
  {
    name: 'download',
    method: 'GET',
    auth: 'device token',
    query: '`since=N` (required, the last item number held), `wait=MS` (optional long poll, at most 60000), `log=SIZE` (optional: the size of the log head the device holds; the answer then proves its items logged)',
    response: 'downloadResponse',
    what: 'The device\'s feed items after `since` (at most 100). Unchanged: `{"n":N,"items":[]}` at once, or when `wait` runs out. See also the unchanged answer and the answer with `log` below.',
    errors: '`malformed` 400 (query), `unavailable` 503 (too many long polls; Retry-After)',
  },
  {
    name: 'claimLookup',
    method: 'GET',
    auth: 'owner token',
    query: '`id=<claim id>`',
    response: 'claimLookupResponse',
    what: 'The blob a device registered under a claim id: its profile and endorsement sealed under the label secret (the portal cannot read it).',
    errors: '`malformed` 400, `not-found` 404 (no device under this id: is it online?), `rate-limited` 429',
  },
  {
    name: 'claim',
    method: 'POST',
    auth: 'owner token',
    request: 'claimRequest',
    response: 'claimResponse',
    what: 'The claim, signed by an administration key, for the device registered under `id`. The portal checks the portal proof with the verifier key the device registered; failed proofs are counted per device and past the limit every claim of that device is refused for the hour.',
    errors: '`bad-claim-proof` 403, `forbidden` 403 (the claim is for another account), `wrong-device` 422, `unknown-signer` / `revoked-key` / `bad-signature` / `wrong-master` 422, `not-found` 404, `rate-limited` 429 (Retry-After)',
  },
  {
    name: 'post',
    method: 'POST',
    auth: 'owner token',
    request: 'postRequest',
    response: 'postResponse',
    what: 'A message to one device\'s feed: a `remove` (an owner leaves a device), a `move` (an owner moves it to another portal: section 7), or an `invite` with the record the portal keeps for the invitee (`invitation`: the claim id derived from the invitation secret, the record sealed under it, the portal-proof key, and how many seconds it may be used: the portal keeps it no longer than that or the invitation\'s own `ttl`, by its own clock). Section 6, "Invitations", shows an invite.',
    errors: '`wrong-type` 422 (not a remove, a move or an invite), `not-found` 404 (a move to this portal, for a device not registered here yet), `wrong-device` 422 (the message names another device), `not-owner` 403 (the removal names another owner), `unknown-signer` / `revoked-key` / `bad-signature` 422, `forbidden` 403 (the device is not claimed by this account), `conflict` 409 (an invitation with that id exists)',
  },
  {
    name: 'status',
    method: 'POST',
    auth: 'device token',
    request: 'statusRequest',
    response: 'statusResponse',
    what: 'The device\'s signed status report (kept when its seq is newer than the one held).',
    errors: '`unknown-signer` / `bad-signature` / `wrong-device` / `wrong-type` 422, `not-found` 404',
  },
  {
    name: 'deviceStatus',
    method: 'GET',
    auth: 'owner token',
    response: 'deviceStatusResponse',
    what: 'Each device this account has claimed: its profile, its last signed status (or null) and when the portal received it. The owner verifies the status with the device key from the profile.',
    errors: '',
  },
  { name: 'treeHead', method: 'GET', auth: 'none', response: 'treeHeadResponse', what: 'The current signed tree head.', errors: '' },
  {
    name: 'inclusion',
    method: 'GET',
    auth: 'none',
    query: '`index=I&size=N`',
    response: 'inclusionResponse',
    what: 'RFC 9162 §2.1.3 inclusion proof of leaf I in the tree of the first N leaves (from the leaf\'s sibling upward).',
    errors: '`malformed` 400 (index >= size), `not-found` 404 (the log has fewer than N leaves)',
  },
  {
    name: 'consistency',
    method: 'GET',
    auth: 'none',
    query: '`from=M&to=N`',
    response: 'consistencyResponse',
    what: 'RFC 9162 §2.1.4 consistency proof between the trees of the first M and the first N leaves (empty when M is 0 or M = N).',
    errors: '`malformed` 400 (from > to), `not-found` 404',
  },
  {
    name: 'entry',
    method: 'GET',
    auth: 'none',
    query: '`index=I`',
    response: 'entryResponse',
    what: 'The data of leaf I: the exact payload bytes of the accepted object (base64url) and its kind.',
    errors: '`malformed` 400, `not-found` 404',
  },
];

export function renderDocument(x: Examples): string {
  const [d0] = x.devices as [ExampleDevice];
  const out: string[] = [];
  const p = (s: string): void => {
    out.push(s);
  };
  const wire = (name: string): string => block('json', pretty(x.wire[name]));
  const tx = (t: Tx): string => {
    const lines = [
      `### ${t.method} ${PATHS[t.name]}`,
      '',
      t.what,
      '',
      `- Auth: ${t.auth}`,
      ...(t.query === undefined ? [] : [`- Query: ${t.query}`]),
      `- Errors: ${t.errors === '' ? 'the common ones' : `${t.errors}; and the common ones`}`,
      '',
    ];
    if (t.request !== undefined) lines.push('Request body:', '', wire(t.request));
    lines.push('Response (200):', '', wire(t.response));
    return lines.join('\n');
  };
  const appPayload = JSON.parse(Buffer.from(payloadBytes(x.application)).toString('utf8')) as { sealed: unknown; parts: unknown };
  const d0Part = x.application.parts?.find((q) => q.device === d0.id);
  const servedToD0 = { payload: x.application.payload, sigs: x.application.sigs, parts: d0Part === undefined ? [] : [d0Part] };
  const masterProfile = verifyMasterProfile(x.master, x.masterId);
  const opened = openApplicationProfile(verifyApplicationProfile(x.application, masterProfile), { id: d0.id, enc: d0.keys.enc });

  p(`# The Mesh Portal Protocol: wire formats

<!-- Generated: do not edit by hand. -->
This document is generated from the code. Every example below was made by mesh/ when the
document was built, and the same examples are the valid seeds of the fuzz tests. To regenerate:

\`\`\`sh
npx tsc -p . && node dist/scripts/protocol-doc.js > docs/protocol.md
\`\`\`

Edit \`harness/protocol-examples.ts\` (the prose lives there too), not this file. Key UDFs are stable
from run to run (the examples' keys derive from fixed labels); times, nonces, IVs, ephemeral
keys and the escrow shares change.

Contents: 1 Conventions · 2 Identifiers (UDF) · 3 Signed envelopes · 4 Encrypted envelopes ·
5 Profiles · 6 Onboarding and claims · 7 Messages · 8 HTTP transactions · 9 Push (MQTT) ·
10 The transparency log · 11 Errors

## 1. Conventions

- JSON everywhere, UTF-8, no BOM. Every parser (mesh/json.ts, mesh/protocol.ts) refuses unknown
  fields, wrong types, missing fields and trailing garbage (\`malformed\`) and has a size limit
  (\`too-large\`): ${MAX_ENVELOPE_BYTES} bytes per envelope, ${MAX_PROFILE_BYTES} per profile payload,
  ${MAX_CONFIG_BYTES} per application configuration, ${LIMITS.maxBodyBytes} per HTTP body (${MAX_PUBLISH_BYTES} for a
  Publish, whose application profile carries a part per recipient).
- Binary values are base64url without padding, and must be canonical (the one encoding of their bytes).
- Times are ISO 8601 UTC with milliseconds, exactly as \`Date.prototype.toISOString\` writes them.
- Cryptography (mesh/crypto.ts, one suite, no options): Ed25519 (RFC 8032) with strict public keys
  (canonical encoding, not of small order: \`bad-key\`), X25519 (RFC 7748; a small-order peer is
  \`bad-key\`), HKDF-SHA-512 (RFC 5869), AES-256-GCM, SHA-2-512, SHA-3-512 and HMAC-SHA-512 for UDFs,
  SHA-256 for the log.

## 2. Identifiers: Uniform Data Fingerprints

A key is named by the UDF of its public key: the SHA-2-512 content digest UDF (140 bits, shown as
28 Base32 characters dashed every 4) of the key's DER SubjectPublicKeyInfo (RFC 8410) under the
content type \`${KEYINFO_CONTENT_TYPE}\` (mesh/keys.ts, mesh/udf.ts):

    kid = contentUdf(SPKI(publicKey), "${KEYINFO_CONTENT_TYPE}")

- A device's identity is the UDF of its signature key: \`${d0.id}\`.
- An owner's lasting identity (the master profile UDF) is the UDF of the master signing key: \`${x.masterId}\`.
- A portal is the UDF of its key: \`${x.portalId}\`.
- An encryption key has its own UDF (the SPKI names X25519, so the same 32 bytes would give another
  UDF as an Ed25519 key): device 0's encryption key is \`${encKeyId(d0.keys.enc.publicKey)}\`.
- A label carries the first ${LABEL_FINGERPRINT_BITS} bits of the device UDF (at least 125, seed §4.2.1) as its fingerprint: \`${d0.fingerprint}\`.
- The label's claim code is the 16-byte claim secret as a key UDF (type 0x20, starts with E): \`${claimCode(d0.claimSecret)}\`.
- Nonces are nonce UDFs (type 0x68, 16 random bytes).
- Escrow: the 32-byte master seed split 2-of-3 into share UDFs (mesh/shamir.ts); all master keys
  derive from the seed (\`HKDF-SHA-512(seed, salt = "", info = "mmm-master-sign-v1" | "mmm-master-escrow-v1", 32)\`),
  so any two shares rebuild the same master identity. Example shares of this example's seed:

${block('', x.escrowShares.join('\n'))}
## 3. Signed envelopes

mesh/envelope.ts. The exact payload bytes travel (base64url) with one or more signatures over them;
a verifier checks the bytes it received and parses them afterwards, never re-serialized JSON:

    to-be-signed = "mmm-sig-v1" || 0x00 || payload
    sig          = Ed25519(signing key, to-be-signed)

\`\`\`
{ "payload": b64u(payload bytes),
  "sigs": [ { "kid": UDF of the signing key, "key"?: b64u(public key), "sig": b64u(64 bytes) } ] }
\`\`\`

At most ${MAX_SIGNATURES} signatures. \`key\` is carried only where the verifier cannot know the key otherwise (a
manufacturer's endorsement); elsewhere the verifier knows the key from the profile that lists it.
Refusals: \`unknown-signer\` (no signature by the expected key, or no key the verifier trusts),
\`bad-signature\` (the signature by that key does not verify), \`bad-key\` (the key is of small order
or non-canonical), \`malformed\`, \`too-large\`.

## 4. Encrypted envelopes

A fresh 256-bit content key (cek) per envelope seals the content with AES-256-GCM; the cek is
wrapped for each recipient with one ephemeral X25519 key per envelope:

    kek_i = HKDF-SHA-512(ikm = X25519(eph, R_i), salt = epk || R_i, info = "mmm-wrap-v1", 32)
    wk_i  = AES-256-GCM(kek_i, iv = 0^96, cek, aad = kid_i)          (kek_i is single-use)
    ct    = AES-256-GCM(cek, iv, plaintext, aad = "mmm-enc-v1" || epk)

\`\`\`
{ "epk": b64u(ephemeral X25519 public key),
  "recipients": [ { "kid": UDF of R_i, "wk": b64u(48 bytes: wrapped cek || tag) } ],
  "iv": b64u(12 bytes), "ct": b64u(ciphertext || 16-byte tag) }
\`\`\`

At most ${MAX_RECIPIENTS} recipients. Refusals: \`not-a-recipient\` (our key is not listed), \`decrypt-failed\`
(anything changed, or the wrong key), \`bad-key\` (a small-order key).

### Parted: one configuration to many devices (application profiles)

An application profile made now is **parted** (seed §6.5): the signed payload holds only what
every recipient shares, \`sealed\`, and the **manifest** of the recipients' parts, \`parts\`; each
recipient's **part** (its wrapped key) travels unsigned in the envelope's \`parts\` list, beside
\`payload\` and \`sigs\`. The owner publishes every part; the portal checks them against the manifest
and stores the envelope once and each device's part with that device's feed item; a device is
served the envelope with its own part only, so what it downloads and checks for a change does not
depend on how many devices the change went to.

    kc    = HKDF-SHA-512(ikm = cek, salt = epk, info = "mmm-kc-v1", 32)        (signed: the key commitment)
    kek_i = HKDF-SHA-512(ikm = X25519(eph, R_i), salt = epk || R_i, info = "mmm-wrap-v1", 32)
    wk_i  = AES-256-GCM(kek_i, iv = 0^96, cek, aad = "mmm-part-v1" || 0 || kid_i || 0 || device_i)
    ct    = AES-256-GCM(cek, iv, plaintext, aad = "mmm-parts-v1" || epk)
    leaf_i = device_i || "\\n" || kid_i || "\\n" || wk_i       (device_i is empty for an owner's own key)
    manifest = { "n": number of parts, "root": b64u(RFC 9162 Merkle root over leaf_i, in order) }

\`\`\`
sealed: { "epk": b64u(32), "iv": b64u(12), "ct": b64u(ciphertext || tag), "kc": b64u(32) }
parts:  [ { "device": device UDF (absent for an owner's key), "kid": UDF of R_i, "wk": b64u(48) } ]
\`\`\`

A device checks its own part without the others: its wrapping key comes from the **signed**
ephemeral key, whose private half only the signer held, so no one else (the portal, another
recipient who knows the content key) can make a part that opens for it; the key the part yields
must match the signed \`kc\`; the part is bound to the device's key and id. The manifest lets the
portal, and an owner holding all parts, check that the list is exactly the one signed: a publish
without every part, with a part changed, added, repeated or reordered, is refused \`bad-part\`. At most
${MAX_PARTS} parts. Refusals: \`not-a-recipient\` (no part for us), \`decrypt-failed\` (a part or the
ciphertext changed, or made by anyone but the signer), \`bad-part\` (a key other than the committed
one; parts that do not match the manifest). Profiles made before parts (a signed \`devices\` list and
an encrypted envelope as above in \`config\`) are still verified and opened.

Example: the \`sealed\` and \`parts\` of the application profile in section 5, to target devices 0
and 1 and to the administration device:

${block('json', pretty({ sealed: appPayload.sealed, parts: appPayload.parts }))}
What the portal serves device 0 (the signed envelope and its own part):

${block('json', pretty(servedToD0))}
Opened by target device 0 (device 2, not a target, gets \`not-a-recipient\`):

${block('json', pretty(opened))}
## 5. Profiles

mesh/profiles.ts. Four profiles, each a signed envelope whose payload has a \`type\`:

| profile | signed by | verified against |
|---|---|---|
| device | the device's own signature key (self-signed) | the device UDF, when the verifier expects one (\`wrong-device\`) |
| master | the master signing key | the trusted master UDF the verifier holds (\`wrong-master\`) |
| personal | an administration key the master lists | the master (\`unknown-signer\`, \`revoked-key\`, \`wrong-master\`) |
| application | an administration key the master lists | the master; its config is encrypted to the target devices |

The one verification function \`verify(trustedMaster, { master, object? }, { device? })\` returns
the verified master, personal or application profile (with the configuration decrypted when a
target device is given) or throws a MeshError whose code says why.

${envelope('Device profile', d0.profile, 'Self-signed by the device signature key `sign`; `enc` (X25519) receives configuration; `auth` (Ed25519) signs session requests. The device UDF is the UDF of `sign`. `apps` (optional: profiles made before devices declared them have none) lists the applications the device runs, each with the fingerprint of the JSON Schema it accepts: the content UDF (SHA-2, 200 bits, content type `application/schema+json`) of the schema\'s canonical JSON (object keys sorted, no spaces); mesh/schema.ts `schemaFingerprint`.')}
${envelope('Manufacturer endorsement', d0.endorsement, 'Signed by the manufacturer, whose key travels in the signature (`key`). Whether that manufacturer key is trusted is the verifier\'s decision; a wrong device or any failure is `endorsement-invalid`.')}
${envelope('Master profile', x.master, 'Signed by the master signing key `sign`; lists the administration keys (`admins`), the escrow keys and the revoked administration key UDFs; `seq` grows with every new version.')}
${envelope('Master profile, seq 2 (an administration key revoked)', x.masterV2, 'The same master key, a higher `seq`: the phone is removed from `admins` and its key UDF listed in `revoked`. Anything it signs is now `revoked-key`.')}
${envelope('Personal profile', x.personal, 'Signed by an administration key; names its master, the account, the connected devices (with their encryption keys) and the applications; optionally `schemas`, one copy of each JSON Schema the devices declare, keyed by its fingerprint: a recovered or newly joined administration device takes each device\'s schemas from here, keeping only those whose fingerprint the device\'s own signed profile declares (absent in profiles written before it). A device registered at another portal than the account\'s (section 6, "Co-owning a device at another portal") has an optional `portal`: that portal\'s `url`, key UDF `id`, `key` and `name`, so that the owner\'s other administration devices talk to it there.')}
${envelope('Application profile', x.application, 'Signed by an administration key; parted (section 4): `sealed` is the configuration encrypted once, `parts` the manifest of the recipients\' parts, which travel beside the payload in the envelope\'s `parts` (here as the owner publishes it: the target devices 0 and 1 and the administration device). The portal verifies the signature chain and the parts against the manifest but cannot read the configuration; each device is served its own part only.')}

## 6. Onboarding and claims

mesh/claim.ts. At manufacture a 128-bit secret is made per device and printed on its label. The
label's QR code holds an https:// URI of the portal with the secret in the URI's **fragment**:

    https://<portal host[:port]>/claim#code=<secret as key UDF>&fp=<device fingerprint>&m=<manufacturer>

Example: \`${d0.labelUri}\`.

- A phone's camera opens it as a web page; a browser never sends the fragment, so the portal
  never receives the secret. The portal serves a static page at \`GET /claim\` (the same for
  every device, no script) that says to run \`mesh device claim '<this URI>'\` or use the owner app.
- \`fp\` is the device fingerprint cut to ${LABEL_FINGERPRINT_BITS} bits (${LABEL_FINGERPRINT_BITS / 5} characters): UDF cuts come in
  20-bit steps, and ${LABEL_FINGERPRINT_BITS} is the first at or above the 125 bits seed §4.2.1 asks for. A shorter
  fingerprint is refused (\`udf-too-short\`). \`m\` (the manufacturer) is optional; the parts may
  come in any order, each once; no other part is allowed.
- \`mesh device claim\` also accepts the older form
  \`mcu://<manufacturer>@<portal>/<secret as key UDF>?fp=<device fingerprint>\` (with a
  fingerprint of ${LABEL_FINGERPRINT_BITS} bits) and the code and the fingerprint typed by hand, separated by a space.
Both sides derive from the secret, with HKDF-SHA-512 (salt empty) and distinct info strings:

| value | derivation | who holds it |
|---|---|---|
| claimId | b64u(HKDF(secret, info = "mmm-claim-id-v1", 16)) | the portal indexes the device's registration under it |
| blobKey | HKDF(secret, info = "mmm-claim-blob-v1", 32) | seals the device's profile + endorsement (and epoch and schemas): the portal cannot read or swap it |
| portalKey | HKDF(secret, info = "mmm-claim-portal-v1", 32) | given to the portal, so it can check claims and count failed guesses without the secret |
| deviceKey | HKDF(secret, info = "mmm-claim-device-v1", 32) | device and claimant only: the device's proof that the claimant held the label |

The blob is \`b64u(iv) "." b64u(AES-256-GCM(blobKey, iv, JSON({profile, endorsement, epoch, schemas}), aad = "mmm-claim-blob-v1"))\`.
\`schemas\` maps each application the profile declares to its JSON Schema; the owner keeps a schema only
when its fingerprint is the one in the signed profile, and checks values against it before publishing.
An invitation's record carries the schemas the inviter holds, checked the same way.
The claim carries two proofs over the same input:

    input       = "mmm-claim-v1" || 0 || master || 0 || device || 0 || account || 0 || nonce
    portalProof = HMAC-SHA-512(portalKey, input)      checked by the portal (Claim transaction)
    deviceProof = HMAC-SHA-512(deviceKey, input)      checked by the device (its feed)

A wrong secret is \`bad-claim-proof\`.

${envelope('Claim', x.claim, 'Signed by an administration key of the claiming owner; delivered to the device with the master profile it chains to. `epoch` is the device\'s ownership epoch, which the claimant read from the label record (the agent seals it in with its profile when it registers); a claim for another epoch is `wrong-epoch`.')}
### Consent and invitations

mesh/invite.ts. The label claims a device only while it has no owner, or while someone holding
the device opened its claim window (\`mesh-agent open-claim-window\`); otherwise the device
refuses the claim \`not-invited\` (and uses up its nonce). Anyone else joins by an invitation from
a current owner (not a guest). The inviting owner makes a fresh 128-bit invitation secret and
derives from it, as from a label's (info strings \`mmm-invite-id-v1\`, \`mmm-invite-blob-v1\`,
\`mmm-invite-portal-v1\`, \`mmm-invite-device-v1\`), the claim id, the blob key, the portal-proof
key and the device-proof key. She posts the signed \`invite\` to the device's feed (Post, with the
record for the invitee), and gives the invitee the URI, secret in the fragment:

    https://<portal>/invite#code=<secret as key UDF>&fp=<device fingerprint, 140 bits>

Example: \`${x.invitation}\`.

${envelope('Invite', x.invite, 'Signed by an administration key of the inviting owner. `key` is the device-proof key encrypted to the device (the portal cannot make a claim the device accepts). `ttl` (seconds) and a guest\'s `grant.until` are turned by the device into durations on its own clock from the moment the invitation reaches it (`until` minus `created`, both the inviter\'s clock): neither the inviter\'s clock nor whether the device\'s was ever set decides anything. A guest may set only the listed applications (`keys`: only those keys; `ranges`: numbers within [min, max]).')}
The invitee's CLI looks the record up (ClaimLookup with the invitation's claim id), opens it with
the secret (the device profile, checked against \`fp\`; the epoch; the invitation's nonce; who
invites; the role and grant; when it expires) and claims naming the invitation:

${envelope('Claim with an invitation (a guest)', x.guestClaim, 'The proofs are made with the invitation\'s keys; `invite` is the invitation\'s nonce. The portal checks `portalProof`, marks the invitation used (`invitation-used` after, `invitation-expired` past its time) and puts the claim in the feed; the device checks `deviceProof` with the key the invitation carried, that the invitation came from a current owner, is unused and within its time on the device clock, and then never accepts it again.')}
The device records the invitee as an owner or a guest (\`invitedBy\`, \`since\`, the grant) and lists
them in its signed status. A guest's change outside its grant is \`out-of-scope\`, after its end
\`grant-expired\`; a guest's invitation is \`not-permitted\`. Invitations of an owner who leaves,
and all of them at a factory reset, are void.

### Co-owning a device at another portal (the Intermesh)

A device trusts its owners by their master fingerprint, not by their portal, so the invitee's
account may live at another portal (its home). The invitation URI names the device's portal;
the invitee's CLI (\`mesh device claim INVITATION [--portal URL]\`) talks to that portal for this
device only. It checks the portal's self-signed profile (the key is pinned in the device's record
on first contact, as the home portal's is in the profile), and, when Session answers \`not-found\`,
binds itself there as a **visitor**: BindAccount with \`home\`, the master profile, a personal
profile for the home account that lists no device (the visited portal learns nothing of the
owner's other devices) and a session request signed by an administration key the master lists:

${wire('visitorBindAccountRequest')}
The portal verifies it exactly as a binding of its own account (the master's self-signature, the
personal profile and the session request under it, freshness, the new-record budgets) and binds
\`alice@<home>\`; the first master bound to a name keeps it (\`conflict\`). A visitor's sessions
are Session's as usual, and a visitor may only: look up and claim with an invitation (a label is
\`forbidden\`), publish configurations for devices that list it (the Publish check that every
target is linked to the account) and its master profile, and read its devices' status
(DeviceStatus, which lists only those). Post (remove, invite, move), a personal profile and Join
are \`forbidden\` to it. On each visit the CLI reads (Account) the master profile the visited
portal holds, verifies it, and publishes its own when that is newer, so that a revocation at home
reaches the visited portal and the devices' feeds there. An administration device the visited
portal does not know yet (added at home since the binding: Session is \`unknown-signer\`) binds
again with the newer master profile; BindAccount judges a repeat by the newer of the presented and
the held master profile, so a key revoked since cannot come back with an older one. The claim's receipt, and each configuration's, is proven against the
visited portal's pinned key; a configuration is published, with the same number, to each portal
for its own devices, and always to the home portal (for the devices there, perhaps none), so that
the home portal holds the account's latest number for every application.

## 7. Messages

mesh/messages.ts.

${envelope('Remove', x.remove, 'Signed by an administration key of the owner that leaves the device. Verified against that owner\'s master: a removal signed by another owner\'s key is `unknown-signer`; one that names another owner\'s master is `not-owner`.')}
${envelope('Move', x.move, 'Signed by an administration key of an owner who moved its account to another portal (`mesh account move`, `mesh device move`): `portal` is the new portal\'s URL, `portalId` its UDF (the device pins it there). Posted on the old portal (the device must be linked to the account: `forbidden` otherwise) it goes into the device\'s feed; the device moves once every owner (not guests) has asked for the same portal, keeping its owners, configuration, rollback state and epoch, and registers at the new one. Posted on the new portal (its own UDF in `portalId`) it links the device, once registered there, to the account (`not-found` before). A move naming the portal the device is on is accepted and changes nothing; `unknown-owner`, `wrong-device`, `wrong-epoch`, `replay` as for a removal.')}
${envelope('Status (device to owners)', x.status, 'Signed by the device signature key. `owners` lists every owner and guest (`role`, `since` on the device clock, `invitedBy`, a guest\'s `grant` in words); `lastContact` is the newest data the device has heard from the portal (owners judge staleness from it); `treeHead` is the log head the device last verified; `epoch` is its ownership epoch (a new one after a factory reset: the portal then drops the feed items up to `n`, the last the device read). An error\'s `message` here is only the meaning of its code: the full text may name a setting or a value, so it travels in `private`, encrypted envelopes (section 4) to the current owners\' administration keys (and, for each guest, one with only what its grant covers and its own refusals).')}
The private part, decrypted (mesh/messages.ts \`PrivateStatus\`; at most ${MAX_PRIVATE_STATUS_BYTES} bytes, else \`effective\` is left out and \`truncated\` set): the effective value of each setting with who set it, in which feed item (\`n\`: precedence is feed order) and the time they wrote; guests' grants; the full refusals. \`mesh device show\` prints it.

${block('json', pretty(x.privateStatus))}
${envelope('Session request (device)', x.session, 'Signed by the device authentication key; subject = device UDF. `challenge` is what GET Challenge answered: the portal accepts the request if it issued the challenge less than 5 minutes ago by its own clock, once, and ignores `created` (this board has no real-time clock and says 1970). Each nonce once.')}
${envelope('Session request (owner)', x.ownerSession, 'Signed by an administration key (or the master key, for recovery); subject = the account.')}
#### Session challenges

mesh/challenge.ts; portal/sessions.ts. Nothing a device or an owner does may depend on another
party's clock, and a board without a real-time clock boots at 1970; so a session request is made
fresh by the portal's clock alone. The client first GETs a challenge, signs it into the session
request (\`challenge\`), and the portal accepts the request when:

- the challenge's MAC is its own (else \`bad-challenge\`): any portal process holding the same
  portal key checks what another issued, with no shared state;
- it issued the challenge at most ${CHALLENGE_TTL_MS / 60_000} minutes ago by its own clock (or at most a minute ahead:
  another process's clock), else \`replay\`;
- the challenge and the request's nonce were never used before (kept in the database, shared by
  every process), else \`replay\`.

The request's \`created\` is then the signer's clock, for display only. The challenge:

    body      = issued (ms since the epoch, portal clock, 8 bytes big-endian) || 16 random bytes
    mac       = first 32 bytes of HMAC-SHA-512(K, "mmm-challenge-v1" || 0x00 || body)
    challenge = base64url(body || mac)        (75 characters; the canonical encoding only)
    K         = HKDF-SHA-512(portal signing key seed, salt = "", info = "mmm-session-challenge-v1", 32)

Clients treat it as opaque. A request without \`challenge\` (a client older than challenges) is
still judged by \`created\`, within 5 minutes of the portal's clock; a client facing a portal
without the Challenge transaction (\`not-found\`) sends one.

${envelope('Signed tree head', x.log.treeHead, 'Signed by the portal key: the size and SHA-256 root of the log (section 10).')}
${envelope('Portal profile', x.portalProfile, 'Self-signed by the portal key; the portal UDF is the UDF of `sign`.')}
${envelope('Join (a second administration device)', x.join, `Self-signed by the new administration device's key \`sign\`. It proves knowledge of the one-time PIN the existing administration device shows (here \`${x.pin}\`; upper-cased, dashes and spaces removed before use):\n\n    mac = HMAC-SHA-512(HKDF-SHA-512(PIN, salt = "", info = "mmm-pin-v1", 32), account || 0 || sign || 0 || enc || 0 || nonce)\n\nA wrong PIN is \`bad-claim-proof\`.`)}
## 8. HTTP transactions

mesh/protocol.ts \`PATHS\`; client/portal-client.ts is the client. Every transaction is under
\`${'/.well-known/mmm/'}\`, with JSON bodies. Authentication is \`Authorization: Bearer <token>\`,
the token coming from Session, Register (device) or BindAccount (owner); a device token opens only
device transactions and an owner token only owner transactions (else \`forbidden\` 403).
An unchanged Download is one cheap round trip: a token lookup and a cursor comparison.

Common refusals of every transaction: \`malformed\` 400 (body or query does not parse; also 405 for
the wrong method, with an \`Allow\` header), \`unauthorized\` 401 (no token, or an unknown or
expired one; \`WWW-Authenticate: Bearer\`), \`forbidden\` 403, \`not-found\` 404 (no such path),
\`too-large\` 413 (body over ${LIMITS.maxBodyBytes} bytes), \`rate-limited\` 429 (per address and per
session; \`Retry-After\`), \`internal\` 500, \`unavailable\` 503.

| transaction | method | path | auth |
|---|---|---|---|
${TXS.map((t) => `| ${t.name} | ${t.method} | \`${PATHS[t.name]}\` | ${t.auth} |`).join('\n')}

`);
  for (const t of TXS) p(tx(t));
  p(`An unchanged Download (nothing after \`since\`):

${wire('downloadUnchangedResponse')}
A Download with \`log=2\` (the device holds the log head of 2 leaves): the same items, each with
\`path\`, its RFC 9162 inclusion proof (base64url hashes) of leaf \`index\` in the head
\`log.treeHead\` (a checkpoint, section 10), and \`log.consistency\`, the consistency proof from
\`log.from\` leaves (the device's head) to that head. An item the head does not hold yet (another
portal process logged it) comes without \`path\`; an answer without items carries no \`log\`.
What the device does with it is in docs/agent.md (mesh/feedlog.ts, agent/logged.ts):

${wire('downloadLogResponse')}
An owner's Session (subject = account), and its answer:

${wire('ownerSessionRequest')}
${wire('ownerSessionResponse')}
A Post carrying an invitation (the owner invites a guest; section 6), answered like any Post:

${wire('postInviteRequest')}
A Claim accepting that invitation (the claim id is the invitation's):

${wire('inviteClaimRequest')}
## 9. Push (MQTT)

When Hello's \`mqtt\` is not null, a device may also hear its feed pushed over MQTT 3.1.1:

- Connect with username = the device UDF and password = a fresh session request (the JSON of a
  signed session payload, as in the Session transaction: signature by the authentication key,
  a challenge fetched just before with GET Challenge, an unused nonce). Clean session; no will.
- Subscribe to its own topic only, QoS 1; devices may not publish:

      ${deviceTopic(d0.id)}

- Each payload is one feed item, the same JSON as an element of Download's \`items\`, QoS 1, not
  retained. Push is best effort: item numbers \`n\` count 1, 2, 3, ... per device; a device that
  holds n-1 applies a pushed item n at once, and downloads on any gap.

Payload example (the first item of the Download example):

${block('json', pretty((x.wire.downloadResponse as { items: unknown[] }).items[0]))}
## 10. The transparency log

The portal appends one leaf per accepted object. The leaf data is the exact payload bytes of each
accepted master, personal, application, claim and remove object (the signed bytes, not the
envelope). Hashing is RFC 9162 §2.1.1 with SHA-256 (mesh/merkle.ts):

    leaf hash = SHA-256(0x00 || payload bytes)
    node hash = SHA-256(0x01 || left || right)
    empty     = SHA-256("")

The tree head signs \`{type: "treehead", size, root, created}\`; Log/Inclusion and Log/Consistency
serve RFC 9162 §2.1.3 and §2.1.4 proofs, Log/Entry the leaf data. The examples above were logged in
this order:

| index | kind | leaf hash |
|---|---|---|
${x.log.leaves.map((l, i) => `| ${i} | ${l.kind} | \`${Buffer.from(x.log.tree.leafHashAt(i)).toString('hex')}\` |`).join('\n')}

Root of the ${x.log.tree.size} leaves: \`${Buffer.from(x.log.tree.root()).toString('hex')}\` (base64url \`${b64u(x.log.tree.root())}\`).

### Checkpoints

mesh/checkpoint.ts. The same head is served as a standard checkpoint (c2sp.org/tlog-checkpoint,
a c2sp.org/signed-note) at \`GET /checkpoint\` (text/plain), so tools made for other transparency
logs read and check it. Its origin and key name are \`<portal name>/mmm-log\`; the signature is
Ed25519 by the portal key over the note text, behind a key ID:

    key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)[:4]
    line   = "— " key name " " base64(key ID || signature)

Base64 here is standard with padding (RFC 4648 §4). Other signature lines (a witness's) are
ignored by a verifier that does not know their key. test/interop/verify_checkpoint.py checks
the portal's checkpoints from the specifications alone (Python, the standard library, RFC 8032's
reference Ed25519); \`npm test\` runs it. The examples' log as a checkpoint:

${block('', signCheckpoint({ origin: logOrigin(x.portalName), size: x.log.tree.size, root: x.log.tree.root() }, x.keys.portal))}
${witnessSection(x)}
## 11. Errors

Every refusal is \`{"error":{"code","message","detail"?}}\` with the HTTP status of its code;
clients act on the code, never the message. Example (a 429 with \`Retry-After: 1740\`):

${block('json', pretty(x.wireError))}
${errorCodeTable()}
The list is \`MESH_ERRORS\` in mesh/errors.ts; the portal's status for each is portal/status-codes.ts
(test/error-codes.test.ts checks this table against both). A client that meets a code not in the
list does not guess: it is \`bad-answer\`, with the raw code in \`detail.code\` (the portal's answer is
wrong, not the caller's input). Only a refusal with no code at all falls back on its status:
401 \`unauthorized\`, 429 \`rate-limited\`, 5xx \`unavailable\`, anything else \`bad-answer\`
(client/portal-client.ts). \`bad-answer\` is also what the owner's CLI says of an answer whose
objects or receipts do not verify (docs/admin.md).
`);
  return out.join('\n');
}

/** §10's witnesses: a cosigned checkpoint, the message cosigned, an add-checkpoint exchange (mesh/cosignature.ts, witness/). */
function witnessSection(x: ReturnType<typeof buildExamples>): string {
  const witness = { name: 'witness.example.org/w1', key: c.ed25519KeyPair(exampleSeed('witness')) };
  const origin = logOrigin(x.portalName);
  const tree = x.log.tree;
  const note = signCheckpoint({ origin, size: tree.size, root: tree.root() }, x.keys.portal);
  const text = note.slice(0, note.lastIndexOf('\n\n') + 1);
  const time = 1_785_000_000;
  const line = cosign(text, witness, time);
  const vkey = formatVkey({ name: witness.name, publicKey: witness.key.publicKey });
  const logVkey = formatVkey({ name: origin, publicKey: x.keys.portal.publicKey }, NOTE_ED25519_TYPE);
  const request = formatAddCheckpoint({ old: 2, proof: tree.consistencyProof(2), note });
  return `### Witnesses and cosignatures

mesh/cosignature.ts (c2sp.org/tlog-cosignature, the Ed25519 \`cosignature/v1\` type), witness/ (the
\`mesh-witness\` process, c2sp.org/tlog-witness). A witness is a name and an Ed25519 key, written as
a verifier key \`<name>+<hex key ID>+<base64(0x04 || key)>\`; the log's own key likewise with 0x01
(the portal's \`/healthz\` says it as \`logKey\`). Here:

    witness: ${vkey}
    log:     ${logVkey}

A witness holds, per log, the last checkpoint it cosigned, and cosigns a new one only with a
consistency proof from it. The portal (\`--witness URL=VKEY\`) sends each new head with
\`POST <witness>/add-checkpoint\`: \`old <size the witness holds>\`, the proof (one base64 hash a
line), a blank line, the checkpoint:

${block('', request)}
The answer is 200 with the cosignature line(s); 409 (\`text/x.tlog.size\`) with the size the
witness holds when \`old\` is not it (the portal asks again from there); 422 when the proof does not
verify (another history: a split view); 403 for a checkpoint not signed by the log's key; 404 for
a log it does not witness. The cosignature is a signature line

    — <witness name> base64(key ID || u64 big-endian timestamp || Ed25519 signature)
    key ID = SHA-256(witness name || 0x0A || 0x04 || 32-byte public key)[:4]

over the message

${block('', `cosignature/v1\ntime ${time}\n${text}`)}
and the portal serves the checkpoint with the cosignatures it got (at \`GET /checkpoint\` and as
Download's \`log.treeHead\`, which is then the newest head the witnesses cosigned):

${block('', addSignatures(note, line))}
An owner requires witnesses in its master profile (\`witnesses\`: verifier keys, at most 16;
\`quorum\`: how many must have cosigned, 0 by default; \`mesh log witnesses\`): its devices and
\`mesh log verify\` then accept a head only with the portal's signature and at least that many of
these cosignatures (\`not-witnessed\`). test/interop/verify_checkpoint.py checks cosignatures too
(\`--cosigner NAME=KEY\`).

**Portals witness each other (the Intermesh's quorum of hash values).** A portal started with
\`--witness-for LOGKEY,...\` is a witness for those portals' logs: it answers the same
\`POST /add-checkpoint\` at its root and cosigns as \`<its name>/witness\` with its own portal key
(as a cosigner key, type 0x04: \`/healthz\` \`witnessKey\`), keeping what it cosigned in its data
directory. Two portals each started with \`--witness-for\` the other's \`logKey\` and
\`--witness\` the other's URL and \`witnessKey\` serve checkpoints cosigned by each other, and
neither can get a fork of its log cosigned by the other (test/hostile/intermesh.test.ts).
`;
}

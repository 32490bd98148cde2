/**
 * mesh/messages.ts and mesh/claim.ts: claims (label, derivations, blob, proofs), remove, status,
 * session (time window), tree head, portal profile, join + PIN. Fixtures are the real examples of
 * harness/protocol-examples.ts.
 */
import { codeOf } from './helpers/code-of.js';
import test from 'ava';
import fc from 'fast-check';
import * as c from '../mesh/crypto.js';
import { b64u, fromB64u, utf8 } from '../mesh/bytes.js';
import { payloadBytes, signJson, type SignedEnvelope } from '../mesh/envelope.js';
import { masterKeysFromSeed, signKeyId } from '../mesh/keys.js';
import { adminEntry, createMasterProfile, verifyMasterProfile, type AdminKeys } from '../mesh/profiles.js';
import {
  SESSION_SKEW_MS,
  checkSessionTime,
  createClaim,
  createJoin,
  createPortalProfile,
  createRemove,
  createSession,
  createStatus,
  createTreeHead,
  parseClaimPayload,
  parseJoin,
  parseSessionPayload,
  parseStatusPayload,
  peekType,
  verifyClaim,
  verifyJoinPin,
  verifyPortalProfile,
  verifyRemove,
  verifyStatus,
  openPrivateStatus,
  verifyTreeHead,
} from '../mesh/messages.js';
import {
  CLAIM_SECRET_LEN,
  checkProof,
  claimCode,
  claimProofs,
  cutUdf,
  deriveClaimSecrets,
  LABEL_FINGERPRINT_BITS,
  labelUri,
  newClaimSecret,
  openClaimBlob,
  parseClaimLabel,
  sealClaimBlob,
  shortFingerprint,
} from '../mesh/claim.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { leafHash, verifyInclusion } from '../mesh/merkle.js';
import { normalizeUdf } from '../mesh/udf.js';
import { CHALLENGE_FUTURE_MS, CHALLENGE_TEXT, CHALLENGE_TTL_MS, challengeKey, checkChallenge, makeChallenge } from '../mesh/challenge.js';
import { EXAMPLE_SCHEMA, buildExamples, type ExampleDevice } from '../harness/protocol-examples.js';


const x = buildExamples();
const [d0, d1, d2] = x.devices as [ExampleDevice, ExampleDevice, ExampleDevice];
const master = verifyMasterProfile(x.master, x.masterId);
const masterV2 = verifyMasterProfile(x.masterV2, x.masterId);
const payloadOf = (env: SignedEnvelope): Record<string, unknown> => JSON.parse(Buffer.from(payloadBytes(env)).toString('utf8')) as Record<string, unknown>;
const tampered = (env: SignedEnvelope, change: (p: Record<string, unknown>) => unknown): SignedEnvelope => ({ payload: b64u(utf8(JSON.stringify(change(payloadOf(env))))), sigs: env.sigs });

/** A second owner, Bob, with his own master and administration key. */
const bobAdmin: AdminKeys = { name: 'bob-laptop', sign: c.ed25519KeyPair(), enc: c.x25519KeyPair() };
const bobKeys = masterKeysFromSeed(c.randomBytes(32));
const bobMaster = verifyMasterProfile(createMasterProfile(bobKeys, [adminEntry(bobAdmin)]), signKeyId(bobKeys.sign.publicKey));

// ---------------------------------------------------------------- claim: label, derivations, blob

test('claim secrets: the derivations are HKDF-SHA-512 with the documented info strings (cross-checked with noble)', (t) => {
  const s = d0.claimSecret;
  const h = (info: string, n: number): Uint8Array => hkdf(sha512, s, new Uint8Array(0), utf8(info), n);
  t.is(d0.secrets.claimId, b64u(h('mmm-claim-id-v1', 16)));
  t.deepEqual(d0.secrets.blobKey, h('mmm-claim-blob-v1', 32));
  t.deepEqual(d0.secrets.portalKey, h('mmm-claim-portal-v1', 32));
  t.deepEqual(d0.secrets.deviceKey, h('mmm-claim-device-v1', 32));
  // deterministic, and the four values are distinct
  t.deepEqual(deriveClaimSecrets(new Uint8Array(s)), d0.secrets);
  t.is(new Set([b64u(d0.secrets.blobKey), b64u(d0.secrets.portalKey), b64u(d0.secrets.deviceKey)]).size, 3);
  t.is(codeOf(() => deriveClaimSecrets(new Uint8Array(CLAIM_SECRET_LEN - 1))), 'malformed');
});

test('claim label: the URI and the typed "CODE FINGERPRINT" form round trip; mistyped codes are refused with their code', (t) => {
  const l = parseClaimLabel(d0.labelUri);
  t.is(l.manufacturer, 'acme');
  t.is(l.portal, x.portalName);
  t.deepEqual(l.secret, d0.claimSecret);
  t.is(l.fingerprint, shortFingerprint(d0.id));
  t.true(d0.id.startsWith(l.fingerprint));
  const typed = parseClaimLabel(`  ${claimCode(d0.claimSecret).toLowerCase()}   ${d0.fingerprint.replace(/-/g, '')}\n`);
  t.deepEqual(typed.secret, d0.claimSecret);
  t.is(typed.fingerprint, d0.fingerprint);
  const code = claimCode(d0.claimSecret);
  t.is(codeOf(() => parseClaimLabel(`${code.slice(0, -1)} ${d0.fingerprint}`)), 'bad-udf');
  t.is(codeOf(() => parseClaimLabel(`${code.replace(/^E/, 'M')} ${d0.fingerprint}`)), 'bad-udf');
  t.is(codeOf(() => parseClaimLabel(`${code} ${d0.fingerprint.slice(0, 10)}`)), 'udf-too-short');
  t.is(codeOf(() => parseClaimLabel(`${code} ${d0.fingerprint.replace(/.$/, '1')}`)), 'bad-udf');
  t.is(codeOf(() => parseClaimLabel('mcu://nope')), 'malformed');
  t.is(codeOf(() => parseClaimLabel(`${code} ${d0.fingerprint.slice(0, 24)}`)), 'udf-too-short');
  t.is(codeOf(() => parseClaimLabel(`${d0.fingerprint} ${code}`)), 'bad-udf');
  t.is(codeOf(() => parseClaimLabel('one-word')), 'malformed');
  t.is(codeOf(() => parseClaimLabel('x'.repeat(401))), 'too-large');
  t.is(codeOf(() => parseClaimLabel(42 as unknown as string)), 'malformed');
});

test('claim label: the https:// URI with the code in its fragment, the older mcu:// form, and fingerprints of at least 125 bits', (t) => {
  const code = claimCode(d0.claimSecret);
  t.is(LABEL_FINGERPRINT_BITS, 140);
  t.is(normalizeUdf(d0.fingerprint).length, 28);
  t.is(d0.labelUri, `https://${x.portalName}/claim#code=${code}&fp=${d0.fingerprint}&m=acme`);
  const u = new URL(d0.labelUri);
  t.is(u.pathname + u.search, '/claim', 'what a browser sends to the portal carries no secret');
  t.false((u.origin + u.pathname + u.search).includes(normalizeUdf(code).slice(2, 12)));
  // the parts in any order, without the maker, with a port, over http on a test network
  for (const [uri, maker, portal] of [
    [`https://portal.example:8443/claim#fp=${d0.fingerprint}&code=${code}`, '', 'portal.example:8443'],
    [`http://127.0.0.1:8080/claim#m=acme&code=${code.toLowerCase()}&fp=${d0.fingerprint}`, 'acme', '127.0.0.1:8080'],
    [`mcu://acme@portal.example/${code}?fp=${d0.fingerprint}`, 'acme', 'portal.example'],
  ] as const) {
    const l = parseClaimLabel(uri);
    t.deepEqual(l.secret, d0.claimSecret, uri);
    t.is(l.fingerprint, d0.fingerprint, uri);
    t.is(l.manufacturer, maker, uri);
    t.is(l.portal, portal, uri);
  }
  // a fingerprint under 125 bits (the former 100-bit labels) is refused, in every form
  const fp100 = cutUdf(d0.id, 100);
  t.is(codeOf(() => parseClaimLabel(`mcu://acme@portal.example/${code}?fp=${fp100}`)), 'udf-too-short');
  t.is(codeOf(() => parseClaimLabel(`https://portal.example/claim#code=${code}&fp=${fp100}`)), 'udf-too-short');
  t.is(codeOf(() => parseClaimLabel(`${code} ${cutUdf(d0.id, 120)}`)), 'udf-too-short');
  t.is(codeOf(() => parseClaimLabel(`${code} ${cutUdf(d0.id, 160)}`)), 'no error');
  // the wrong page, a query, a repeated or unknown part, a missing code: malformed
  for (const bad of [
    `https://portal.example/claim?code=${code}&fp=${d0.fingerprint}`,
    `https://portal.example/other#code=${code}&fp=${d0.fingerprint}`,
    `https://portal.example/claim?x=1#code=${code}&fp=${d0.fingerprint}`,
    `https://portal.example/claim#code=${code}&code=${code}&fp=${d0.fingerprint}`,
    `https://portal.example/claim#code=${code}&fp=${d0.fingerprint}&secret=1`,
    `https://portal.example/claim#fp=${d0.fingerprint}`,
    `https://user@portal.example/claim#code=${code}&fp=${d0.fingerprint}`,
    `https://portal.example/claim#code=${code}&fp=${d0.fingerprint}&m=ACME`,
    `ftp://portal.example/claim#code=${code}&fp=${d0.fingerprint}`,
    'https://',
  ]) {
    t.is(codeOf(() => parseClaimLabel(bad)), 'malformed', bad);
  }
  t.is(codeOf(() => parseClaimLabel(`https://portal.example/claim#code=${code.slice(0, -1)}&fp=${d0.fingerprint}`)), 'bad-udf');
});

test('claim label round trip (fast-check): any 16-byte secret and device key', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (secret, seed) => {
      const fp = shortFingerprint(signKeyId(c.ed25519KeyPair(seed).publicKey));
      const l = parseClaimLabel(labelUri({ manufacturer: 'acme', portal: 'portal.example:8443', secret, fingerprint: fp }));
      return Buffer.from(l.secret).equals(Buffer.from(secret)) && l.fingerprint === fp && l.portal === 'portal.example:8443';
    }),
    { numRuns: 100 },
  );
  t.is(newClaimSecret().length, CLAIM_SECRET_LEN);
});

test('claim blob: the device bundle sealed under the label secret opens with it; another secret or a change is decrypt-failed', (t) => {
  t.deepEqual(openClaimBlob(d0.secrets, x.claimBlob), JSON.parse(JSON.stringify({ profile: d0.profile, endorsement: d0.endorsement, epoch: parseStatusPayload(payloadBytes(x.status)).epoch, schemas: { thermostat: EXAMPLE_SCHEMA } })));
  t.is(codeOf(() => openClaimBlob(d1.secrets, x.claimBlob)), 'decrypt-failed');
  const [iv, ct] = x.claimBlob.split('.') as [string, string];
  const flipped = new Uint8Array(fromB64u(ct));
  flipped[3] = (flipped[3] as number) ^ 0x10;
  t.is(codeOf(() => openClaimBlob(d0.secrets, `${iv}.${b64u(flipped)}`)), 'decrypt-failed');
  t.is(codeOf(() => openClaimBlob(d0.secrets, `${iv}.${ct}.x`)), 'malformed');
  t.is(codeOf(() => openClaimBlob(d0.secrets, 5)), 'malformed');
  // sealed again: a fresh IV each time
  t.not(sealClaimBlob(d0.secrets, { a: 1 }), sealClaimBlob(d0.secrets, { a: 1 }));
});

// ---------------------------------------------------------------- claim proofs

test('claim: the portal checks the portal proof and the device the device proof; a wrong secret is bad-claim-proof', (t) => {
  const p = verifyClaim(x.claim, master, { key: d0.secrets.portalKey, which: 'portal' });
  t.is(p.device, d0.id);
  t.is(p.account, x.account);
  t.is(verifyClaim(x.claim, master, { key: d0.secrets.deviceKey, which: 'device' }).nonce, p.nonce);
  // the proofs are HMAC-SHA-512 over the documented input
  const input = utf8(`mmm-claim-v1\u0000${p.master}\u0000${p.device}\u0000${p.account}\u0000${p.nonce}`);
  t.is(p.portalProof, b64u(hmac(sha512, d0.secrets.portalKey, input)));
  t.is(p.deviceProof, b64u(hmac(sha512, d0.secrets.deviceKey, input)));
  // wrong secrets and crossed keys
  t.is(codeOf(() => verifyClaim(x.claim, master, { key: d1.secrets.portalKey, which: 'portal' })), 'bad-claim-proof');
  t.is(codeOf(() => verifyClaim(x.claim, master, { key: d1.secrets.deviceKey, which: 'device' })), 'bad-claim-proof');
  t.is(codeOf(() => verifyClaim(x.claim, master, { key: d0.secrets.portalKey, which: 'device' })), 'bad-claim-proof');
  t.is(codeOf(() => verifyClaim(x.claim, master, { key: d0.secrets.deviceKey, which: 'portal' })), 'bad-claim-proof');
  // a claimant who guessed at the secret: signed properly, proofs from another label
  const guessed = createClaim(x.keys.admin.sign, deriveClaimSecrets(newClaimSecret()), { device: d0.id, master: x.masterId, account: x.account });
  t.is(codeOf(() => verifyClaim(guessed, master, { key: d0.secrets.portalKey, which: 'portal' })), 'bad-claim-proof');
  t.is(codeOf(() => verifyClaim(guessed, master, { key: d0.secrets.deviceKey, which: 'device' })), 'bad-claim-proof');
});

test('claim: proofs are bound to master, device, account and nonce (fast-check over the fields)', (t) => {
  const base = { master: x.masterId, device: d0.id, account: x.account, nonce: payloadOf(x.claim).nonce as string };
  const proofs = claimProofs(d0.secrets, base);
  t.true(checkProof(d0.secrets.portalKey, base, proofs.portalProof));
  fc.assert(
    fc.property(fc.constantFrom<keyof typeof base>('master', 'device', 'account', 'nonce'), fc.string({ minLength: 1, maxLength: 30 }), (field, other) => {
      fc.pre(other !== base[field]);
      const changed = { ...base, [field]: other };
      return !checkProof(d0.secrets.portalKey, changed, proofs.portalProof) && !checkProof(d0.secrets.deviceKey, changed, proofs.deviceProof);
    }),
    { numRuns: 200 },
  );
  t.false(checkProof(d0.secrets.portalKey, base, 'not base64!'));
  t.false(checkProof(d0.secrets.portalKey, base, b64u(new Uint8Array(63))));
});

test('claim: signed by another owner is unknown-signer; by a revoked key revoked-key; naming another master wrong-master; changed bad-signature', (t) => {
  const byBob = createClaim(bobAdmin.sign, d0.secrets, { device: d0.id, master: x.masterId, account: x.account });
  t.is(codeOf(() => verifyClaim(byBob, master, { key: d0.secrets.portalKey, which: 'portal' })), 'unknown-signer');
  const byPhone = createClaim(x.keys.admin2.sign, d0.secrets, { device: d0.id, master: x.masterId, account: x.account });
  t.is(verifyClaim(byPhone, master, { key: d0.secrets.portalKey, which: 'portal' }).device, d0.id);
  t.is(codeOf(() => verifyClaim(byPhone, masterV2, { key: d0.secrets.portalKey, which: 'portal' })), 'revoked-key');
  const otherMaster = createClaim(x.keys.admin.sign, d0.secrets, { device: d0.id, master: bobMaster.id, account: x.account });
  t.is(codeOf(() => verifyClaim(otherMaster, master, { key: d0.secrets.portalKey, which: 'portal' })), 'wrong-master');
  t.is(codeOf(() => verifyClaim(tampered(x.claim, (p) => ({ ...p, account: 'mallory@portal.example' })), master, { key: d0.secrets.portalKey, which: 'portal' })), 'bad-signature');
  t.is(codeOf(() => verifyClaim(x.remove, master, { key: d0.secrets.portalKey, which: 'portal' })), 'wrong-type');
  t.is(parseClaimPayload(x.claim).type, 'claim');
});

// ---------------------------------------------------------------- remove

test('remove: by the right owner verifies; by another owner is unknown-signer; naming another owner is not-owner', (t) => {
  const p = verifyRemove(x.remove, master);
  t.is(p.device, d2.id);
  t.is(p.master, x.masterId);
  // Bob signs a removal of Alice from the device: verified against Alice's master, Bob's key is not hers
  const byBob = createRemove(bobAdmin.sign, { device: d2.id, master: x.masterId });
  t.is(codeOf(() => verifyRemove(byBob, master)), 'unknown-signer');
  // Bob's removal naming Alice, checked against Bob's own master: it names another owner
  t.is(codeOf(() => verifyRemove(byBob, bobMaster)), 'not-owner');
  // Alice's key signing a removal that names Bob's master, checked against Alice's master
  const namesBob = createRemove(x.keys.admin.sign, { device: d2.id, master: bobMaster.id });
  t.is(codeOf(() => verifyRemove(namesBob, master)), 'not-owner');
  // a revoked key cannot remove
  t.is(codeOf(() => verifyRemove(createRemove(x.keys.admin2.sign, { device: d2.id, master: x.masterId }), masterV2)), 'revoked-key');
  t.is(codeOf(() => verifyRemove(tampered(x.remove, (p) => ({ ...p, device: d0.id })), master)), 'bad-signature');
  t.is(peekType(x.remove), 'remove');
});

// ---------------------------------------------------------------- status

test('status: signed by the device; another key is unknown-signer; naming another device is wrong-device; round trip of every field', (t) => {
  const p = verifyStatus(x.status, d0.keys.sign.publicKey);
  t.is(p.device, d0.id);
  t.is(p.seq, 7);
  t.is(p.owners[0]?.apps[0]?.app, 'thermostat');
  t.is(p.errors[0]?.code, 'out-of-scope');
  t.is(p.treeHead?.size, x.log.tree.size);
  t.deepEqual(parseStatusPayload(payloadBytes(x.status)), p);
  // the private part: Alice's administration keys open it; the device's own or a stranger's key does not
  t.deepEqual(openPrivateStatus(p, x.keys.admin.enc), x.privateStatus);
  t.deepEqual(openPrivateStatus(p, x.keys.admin2.enc), x.privateStatus);
  t.is(openPrivateStatus(p, d0.keys.enc), undefined);
  t.is(p.owners[1]?.role, 'guest');
  t.is(p.owners[1]?.invitedBy, x.account);
  t.false(Buffer.from(payloadBytes(x.status)).toString('utf8').includes('setpointC'), 'no setting name in the plaintext');
  t.is(codeOf(() => verifyStatus(x.status, d1.keys.sign.publicKey)), 'unknown-signer');
  const lying = signJson({ ...payloadOf(x.status), device: d1.id }, [d0.keys.sign]);
  t.is(codeOf(() => verifyStatus(lying, d0.keys.sign.publicKey)), 'wrong-device');
  t.is(codeOf(() => verifyStatus(tampered(x.status, (p2) => ({ ...p2, seq: 8 })), d0.keys.sign.publicKey)), 'bad-signature');
  t.is(codeOf(() => verifyStatus(signJson({ ...payloadOf(x.status), extra: 1 }, [d0.keys.sign]), d0.keys.sign.publicKey)), 'malformed');
  t.is(codeOf(() => parseStatusPayload(utf8(JSON.stringify({ ...payloadOf(x.status), type: 'claim' })))), 'wrong-type');
  // optional fields may be absent
  const minimal = createStatus(d1.keys.sign, { seq: 0, lastContact: new Date().toISOString(), owners: [], errors: [] });
  t.is(verifyStatus(minimal, d1.keys.sign.publicKey).treeHead, undefined);
});

// ---------------------------------------------------------------- session

test('session: fresh within the skew window; older or from the future is replay', (t) => {
  const now = Date.now();
  const env = createSession(d0.keys.auth, d0.id, new Date(now).toISOString());
  const p = parseSessionPayload(env);
  t.is(p.subject, d0.id);
  t.deepEqual(payloadBytes(env), fromB64u(env.payload));
  t.is(codeOf(() => checkSessionTime(p, now)), 'no error');
  t.is(codeOf(() => checkSessionTime(p, now + SESSION_SKEW_MS)), 'no error');
  t.is(codeOf(() => checkSessionTime(p, now - SESSION_SKEW_MS)), 'no error');
  t.is(codeOf(() => checkSessionTime(p, now + SESSION_SKEW_MS + 1)), 'replay');
  t.is(codeOf(() => checkSessionTime(p, now - SESSION_SKEW_MS - 1)), 'replay');
  const old = parseSessionPayload(createSession(d0.keys.auth, d0.id, new Date(now - 6 * 60_000).toISOString()));
  t.is(codeOf(() => checkSessionTime(old)), 'replay');
  const future = parseSessionPayload(createSession(d0.keys.auth, d0.id, new Date(now + 6 * 60_000).toISOString()));
  t.is(codeOf(() => checkSessionTime(future)), 'replay');
  // each session request carries a fresh nonce
  t.not(parseSessionPayload(createSession(d0.keys.auth, d0.id)).nonce, parseSessionPayload(createSession(d0.keys.auth, d0.id)).nonce);
  t.is(codeOf(() => parseSessionPayload(x.claim)), 'wrong-type');
});

test('session challenge: made and checked by the portal key alone; the clock that counts is the portal\'s', (t) => {
  const key = challengeKey(c.randomBytes(32));
  const now = Date.UTC(2026, 10, 2, 12);
  const ch = makeChallenge(key, now);
  t.regex(ch, CHALLENGE_TEXT);
  t.not(makeChallenge(key, now), ch, 'each carries 16 random bytes');
  t.deepEqual(checkChallenge(key, ch, now), { issuedMs: now });
  // another process with the same secret checks it; another secret does not
  t.deepEqual(checkChallenge(challengeKey(new Uint8Array(32)), makeChallenge(challengeKey(new Uint8Array(32)), now), now + 1000), { issuedMs: now });
  t.is(codeOf(() => checkChallenge(challengeKey(c.randomBytes(32)), ch, now)), 'bad-challenge');
  // fresh for CHALLENGE_TTL_MS after it was issued, by the portal's clock; a little ahead is another process's clock
  t.is(codeOf(() => checkChallenge(key, ch, now + CHALLENGE_TTL_MS)), 'no error');
  t.is(codeOf(() => checkChallenge(key, ch, now + CHALLENGE_TTL_MS + 1)), 'replay');
  t.is(codeOf(() => checkChallenge(key, ch, now - CHALLENGE_FUTURE_MS)), 'no error');
  t.is(codeOf(() => checkChallenge(key, ch, now - CHALLENGE_FUTURE_MS - 1)), 'replay');
  // any change is bad-challenge: each character, a second spelling of the same bytes, junk
  for (let i = 0; i < ch.length; i++) {
    const changed = ch.slice(0, i) + (ch[i] === 'A' ? 'B' : 'A') + ch.slice(i + 1);
    t.is(codeOf(() => checkChallenge(key, changed, now)), 'bad-challenge', `character ${i}`);
  }
  const last = ch[ch.length - 1] as string;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const sameBytes = ch.slice(0, -1) + (alphabet[alphabet.indexOf(last) ^ 1] as string);
  t.deepEqual(Buffer.from(sameBytes, 'base64url'), Buffer.from(ch, 'base64url'));
  t.is(codeOf(() => checkChallenge(key, sameBytes, now)), 'bad-challenge');
  for (const junk of ['', 'x', ch + 'A', ch.slice(1), 42 as unknown as string]) t.is(codeOf(() => checkChallenge(key, junk, now)), 'bad-challenge');
  // a session request signs it; its "created" (here 1970) is only the signer's clock
  const env = createSession(d0.keys.auth, d0.id, { created: '1970-01-01T00:00:00.000Z', challenge: ch });
  const p = parseSessionPayload(env);
  t.is(p.challenge, ch);
  t.is(p.created, '1970-01-01T00:00:00.000Z');
  t.is(parseSessionPayload(createSession(d0.keys.auth, d0.id)).challenge, undefined);
  t.is(parseSessionPayload(createSession(d0.keys.auth, d0.id, { challenge: undefined })).challenge, undefined);
  const odd = signJson({ type: 'session', subject: d0.id, nonce: p.nonce, created: p.created, challenge: 'not base64url!' }, [d0.keys.auth]);
  t.is(codeOf(() => parseSessionPayload(odd)), 'malformed');
  const extra = signJson({ type: 'session', subject: d0.id, nonce: p.nonce, created: p.created, time: 1 }, [d0.keys.auth]);
  t.is(codeOf(() => parseSessionPayload(extra)), 'malformed');
});

// ---------------------------------------------------------------- tree head and portal profile

test('tree head: verifies with the portal key; another key is unknown-signer; its root is the log root and proofs check against it', (t) => {
  const th = verifyTreeHead(x.log.treeHead, x.keys.portal.publicKey);
  t.is(th.size, x.log.leaves.length);
  t.deepEqual(th.root, x.log.tree.root());
  t.is(codeOf(() => verifyTreeHead(x.log.treeHead, x.keys.admin.sign.publicKey)), 'unknown-signer');
  t.is(codeOf(() => verifyTreeHead(tampered(x.log.treeHead, (p) => ({ ...p, size: 99 })), x.keys.portal.publicKey)), 'bad-signature');
  t.is(codeOf(() => verifyTreeHead(signJson({ ...payloadOf(x.log.treeHead), root: b64u(new Uint8Array(31)) }, [x.keys.portal]), x.keys.portal.publicKey)), 'malformed');
  t.is(codeOf(() => verifyTreeHead(createPortalProfile(x.keys.portal, 'p'), x.keys.portal.publicKey)), 'malformed');
  // an inclusion proof from the Log/Inclusion example verifies against the signed root
  const inc = x.wire.inclusionResponse as { index: number; size: number; proof: string[] };
  t.notThrows(() => verifyInclusion(leafHash(x.log.leaves[inc.index]!.data), inc.index, inc.size, inc.proof.map((p) => fromB64u(p)), th.root));
  // and the leaf data is the object's payload bytes: the Log/Entry example is the application profile's
  t.deepEqual(fromB64u((x.wire.entryResponse as { data: string }).data), payloadBytes(x.application));
  t.is(createTreeHead(x.keys.portal, 0, new Uint8Array(32)).sigs.length, 1);
});

test('portal profile: self-signed; its id is the UDF of its key; another expected id is refused (wrong-master)', (t) => {
  const pp = verifyPortalProfile(x.portalProfile, x.portalId);
  t.is(pp.id, x.portalId);
  t.is(pp.name, x.portalName);
  t.is(codeOf(() => verifyPortalProfile(x.portalProfile, x.masterId)), 'wrong-master');
  // a profile naming one key signed by another
  const forged = signJson(payloadOf(x.portalProfile), [x.keys.admin.sign]);
  t.is(codeOf(() => verifyPortalProfile(forged)), 'unknown-signer');
  t.is(codeOf(() => verifyPortalProfile(tampered(x.portalProfile, (p) => ({ ...p, name: 'evil.example' })))), 'bad-signature');
  t.is(codeOf(() => verifyPortalProfile(x.log.treeHead)), 'malformed');
});

// ---------------------------------------------------------------- join + PIN

test('join: self-signed; the right PIN (in any case, with or without dashes) verifies; a wrong PIN is bad-claim-proof', (t) => {
  const p = parseJoin(x.join);
  t.is(p.account, x.account);
  t.is(p.name, 'tablet');
  t.is(p.sign, b64u(x.keys.joiner.sign.publicKey));
  t.is(codeOf(() => verifyJoinPin(p, x.pin)), 'no error');
  t.is(codeOf(() => verifyJoinPin(p, x.pin.toLowerCase().replace('-', ' '))), 'no error');
  t.is(codeOf(() => verifyJoinPin(p, x.pin.replace('-', ''))), 'no error');
  t.is(codeOf(() => verifyJoinPin(p, 'QX7T-M2KE')), 'bad-claim-proof');
  t.is(codeOf(() => verifyJoinPin(p, '')), 'bad-claim-proof');
  // the MAC binds account and keys: the same MAC on another account does not verify
  t.is(codeOf(() => verifyJoinPin({ ...p, account: `bob@${x.portalName}` }, x.pin)), 'bad-claim-proof');
  t.is(codeOf(() => verifyJoinPin({ ...p, enc: b64u(c.x25519KeyPair().publicKey) }, x.pin)), 'bad-claim-proof');
});

test('join: a changed payload is bad-signature; signed by a key other than the one it names is unknown-signer; wrong type', (t) => {
  t.is(codeOf(() => parseJoin(tampered(x.join, (p) => ({ ...p, account: `bob@${x.portalName}` })))), 'bad-signature');
  const other = signJson(payloadOf(x.join), [x.keys.admin.sign]);
  t.is(codeOf(() => parseJoin(other)), 'unknown-signer');
  t.is(codeOf(() => parseJoin(x.claim)), 'wrong-type');
  t.is(codeOf(() => parseJoin(signJson({ ...payloadOf(x.join), enc: 'AAAA' }, [x.keys.joiner.sign]))), 'malformed');
});

test('join (fast-check): any PIN verifies against itself and not against another', (t) => {
  const joiner = { name: 'tablet', sign: c.ed25519KeyPair(), enc: c.x25519KeyPair() };
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom(...'ABCDEFGHJKLMNPQRSTUVWXYZ23456789'.split('')), minLength: 4, maxLength: 12 }), fc.string({ minLength: 1, maxLength: 12 }), (pin, other) => {
      const norm = (s: string): string => s.toUpperCase().replace(/[-\s]/g, '');
      fc.pre(norm(other) !== norm(pin));
      const p = parseJoin(createJoin(joiner, x.account, pin));
      return codeOf(() => verifyJoinPin(p, pin)) === 'no error' && codeOf(() => verifyJoinPin(p, other)) === 'bad-claim-proof';
    }),
    { numRuns: 100 },
  );
  t.pass();
});

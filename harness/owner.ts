/**
 * A minimal owner built straight from the mesh library (no CLI), for agent, hostile and bench
 * tests: master keys, one administration key, a bound account, claims, application profiles.
 */
import { PortalClient } from '../client/portal-client.js';
import { generateMasterKeys, signKeyId, type MasterKeys } from '../mesh/keys.js';
import * as c from '../mesh/crypto.js';
import { adminEntry, createApplicationProfile, createMasterProfile, createPersonalProfile, verifyDeviceProfile, type AdminKeys } from '../mesh/profiles.js';
import { createClaim, createRemove, verifyPortalProfile } from '../mesh/messages.js';
import { deriveClaimSecrets, openClaimBlob, parseClaimLabel, sealClaimBlob } from '../mesh/claim.js';
import { b64u, fromB64u } from '../mesh/bytes.js';
import { createInvite, deriveInviteSecrets, invitationUri, newInviteSecret, parseInvitation, parseInviteBlob, parseInvitePayload, type Grant, type InviteBlob } from '../mesh/invite.js';
import type { SignedEnvelope } from '../mesh/envelope.js';
import type { Json } from '../mesh/json.js';

export interface TestDevice {
  readonly id: string;
  readonly enc: Uint8Array;
}

export class TestOwner {
  readonly master: MasterKeys = generateMasterKeys();
  admin: AdminKeys = { name: 'laptop', sign: c.ed25519KeyPair(), enc: c.x25519KeyPair() };
  masterEnvelope!: SignedEnvelope;
  masterSeq = 1;
  account = '';
  client!: PortalClient;
  readonly devices = new Map<string, TestDevice>();
  private seqs = new Map<string, number>();
  /** the owner's lasting identity: the UDF of the master signing key */
  get masterId(): string {
    return signKeyId(this.master.sign.publicKey);
  }

  static async create(portalUrl: string, name: string): Promise<TestOwner> {
    const o = new TestOwner();
    const anon = new PortalClient({ url: portalUrl });
    const hello = await anon.hello();
    const portalName = verifyPortalProfile(hello.portal).name;
    anon.close();
    o.account = `${name}@${portalName}`;
    o.masterEnvelope = createMasterProfile(o.master, [adminEntry(o.admin)]);
    const id = o.masterId;
    const personal = createPersonalProfile(o.admin, { master: id, account: o.account, seq: 1, devices: [], apps: [] });
    o.client = new PortalClient({ url: portalUrl, identity: { subject: o.account, key: o.admin.sign } });
    await o.client.bindAccount({ account: name, master: o.masterEnvelope, personal, request: await o.client.sessionRequest(o.admin.sign, o.account) });
    return o;
  }

  /** Claim a device from its label URI, as the CLI does (without the fingerprint UX). */
  async claim(labelUri: string): Promise<TestDevice> {
    const label = parseClaimLabel(labelUri);
    const secrets = deriveClaimSecrets(label.secret);
    const blob = (await this.client.claimLookup(secrets.claimId)).blob;
    const bundle = openClaimBlob(secrets, blob) as { profile: unknown };
    const dev = verifyDeviceProfile(bundle.profile);
    const epoch = (bundle as { epoch?: unknown }).epoch;
    const claim = createClaim(this.admin.sign, secrets, { device: dev.id, master: this.masterId, account: this.account, ...(typeof epoch === 'string' ? { epoch } : {}) });
    await this.client.claim(secrets.claimId, claim);
    this.lastClaim = claim;
    const d = { id: dev.id, enc: fromB64u(dev.payload.enc, 'enc', 32) };
    this.devices.set(d.id, d);
    return d;
  }

  /** the last claim this owner sent (for replays) */
  lastClaim: SignedEnvelope | undefined;

  /** Invite someone to `device` (in the device's epoch `epoch`), as mesh device invite does. Returns the URI and the signed invitation. */
  async invite(device: TestDevice & { profile: SignedEnvelope }, p: { epoch: string; ttlS?: number; grant?: Grant; schemas?: Record<string, unknown> }): Promise<{ uri: string; object: SignedEnvelope; nonce: string }> {
    const secret = newInviteSecret();
    const secrets = deriveInviteSecrets(secret);
    const ttlS = p.ttlS ?? 900;
    const object = createInvite(this.admin.sign, secrets, { device, epoch: p.epoch, master: this.masterId, account: this.account, ttlS, ...(p.grant !== undefined ? { grant: p.grant } : {}) });
    const nonce = parseInvitePayload(object).nonce;
    const record: InviteBlob = { profile: device.profile, endorsement: null, epoch: p.epoch, invite: nonce, by: this.account, role: p.grant === undefined ? 'owner' : 'guest', ...(p.grant !== undefined ? { grant: p.grant } : {}), expires: new Date(Date.now() + ttlS * 1000).toISOString(), ...(p.schemas !== undefined ? { schemas: p.schemas } : {}) };
    await this.client.post(device.id, object, { id: secrets.claimId, blob: sealClaimBlob(secrets, record), portalKey: b64u(secrets.portalKey), ttl: ttlS });
    return { uri: invitationUri({ portal: new URL(this.client.url.toString()).host, secret, fingerprint: device.id }), object, nonce };
  }

  /** Accept an invitation, as mesh device claim INVITATION does. */
  async acceptInvite(uri: string): Promise<TestDevice> {
    const inv = parseInvitation(uri);
    const secrets = deriveInviteSecrets(inv.secret);
    const terms = parseInviteBlob(openClaimBlob(secrets, (await this.client.claimLookup(secrets.claimId)).blob));
    const dev = verifyDeviceProfile(terms.profile);
    const claim = createClaim(this.admin.sign, secrets, { device: dev.id, master: this.masterId, account: this.account, epoch: terms.epoch, invite: terms.invite });
    await this.client.claim(secrets.claimId, claim);
    this.lastClaim = claim;
    const d = { id: dev.id, enc: fromB64u(dev.payload.enc, 'enc', 32) };
    this.devices.set(d.id, d);
    return d;
  }

  applicationProfile(app: string, config: Json, opts: { seq?: number; devices?: TestDevice[]; signer?: AdminKeys; confirmS?: number } = {}): SignedEnvelope {
    const seq = opts.seq ?? (this.seqs.get(app) ?? 0) + 1;
    this.seqs.set(app, Math.max(seq, this.seqs.get(app) ?? 0));
    return createApplicationProfile(opts.signer ?? this.admin, { master: this.masterId, app, seq, config, devices: opts.devices ?? [...this.devices.values()], ...(opts.confirmS !== undefined ? { confirmS: opts.confirmS } : {}) });
  }

  async publish(app: string, config: Json, opts: { seq?: number; devices?: TestDevice[]; confirmS?: number } = {}): Promise<SignedEnvelope> {
    const env = this.applicationProfile(app, config, opts);
    await this.client.publish(env);
    return env;
  }

  async remove(deviceId: string, epoch?: string): Promise<SignedEnvelope> {
    const env = createRemove(this.admin.sign, { device: deviceId, master: this.masterId, ...(epoch !== undefined ? { epoch } : {}) });
    await this.client.post(deviceId, env);
    this.devices.delete(deviceId);
    return env;
  }

  /** Replace the administration key: a new master profile revoking the old one. Returns the old key. */
  async rotateAdmin(): Promise<AdminKeys> {
    const old = this.admin;
    const next: AdminKeys = { name: 'phone', sign: c.ed25519KeyPair(), enc: c.x25519KeyPair() };
    this.masterSeq += 1;
    this.masterEnvelope = createMasterProfile(this.master, [adminEntry(next)], { seq: this.masterSeq, revoked: [signKeyId(old.sign.publicKey)] });
    this.admin = next;
    await this.client.publish(this.masterEnvelope);
    this.client.close();
    this.client = new PortalClient({ url: this.client.url.toString(), identity: { subject: this.account, key: next.sign } });
    return old;
  }

  /** A new master profile listing these witnesses (verifier keys) and the quorum of their cosignatures this owner requires. */
  async requireWitnesses(witnesses: readonly string[], quorum: number): Promise<SignedEnvelope> {
    this.masterSeq += 1;
    this.masterEnvelope = createMasterProfile(this.master, [adminEntry(this.admin)], { seq: this.masterSeq, witnesses, quorum });
    await this.client.publish(this.masterEnvelope);
    return this.masterEnvelope;
  }

  close(): void {
    this.client.close();
  }
}


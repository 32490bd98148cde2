/**
 * In-process owners and a device for the pure core (agent/core.ts): real keys and real signed
 * objects (claims, master profiles, application profiles, removals), no portal, no process.
 * Feed items are numbered by the caller, as the portal would.
 */
import { generateMasterKeys, signKeyId, type MasterKeys } from '../mesh/keys.js';
import * as c from '../mesh/crypto.js';
import { adminEntry, createApplicationProfile, createMasterProfile, type AdminKeys } from '../mesh/profiles.js';
import { createClaim, createRemove } from '../mesh/messages.js';
import { deriveClaimSecrets, type ClaimSecrets } from '../mesh/claim.js';
import { newDeviceIdentity, type DeviceIdentity } from '../mesh/device.js';
import { checkSchema } from '../mesh/schema.js';
import type { SignedEnvelope } from '../mesh/envelope.js';
import type { Json } from '../mesh/json.js';
import type { FeedItem, ItemKind } from '../mesh/protocol.js';
import { MasterMemo, type CoreContext } from '../agent/core.js';
import { createInvite, deriveInviteSecrets, newInviteSecret, parseInvitePayload, type Grant } from '../mesh/invite.js';

/** the time every object and context carries unless a test says otherwise: the reducer's output depends on nothing else */
export const FIXED_TIME = '2026-01-01T00:00:00.000Z';

export const THERMOSTAT = checkSchema({
  type: 'object',
  additionalProperties: false,
  properties: {
    setpoint: { type: 'number', minimum: 5, maximum: 30 },
    mode: { enum: ['comfort', 'eco', 'off'] },
  },
});

export class CoreDevice {
  readonly identity: DeviceIdentity = newDeviceIdentity({ model: 'thermostat', manufacturer: 'acme', serial: '1', portalAuthority: 'portal.test' });
  readonly secrets: ClaimSecrets = deriveClaimSecrets(this.identity.claimSecret);
  readonly masters = new MasterMemo();

  get id(): string {
    return this.identity.id;
  }

  context(now = FIXED_TIME, claimWindowOpen = false): CoreContext {
    return {
      claimWindowOpen,
      device: { id: this.identity.id, enc: this.identity.keys.enc, claimKey: this.secrets.deviceKey },
      schemas: new Map([['thermostat', THERMOSTAT]]),
      now,
      masters: this.masters,
    };
  }

  target(): { id: string; enc: Uint8Array } {
    return { id: this.identity.id, enc: this.identity.keys.enc.publicKey };
  }
}

export class CoreOwner {
  readonly master: MasterKeys = generateMasterKeys();
  admin: AdminKeys = { name: 'laptop', sign: c.ed25519KeyPair(), enc: c.x25519KeyPair() };
  masterSeq = 1;
  masterEnvelope: SignedEnvelope;
  private readonly seqs = new Map<string, number>();

  constructor(readonly account: string) {
    this.masterEnvelope = createMasterProfile(this.master, [adminEntry(this.admin)]);
  }

  get masterId(): string {
    return signKeyId(this.master.sign.publicKey);
  }

  /** A claim made with the label's secrets (the right ones unless others are given). */
  claim(device: CoreDevice, secrets: ClaimSecrets = device.secrets): SignedEnvelope {
    return createClaim(this.admin.sign, secrets, { device: device.id, master: this.masterId, account: this.account });
  }

  config(device: CoreDevice, app: string, config: Json, opts: { seq?: number; signer?: AdminKeys; created?: string; confirmS?: number } = {}): SignedEnvelope {
    const seq = opts.seq ?? (this.seqs.get(app) ?? 0) + 1;
    this.seqs.set(app, Math.max(seq, this.seqs.get(app) ?? 0));
    return createApplicationProfile(opts.signer ?? this.admin, { master: this.masterId, app, seq, config, devices: [device.target()], created: opts.created ?? FIXED_TIME, ...(opts.confirmS !== undefined ? { confirmS: opts.confirmS } : {}) });
  }

  remove(device: CoreDevice, epoch?: string): SignedEnvelope {
    return createRemove(this.admin.sign, { device: device.id, master: this.masterId, ...(epoch !== undefined ? { epoch } : {}) });
  }

  /** An invitation to `device` in `epoch`, and the secrets its invitee claims with. */
  invite(device: CoreDevice, p: { epoch: string; ttlS?: number; grant?: Grant; created?: string }): { object: SignedEnvelope; secrets: ClaimSecrets; nonce: string } {
    const secrets = deriveInviteSecrets(newInviteSecret());
    const object = createInvite(this.admin.sign, secrets, {
      device: device.target(),
      epoch: p.epoch,
      master: this.masterId,
      account: this.account,
      ttlS: p.ttlS ?? 900,
      created: p.created ?? FIXED_TIME,
      ...(p.grant !== undefined ? { grant: p.grant } : {}),
    });
    return { object, secrets, nonce: parseInvitePayload(object).nonce };
  }

  /** A claim that accepts an invitation. */
  acceptInvite(device: CoreDevice, inv: { secrets: ClaimSecrets; nonce: string }, epoch?: string): SignedEnvelope {
    return createClaim(this.admin.sign, inv.secrets, { device: device.id, master: this.masterId, account: this.account, invite: inv.nonce, ...(epoch !== undefined ? { epoch } : {}) });
  }

  /** A new master profile with a new administration key, revoking the old one. Returns the old key. */
  rotate(): AdminKeys {
    const old = this.admin;
    this.admin = { name: 'phone', sign: c.ed25519KeyPair(), enc: c.x25519KeyPair() };
    this.masterSeq++;
    this.masterEnvelope = createMasterProfile(this.master, [adminEntry(this.admin)], { seq: this.masterSeq, revoked: [signKeyId(old.sign.publicKey)] });
    return old;
  }
}

/** A feed item as the portal would deliver it. */
export function item(n: number, kind: ItemKind, object: SignedEnvelope, master?: SignedEnvelope): FeedItem {
  return master === undefined ? { n, kind, object, index: n } : { n, kind, object, master, index: n };
}

/**
 * Every refusal a user can meet carries a stable `code`. Tests assert the code,
 * never the message; messages say what to do.
 *
 * MESH_ERRORS is the one list of codes. The portal's HTTP status for each (portal/status-codes.ts),
 * the client's check of a refusal's code (client/portal-client.ts), the fuzz tables and the error
 * table in docs/protocol.md are all derived from it (test/error-codes.test.ts keeps them so).
 */
export const MESH_ERRORS = [
  // parsing and limits
  { code: 'malformed', meaning: 'not well-formed: bad JSON, a field of the wrong type or out of range' },
  { code: 'too-large', meaning: 'over a size limit (body, envelope, configuration, list)' },
  { code: 'unknown-field', meaning: 'a field this version does not define' },
  { code: 'bad-udf', meaning: 'a fingerprint, code or share that does not decode (the message names the character)' },
  { code: 'udf-too-short', meaning: 'a fingerprint too short to be trusted' },
  { code: 'bad-share', meaning: 'a recovery share that is mistyped or rebuilds another key' },
  { code: 'not-enough-shares', meaning: 'fewer recovery shares than the quorum' },
  { code: 'duplicate-share', meaning: 'the same recovery share given twice' },
  // signatures and trust
  { code: 'bad-signature', meaning: 'a signature that does not verify' },
  { code: 'unknown-signer', meaning: 'signed by a key the verifier does not trust' },
  { code: 'revoked-key', meaning: 'signed by an administration key the owner revoked' },
  { code: 'bad-key', meaning: 'a malformed or weak key, or a key other than the one pinned' },
  { code: 'wrong-master', meaning: 'an object of another owner than the one expected' },
  { code: 'wrong-device', meaning: 'an object for another device' },
  { code: 'wrong-type', meaning: 'an object of another type than the one expected' },
  { code: 'not-a-recipient', meaning: 'encrypted, but not to this key' },
  { code: 'decrypt-failed', meaning: 'the ciphertext or its key wrap was changed, or the key is wrong' },
  { code: 'bad-part', meaning: "a device's part of a profile sent to many (its wrapped key) that does not match what the owner signed" },
  { code: 'endorsement-invalid', meaning: "the manufacturer's endorsement does not verify" },
  { code: 'fingerprint-mismatch', meaning: 'the device is not the one whose fingerprint is on its label' },
  { code: 'bad-claim-proof', meaning: "the claim does not prove knowledge of the label's secret" },
  { code: 'rollback', meaning: 'older than what the verifier already holds' },
  { code: 'stale', meaning: 'too old to be acted on' },
  { code: 'schema', meaning: "a configuration the device's schema refuses" },
  { code: 'unknown-owner', meaning: 'from an owner the device does not have' },
  { code: 'not-owner', meaning: 'the signer does not own this device' },
  // log
  { code: 'bad-proof', meaning: 'a Merkle inclusion or consistency proof that does not verify' },
  { code: 'log-inconsistent', meaning: "the portal's log is not one append-only history (split view, rewrite)" },
  { code: 'not-logged', meaning: "an object the portal delivered without proof that its log holds it: not applied (the device asks again)" },
  { code: 'not-witnessed', meaning: 'a log head without the cosignatures of as many of the listed witnesses as the quorum asks' },
  // feed
  { code: 'feed-gap', meaning: 'a feed item whose number does not follow the last one applied: nothing from it on was applied' },
  // ownership
  { code: 'not-invited', meaning: 'a label claim for a device that has owners, without an invitation or the claim window opened on the device' },
  { code: 'wrong-epoch', meaning: 'a claim, invitation or removal made for an earlier ownership epoch of the device (before a factory reset)' },
  { code: 'invitation-used', meaning: 'an invitation that has already been accepted: each works once' },
  { code: 'invitation-expired', meaning: 'an invitation accepted after the time it allowed' },
  { code: 'confirm-required', meaning: "a change to a setting whose schema asks for a confirmation window (x-confirm-within), sent without one" },
  { code: 'out-of-scope', meaning: "a guest's change to an application, key or value outside what the guest's invitation allows" },
  { code: 'grant-expired', meaning: "a guest's change after the end time of the guest's invitation" },
  { code: 'not-permitted', meaning: 'a guest may set what the invitation allows, but not invite anyone' },
  { code: 'reverted', meaning: 'a change the device undid because it could not reach the portal with it in effect within the window its owner asked for' },
  { code: 'unhealthy', meaning: "a change the device undid because its application's health check failed after it" },
  { code: 'clock-ahead', meaning: "applied in feed order, but its signer's clock is far ahead of the device's (a flag, not a refusal)" },
  // protocol / transport
  { code: 'unauthorized', meaning: 'no valid session' },
  { code: 'forbidden', meaning: 'a valid session, but not allowed to do this' },
  { code: 'not-found', meaning: 'no such account, device, claim or entry' },
  { code: 'conflict', meaning: 'already exists, or taken' },
  { code: 'rate-limited', meaning: 'too many requests; the refusal says when to retry' },
  { code: 'replay', meaning: 'a request or message already used' },
  { code: 'bad-challenge', meaning: 'a session request whose challenge this portal did not issue (forged, changed, or from another portal): fetch a new one' },
  { code: 'unavailable', meaning: 'the service cannot be reached or is stopping' },
  { code: 'timeout', meaning: 'no answer in time' },
  { code: 'internal', meaning: 'a fault of the portal itself (logged there)' },
  { code: 'bad-answer', meaning: "the portal's answer cannot be believed: a code this client does not know, or data that does not verify (client side; detail names it)" },
  { code: 'usage', meaning: 'a command or option typed wrong' },
  { code: 'state', meaning: 'local state missing or damaged, or a step out of order' },
] as const satisfies readonly { readonly code: string; readonly meaning: string }[];

export type MeshErrorCode = (typeof MESH_ERRORS)[number]['code'];

/** Every code, in the order of MESH_ERRORS. */
export const MESH_ERROR_CODES: readonly MeshErrorCode[] = MESH_ERRORS.map((e) => e.code);

const CODE_SET: ReadonlySet<string> = new Set(MESH_ERROR_CODES);

/** Whether `v` is one of the codes (e.g. a code read off the wire). */
export function isMeshErrorCode(v: unknown): v is MeshErrorCode {
  return typeof v === 'string' && CODE_SET.has(v);
}

export class MeshError extends Error {
  readonly code: MeshErrorCode;
  readonly detail: Readonly<Record<string, unknown>> | undefined;
  constructor(code: MeshErrorCode, message: string, detail?: Record<string, unknown>) {
    super(message);
    this.name = 'MeshError';
    this.code = code;
    this.detail = detail;
  }
  toJSON(): { code: MeshErrorCode; message: string; detail?: Record<string, unknown> } {
    return this.detail === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, detail: { ...this.detail } };
  }
}

export function fail(code: MeshErrorCode, message: string, detail?: Record<string, unknown>): never {
  throw new MeshError(code, message, detail);
}

export function isMeshError(e: unknown, code?: MeshErrorCode): e is MeshError {
  return e instanceof MeshError && (code === undefined || e.code === code);
}

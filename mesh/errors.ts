/**
 * Every refusal a user can meet carries a stable `code`. Tests assert the code,
 * never the message; messages say what to do.
 */
export type MeshErrorCode =
  // parsing and limits
  | 'malformed'
  | 'too-large'
  | 'unknown-field'
  | 'bad-udf'
  | 'udf-too-short'
  | 'bad-share'
  | 'not-enough-shares'
  | 'duplicate-share'
  // signatures and trust
  | 'bad-signature'
  | 'unknown-signer'
  | 'revoked-key'
  | 'bad-key'
  | 'wrong-master'
  | 'wrong-device'
  | 'wrong-type'
  | 'not-a-recipient'
  | 'decrypt-failed'
  | 'endorsement-invalid'
  | 'fingerprint-mismatch'
  | 'bad-claim-proof'
  | 'rollback'
  | 'stale'
  | 'schema'
  | 'unknown-owner'
  | 'not-owner'
  // log
  | 'bad-proof'
  | 'log-inconsistent'
  // feed
  | 'feed-gap'
  // ownership
  | 'not-invited'
  | 'clock-ahead'
  // protocol / transport
  | 'unauthorized'
  | 'forbidden'
  | 'not-found'
  | 'conflict'
  | 'rate-limited'
  | 'replay'
  | 'unavailable'
  | 'timeout'
  | 'internal'
  | 'usage'
  | 'state';

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

/**
 * The HTTP status of each MeshError code when the portal refuses with it. A Record over the one
 * list in mesh/errors.ts: a code added there without a status here does not compile.
 */
import type { MeshErrorCode } from '../mesh/errors.js';

export const HTTP_STATUS: Readonly<Record<MeshErrorCode, number>> = {
  malformed: 400,
  usage: 400,
  'unknown-field': 400,
  'bad-udf': 400,
  'udf-too-short': 400,
  'bad-share': 400,
  'not-enough-shares': 400,
  'duplicate-share': 400,
  schema: 400,
  unauthorized: 401,
  forbidden: 403,
  'not-owner': 403,
  'bad-claim-proof': 403,
  'not-found': 404,
  'unknown-owner': 404,
  conflict: 409,
  rollback: 409,
  state: 409,
  stale: 409,
  'too-large': 413,
  'bad-signature': 422,
  'unknown-signer': 422,
  'revoked-key': 422,
  'wrong-master': 422,
  'wrong-device': 422,
  'wrong-type': 422,
  'bad-key': 422,
  replay: 422,
  'bad-challenge': 422,
  'endorsement-invalid': 422,
  'fingerprint-mismatch': 422,
  'not-a-recipient': 422,
  'decrypt-failed': 422,
  'bad-part': 422,
  'bad-proof': 422,
  'log-inconsistent': 422,
  'not-logged': 422,
  'not-witnessed': 422,
  'feed-gap': 422,
  'not-invited': 403,
  'wrong-epoch': 422,
  'invitation-used': 409,
  'invitation-expired': 410,
  'confirm-required': 400,
  'out-of-scope': 403,
  'grant-expired': 403,
  'not-permitted': 403,
  reverted: 422,
  unhealthy: 422,
  'clock-ahead': 422,
  'rate-limited': 429,
  internal: 500,
  // the portal never says this of itself (a client says it of the portal); were it relayed, a bad gateway
  'bad-answer': 502,
  unavailable: 503,
  timeout: 503,
};

export function httpStatus(code: MeshErrorCode): number {
  return HTTP_STATUS[code] ?? 500;
}

/**
 * The client side of the Mesh Portal Protocol, shared by the device agent, the owner CLI and the
 * owner app in the browser. The HTTP exchange itself is the transport's (client/transport.ts:
 * node:http or fetch). A refusal from the portal becomes a MeshError with the portal's stable code.
 */
import { makeTransport } from './transport-node.js';
import type { Transport } from './transport.js';
import { MeshError, isMeshErrorCode, type MeshErrorCode } from '../mesh/errors.js';
import { parseJson } from '../mesh/json.js';
import { fromUtf8, utf8 } from '../mesh/bytes.js';
import type { SignedEnvelope, Signer } from '../mesh/envelope.js';
import { createSession } from '../mesh/messages.js';
import {
  PATHS,
  LIMITS,
  MAX_PUBLISH_BYTES,
  parseAccountResponse,
  parseBindAccountResponse,
  parseChallengeResponse,
  parseClaimLookupResponse,
  parseConsistencyResponse,
  parseDeviceStatusResponse,
  parseDownloadResponse,
  parseEntryResponse,
  parseHelloResponse,
  parseInclusionResponse,
  parseLogReceipt,
  parseSessionResponse,
  parseTreeHeadResponse,
  type AccountResponse,
  type BindAccountResponse,
  type ClaimLookupResponse,
  type ConsistencyResponse,
  type DeviceStatusEntry,
  type DownloadResponse,
  type EntryResponse,
  type HelloResponse,
  type InclusionResponse,
  type LogReceipt,
  type PostRequest,
  type RegisterRequest,
} from '../mesh/protocol.js';

export interface SessionIdentity {
  /** device UDF or account name@host */
  readonly subject: string;
  /** the key the portal knows for the subject: a device's authentication key, an owner's administration key */
  readonly key: Signer;
}

export interface PortalClientOptions {
  readonly url: string;
  readonly identity?: SessionIdentity;
  readonly token?: string;
  readonly timeoutMs?: number;
  /** how requests are sent (default: node:http, or fetch in the owner app's bundle) */
  readonly transport?: Transport;
}

export class PortalClient {
  readonly url: URL;
  private readonly transport: Transport;
  private readonly identity: SessionIdentity | undefined;
  private token: string | undefined;
  private push: string | undefined;
  private readonly timeoutMs: number;
  /** bytes sent and received by this client (request line, headers and bodies), for measuring */
  bytesOut = 0;
  bytesIn = 0;

  constructor(opts: PortalClientOptions) {
    this.url = new URL(opts.url);
    this.identity = opts.identity;
    this.token = opts.token;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.transport = opts.transport ?? makeTransport(this.url);
  }

  close(): void {
    this.transport.close();
  }

  get currentToken(): string | undefined {
    return this.token;
  }

  /** The push broker password the last Session or Register answer carried, if the broker needs one from the portal. */
  get pushPassword(): string | undefined {
    return this.push;
  }

  setToken(t: string): void {
    this.token = t;
  }

  /** One HTTP exchange. Returns parsed JSON, or throws MeshError carrying the portal's code. */
  /** `maxBytes`: the largest answer taken (default four times LIMITS.maxBodyBytes) */
  async request(method: 'GET' | 'POST', path: string, body?: unknown, opts: { auth?: boolean; timeoutMs?: number; text?: boolean; maxBytes?: number } = {}): Promise<unknown> {
    const auth = opts.auth ?? true;
    if (auth && this.token === undefined) await this.openSession();
    const maxBytes = opts.maxBytes ?? LIMITS.maxBodyBytes * 4;
    try {
      return await this.once(method, path, body, auth, maxBytes, opts.timeoutMs, opts.text);
    } catch (e) {
      if (auth && e instanceof MeshError && e.code === 'unauthorized' && this.identity !== undefined) {
        await this.openSession();
        return this.once(method, path, body, auth, maxBytes, opts.timeoutMs, opts.text);
      }
      throw e;
    }
  }

  private async once(method: 'GET' | 'POST', path: string, body: unknown, auth: boolean, maxBytes: number, timeoutMs?: number, asText = false): Promise<unknown> {
    const data = body === undefined ? undefined : utf8(JSON.stringify(body));
    const headers: Record<string, string> = {};
    if (auth && this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    if (data !== undefined) headers['content-type'] = 'application/json';
    const base = this.url.pathname.replace(/\/$/, '');
    this.bytesOut += requestBytes(method, base + path, this.url.host, headers, data?.length) + (data?.length ?? 0);
    const res = await this.transport.send({ method, path: base + path, headers, body: data, timeoutMs: timeoutMs ?? this.timeoutMs, maxBytes });
    this.bytesIn += res.body.length + res.headerBytes;
    const status = res.status;
    if (asText && status >= 200 && status < 300) return fromUtf8(res.body, 'portal response');
    let json: unknown;
    try {
      json = res.body.length === 0 ? {} : parseJson(res.body, maxBytes, 'portal response');
    } catch (e) {
      // a refusal whose body is not JSON (a gateway's error page, say) is still judged by its status
      if (status >= 200 && status < 300) throw e;
      throw wireError(status, undefined);
    }
    if (status >= 200 && status < 300) return json;
    throw wireError(status, json);
  }

  /** Session: prove we hold the subject's key, get a bearer token. */
  async openSession(): Promise<string> {
    if (this.identity === undefined) throw new MeshError('unauthorized', 'no identity to open a portal session with');
    const request = await this.sessionRequest(this.identity.key, this.identity.subject);
    const r = parseSessionResponse(await this.once('POST', PATHS.session, { request }, false, LIMITS.maxBodyBytes * 4));
    this.token = r.token;
    this.push = r.push?.password;
    return r.token;
  }

  /**
   * A session request that is fresh by the portal's clock, whatever this machine's clock says: it
   * signs a challenge just fetched from the portal (for Session, Register, BindAccount and the
   * embedded broker's MQTT password). A portal older than challenges (Challenge is `not-found`)
   * gets a request judged by its `created` time, as before.
   */
  async sessionRequest(key: Signer, subject: string): Promise<SignedEnvelope> {
    let challenge: string | undefined;
    try {
      challenge = await this.challenge();
    } catch (e) {
      if (!(e instanceof MeshError && e.code === 'not-found')) throw e;
    }
    return createSession(key, subject, { challenge });
  }

  // ------------------------------------------------------------ transactions

  /** Challenge: a fresh value from the portal to sign into a session request. */
  async challenge(): Promise<string> {
    return parseChallengeResponse(await this.once('GET', PATHS.challenge, undefined, false, LIMITS.maxBodyBytes * 4)).challenge;
  }

  async hello(): Promise<HelloResponse> {
    return parseHelloResponse(await this.request('GET', PATHS.hello, undefined, { auth: false }));
  }

  async register(req: RegisterRequest): Promise<string> {
    const r = parseSessionResponse(await this.request('POST', PATHS.register, req, { auth: false }));
    this.token = r.token;
    this.push = r.push?.password;
    return r.token;
  }

  async bindAccount(req: { account: string; home?: string; master: SignedEnvelope; personal: SignedEnvelope; request: SignedEnvelope }): Promise<BindAccountResponse> {
    const r = parseBindAccountResponse(await this.request('POST', PATHS.bindAccount, req, { auth: false }));
    this.token = r.token;
    return r;
  }

  async publish(object: SignedEnvelope): Promise<LogReceipt> {
    return parseLogReceipt(await this.request('POST', PATHS.publish, { object }), 'Publish');
  }

  async account(): Promise<AccountResponse> {
    // the latest profile of each application comes with every part (one per device it went to)
    return parseAccountResponse(await this.request('GET', PATHS.account, undefined, { maxBytes: MAX_PUBLISH_BYTES * 4 }));
  }

  /** The feed after `since`; with `logFrom` (the size of the log head the caller holds) the answer proves its items logged. */
  async download(since: number, waitMs = 0, logFrom?: number): Promise<DownloadResponse> {
    const q = (waitMs > 0 ? `?since=${since}&wait=${waitMs}` : `?since=${since}`) + (logFrom !== undefined ? `&log=${logFrom}` : '');
    return parseDownloadResponse(await this.request('GET', PATHS.download + q, undefined, { timeoutMs: waitMs + this.timeoutMs }));
  }

  async claimLookup(id: string): Promise<ClaimLookupResponse> {
    return parseClaimLookupResponse(await this.request('GET', `${PATHS.claimLookup}?id=${encodeURIComponent(id)}`));
  }

  async claim(id: string, object: SignedEnvelope): Promise<LogReceipt> {
    return parseLogReceipt(await this.request('POST', PATHS.claim, { id, object }), 'Claim');
  }

  async post(device: string, object: SignedEnvelope, invitation?: PostRequest['invitation']): Promise<LogReceipt> {
    return parseLogReceipt(await this.request('POST', PATHS.post, { device, object, ...(invitation !== undefined ? { invitation } : {}) }), 'Post');
  }

  async status(object: SignedEnvelope): Promise<void> {
    await this.request('POST', PATHS.status, { object });
  }

  async deviceStatus(): Promise<DeviceStatusEntry[]> {
    return parseDeviceStatusResponse(await this.request('GET', PATHS.deviceStatus)).devices;
  }

  async join(object: SignedEnvelope): Promise<void> {
    await this.request('POST', PATHS.join, { object }, { auth: false });
  }

  async treeHead(): Promise<SignedEnvelope> {
    return parseTreeHeadResponse(await this.request('GET', PATHS.treeHead, undefined, { auth: false })).treeHead;
  }

  /** GET /checkpoint: the log's head as a C2SP checkpoint (signed note text; check it with mesh/checkpoint.ts) */
  async checkpoint(): Promise<string> {
    const t = await this.request('GET', '/checkpoint', undefined, { auth: false, text: true });
    if (typeof t !== 'string' || t.length > 16 * 1024) throw new MeshError('bad-answer', 'the checkpoint is not a signed note of at most 16 KiB');
    return t;
  }

  async inclusion(index: number, size: number): Promise<InclusionResponse> {
    return parseInclusionResponse(await this.request('GET', `${PATHS.inclusion}?index=${index}&size=${size}`, undefined, { auth: false }));
  }

  async consistency(from: number, to: number): Promise<ConsistencyResponse> {
    return parseConsistencyResponse(await this.request('GET', `${PATHS.consistency}?from=${from}&to=${to}`, undefined, { auth: false }));
  }

  async entry(index: number): Promise<EntryResponse> {
    return parseEntryResponse(await this.request('GET', `${PATHS.entry}?index=${index}`, undefined, { auth: false }));
  }
}

/**
 * A refusal from the portal as a MeshError. A code from mesh/errors.ts is kept; a code this client
 * does not know is `bad-answer` with the raw code in `detail` (it is the portal's answer that is
 * wrong, never the caller's input). Only a refusal without any code falls back on the HTTP status.
 */
export function wireError(status: number, json: unknown): MeshError {
  const e = (json as { error?: { code?: unknown; message?: unknown } } | null | undefined)?.error;
  const raw = e?.code;
  const message = typeof e?.message === 'string' ? e.message.slice(0, 2000) : `the portal answered HTTP ${status}`;
  if (isMeshErrorCode(raw)) return new MeshError(raw, `portal: ${message}`, { status });
  if (raw !== undefined) {
    const shown = typeof raw === 'string' ? raw.slice(0, 100) : typeof raw;
    return new MeshError('bad-answer', `the portal refused with a code this client does not know ("${shown}", HTTP ${status}): ${message}`, { status, code: shown });
  }
  const code: MeshErrorCode = status === 401 ? 'unauthorized' : status === 429 ? 'rate-limited' : status >= 500 ? 'unavailable' : 'bad-answer';
  return new MeshError(code, `portal: ${message}`, { status });
}

function requestBytes(method: string, path: string, host: string, headers: Record<string, string>, bodyLength: number | undefined): number {
  let n = `${method} ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: keep-alive\r\n`.length;
  for (const [k, v] of Object.entries(headers)) n += k.length + v.length + 4;
  if (bodyLength !== undefined) n += 'content-length'.length + String(bodyLength).length + 4;
  return n + 2;
}

/**
 * The HTTP front: routing, body limit, authentication, rate limits, refusals as
 * `{"error":{"code","message"}}` with the right status, metrics, and a graceful stop.
 * No input crashes the process: every failure of a handler becomes a response.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { MeshError, type MeshErrorCode } from '../mesh/errors.js';
import { parseJson } from '../mesh/json.js';
import { LIMITS } from '../mesh/protocol.js';
import type { Call, PortalContext, Reply, Route } from './context.js';
import { errorFields } from './log.js';
import type { RateLimiter } from './ratelimit.js';
import type { Session } from './sessions.js';
import { httpStatus } from './status-codes.js';

export interface HttpOptions {
  readonly routes: readonly Route[];
  /** per client address, every request */
  readonly perIp: RateLimiter;
  /** per session subject, authenticated requests */
  readonly perSession: RateLimiter;
  /** plain-text endpoints outside the protocol (/healthz, /metrics) */
  readonly extra: Readonly<Record<string, () => Promise<{ status: number; type: string; body: string }>>>;
  readonly headersTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
  readonly keepAliveTimeoutMs?: number;
}

/** Bodies beyond the limit are read and thrown away up to this much, so the client sees the 413. */
const DRAIN_LIMIT_BYTES = 8 * 1024 * 1024;

class Refusal {
  constructor(
    readonly status: number,
    readonly code: MeshErrorCode,
    readonly message: string,
    readonly headers: Readonly<Record<string, string>> = {},
    readonly detail?: Readonly<Record<string, unknown>>,
  ) {}
}

function readBody(req: http.IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    const chunks: Buffer[] = [];
    let size = 0;
    let over = Number.isFinite(declared) && declared > max;
    if (Number.isFinite(declared) && declared > DRAIN_LIMIT_BYTES) {
      reject(new MeshError('too-large', `the request body is ${declared} bytes; the limit is ${max}`, { size: declared, limit: max }));
      req.resume();
      return;
    }
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) over = true;
      if (size > DRAIN_LIMIT_BYTES) {
        req.destroy();
        return;
      }
      if (!over) chunks.push(c);
    });
    req.on('end', () => {
      if (over) reject(new MeshError('too-large', `the request body is ${size} bytes; the limit is ${max}`, { size, limit: max }));
      else resolve(Buffer.concat(chunks, size));
    });
    req.on('error', (e) => reject(e));
    req.on('close', () => {
      if (!req.complete) reject(new MeshError('malformed', 'the request body was cut short'));
    });
  });
}

function bearer(req: http.IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  if (h === undefined) return undefined;
  const m = /^Bearer ([A-Za-z0-9_-]{1,200})$/.exec(h);
  return m?.[1];
}

export class HttpFront {
  readonly server: http.Server;
  private readonly routes = new Map<string, Route>();
  private inflight = 0;
  private stopping = false;
  private idle: (() => void) | undefined;

  constructor(
    private readonly ctx: PortalContext,
    private readonly o: HttpOptions,
  ) {
    for (const r of o.routes) this.routes.set(r.path, r);
    this.server = http.createServer({ maxHeaderSize: 16 * 1024 }, (req, res) => {
      this.inflight++;
      this.serve(req, res)
        .catch((e: unknown) => ctx.log.error('request handling failed', errorFields(e)))
        .finally(() => {
          this.inflight--;
          if (this.inflight === 0) this.idle?.();
        });
    });
    this.server.headersTimeout = o.headersTimeoutMs ?? 10_000;
    this.server.requestTimeout = o.requestTimeoutMs ?? 30_000;
    this.server.keepAliveTimeout = o.keepAliveTimeoutMs ?? 65_000;
    this.server.maxRequestsPerSocket = 0;
    this.server.on('clientError', (e, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
      ctx.log.debug('bad HTTP from a client', { err: e.message });
    });
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        this.server.on('error', (e) => this.ctx.log.error('HTTP server error', { err: e.message }));
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** Stop accepting; let requests in flight finish (up to `graceMs`), then cut what is left. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    if (this.inflight > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, graceMs);
        this.idle = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    this.server.closeAllConnections();
    await closed;
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const ip = req.socket.remoteAddress ?? 'unknown';
    let name = 'unknown';
    let status = 500;
    const aborter = new AbortController();
    res.on('close', () => aborter.abort());
    try {
      const url = new URL(req.url ?? '/', 'http://portal');
      const extra = this.o.extra[url.pathname];
      if (extra !== undefined) {
        name = url.pathname.slice(1);
        if (req.method !== 'GET' && req.method !== 'HEAD') throw new Refusal(405, 'malformed', `${url.pathname} takes GET`, { allow: 'GET' });
        const r = await extra();
        status = r.status;
        this.send(res, status, r.body, { 'content-type': r.type });
        return;
      }
      const route = this.routes.get(url.pathname);
      if (route === undefined) throw new Refusal(404, 'not-found', `no transaction at ${url.pathname.slice(0, 200)}`);
      name = route.name;
      if (req.method !== route.method) throw new Refusal(405, 'malformed', `${route.name} takes ${route.method}`, { allow: route.method });
      const now = this.ctx.now();
      const ipTake = this.o.perIp.take(ip, now);
      if (!ipTake.ok) throw new Refusal(429, 'rate-limited', `too many requests from this address; try again in ${ipTake.retryAfterS} s`, { 'retry-after': String(ipTake.retryAfterS) });
      let session: Session | undefined;
      if (route.auth !== 'none') {
        const token = bearer(req);
        session = token === undefined ? undefined : await this.ctx.sessions.authenticate(token);
        if (session === undefined) {
          throw new Refusal(401, 'unauthorized', token === undefined ? 'this transaction needs "Authorization: Bearer <token>"; open a Session' : 'the session is unknown or expired; open a new Session', {
            'www-authenticate': 'Bearer',
          });
        }
        if (session.kind !== route.auth) throw new Refusal(403, 'forbidden', `${route.name} is for ${route.auth === 'device' ? 'devices' : 'owners'}, not a ${session.kind} session`);
        const t = this.o.perSession.take(session.subject, now);
        if (!t.ok) throw new Refusal(429, 'rate-limited', `too many requests from ${session.subject}; try again in ${t.retryAfterS} s`, { 'retry-after': String(t.retryAfterS) });
      }
      let body: unknown;
      if (route.method === 'POST') body = parseJson(await readBody(req, LIMITS.maxBodyBytes), LIMITS.maxBodyBytes, `${route.name} request`);
      else if (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') await readBody(req, LIMITS.maxBodyBytes);
      const call: Call = { ip, query: url.searchParams, body, session, signal: aborter.signal };
      const reply: Reply = await route.handle(this.ctx, call);
      status = reply.status ?? 200;
      this.send(res, status, 'raw' in reply ? reply.raw : JSON.stringify(reply.json), { 'content-type': 'application/json' });
    } catch (e) {
      const r = this.refusal(e);
      status = r.status;
      const err = r.detail === undefined ? { code: r.code, message: r.message } : { code: r.code, message: r.message, detail: r.detail };
      this.send(res, r.status, JSON.stringify({ error: err }), { 'content-type': 'application/json', ...r.headers });
      if (r.status >= 500) this.ctx.log.error('request failed', { tx: name, status: r.status, ip, ...errorFields(e) });
      else this.ctx.log.info('request refused', { tx: name, status: r.status, code: r.code, ip, err: r.message.slice(0, 300) });
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.ctx.metrics.observe(name, status, seconds);
      if (this.ctx.log.enabled('debug')) this.ctx.log.debug('request', { tx: name, status, ms: Math.round(seconds * 1e4) / 10, ip });
    }
  }

  private refusal(e: unknown): Refusal {
    if (e instanceof Refusal) return e;
    if (e instanceof MeshError) {
      const status = httpStatus(e.code);
      const headers: Record<string, string> = {};
      const retry = e.detail?.retryAfterS;
      if ((status === 429 || status === 503) && typeof retry === 'number') headers['retry-after'] = String(retry);
      if (status === 401) headers['www-authenticate'] = 'Bearer';
      if (status === 413) headers.connection = 'close';
      if (status >= 500) return new Refusal(status, e.code, e.message, headers);
      return new Refusal(status, e.code, e.message, headers, e.detail);
    }
    return new Refusal(500, 'internal', 'the portal failed to handle this request; it has been logged');
  }

  private send(res: http.ServerResponse, status: number, body: string, headers: Readonly<Record<string, string>>): void {
    if (res.headersSent || res.destroyed) return;
    const h: Record<string, string | number> = { 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body), ...headers };
    if (this.stopping) h.connection = 'close';
    res.writeHead(status, h);
    res.end(body);
  }
}

/**
 * The HTTP front: connection caps and timeouts, routing, body limit, authentication, rate limits,
 * refusals as `{"error":{"code","message"}}` with the right status, metrics, and a graceful stop.
 * No input crashes the process: every failure of a handler becomes a response.
 */
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { MeshError, type MeshErrorCode } from '../mesh/errors.js';
import { parseJson } from '../mesh/json.js';
import { LIMITS } from '../mesh/protocol.js';
import { performance } from 'node:perf_hooks';
import { addressKey, clientAddress, NO_PROXIES, type TrustedProxies } from './address.js';
import { ConnectionGuard, listenError, type ConnectionLimits } from './connections.js';
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
  /** endpoints outside the protocol (/healthz, /metrics, the owner app's files), each with its own headers if it needs them */
  readonly extra: Readonly<Record<string, () => Promise<{ status: number; type: string; body: string; headers?: Readonly<Record<string, string>> }>>>;
  /** plain-text POST endpoints outside the protocol (a witness's add-checkpoint), rate-limited per address */
  readonly extraPost?: Readonly<Record<string, (body: Buffer) => { status: number; type: string; body: string }>>;
  /** from connection (or the end of the last response) to the end of a request's headers (default 10 s) */
  readonly headersTimeoutMs?: number;
  /** to receive a whole request (default 30 s; a long poll's wait is not counted: it is the response) */
  readonly requestTimeoutMs?: number;
  /** an idle keep-alive connection is closed after this (default 65 s) */
  readonly keepAliveTimeoutMs?: number;
  /** per client address and in all (default 10,000 in all, none per address) */
  readonly connections?: ConnectionLimits;
  /** reverse proxies whose X-Forwarded-For names the client (default none) */
  readonly trusted?: TrustedProxies;
}

/** A socket that shows no activity for this long (a client that stopped reading, say) is closed: longer than any long poll. */
const SOCKET_IDLE_MS = LIMITS.maxLongPollMs + 30_000;

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

/** One request on its way through the front. */
interface Exchange {
  readonly req: http.IncomingMessage;
  readonly res: http.ServerResponse;
  readonly started: number;
  /** the client's address (the forwarded one behind a trusted proxy) */
  readonly ip: string;
  /** what per-address limits count it under */
  readonly key: string;
  /** transaction name, for metrics and logs */
  name: string;
  status: number;
  aborter: AbortController | undefined;
}

/**
 * The request's abort signal, made only for the handlers that ask for it (long polls): an
 * AbortController per request, and the DOMException its abort() builds, would cost more than the
 * rest of an unchanged poll. Aborted when the client goes away before the answer is sent.
 */
function signalOf(x: Exchange): AbortSignal {
  if (x.aborter === undefined) {
    const a = new AbortController();
    x.aborter = a;
    const { req, res } = x;
    if (!res.writableFinished) {
      if (res.destroyed || req.socket.destroyed) a.abort();
      else res.once('close', () => {
        if (!res.writableFinished) a.abort();
      });
    }
  }
  return x.aborter.signal;
}

/** A Call whose signal is made when a handler asks for it (a class: an accessor in an object literal costs an allocation per request). */
class CallOf implements Call {
  readonly ip: string;
  constructor(
    private readonly x: Exchange,
    readonly query: URLSearchParams,
    readonly body: unknown,
    readonly session: Session | undefined,
  ) {
    this.ip = x.key;
  }

  get signal(): AbortSignal {
    return signalOf(this.x);
  }
}

/** A request target of plain characters, without dot segments: its path is taken as it is. */
const PLAIN_PATH = /^\/(?!\/)[A-Za-z0-9._~/-]*$/;
const DOT_SEGMENT = /\/\.\.?(?:\/|$)/;
const PLAIN_QUERY = /^[A-Za-z0-9._~=&-]*$/;

/** Path and query of a request target, as `new URL(target, 'http://portal')` gives them (which is used for anything unusual). */
export function target(raw: string): { pathname: string; query: URLSearchParams } {
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const qs = q < 0 ? '' : raw.slice(q + 1);
  if (PLAIN_PATH.test(path) && !DOT_SEGMENT.test(path) && PLAIN_QUERY.test(qs)) return { pathname: path, query: new URLSearchParams(qs) };
  const u = new URL(raw, 'http://portal');
  return { pathname: u.pathname, query: u.searchParams };
}

export class HttpFront {
  readonly server: http.Server;
  private readonly routes = new Map<string, Route>();
  private inflight = 0;
  private stopping = false;
  private idle: (() => void) | undefined;
  readonly connections: ConnectionGuard;
  private readonly trusted: TrustedProxies;

  constructor(
    private readonly ctx: PortalContext,
    private readonly o: HttpOptions,
  ) {
    for (const r of o.routes) this.routes.set(r.path, r);
    this.trusted = o.trusted ?? NO_PROXIES;
    this.connections = new ConnectionGuard({ maxTotal: 10_000, maxPerAddress: 0, trusted: this.trusted, ...o.connections });
    const headersTimeout = o.headersTimeoutMs ?? 10_000;
    const requestTimeout = Math.max(o.requestTimeoutMs ?? 30_000, headersTimeout);
    this.server = http.createServer(
      {
        maxHeaderSize: 16 * 1024,
        headersTimeout,
        requestTimeout,
        // how often Node looks for connections past headersTimeout / requestTimeout (its default is 30 s)
        connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(headersTimeout / 4))),
      },
      (req, res) => this.onRequest(req, res),
    );
    this.server.keepAliveTimeout = o.keepAliveTimeoutMs ?? 65_000;
    this.server.timeout = SOCKET_IDLE_MS;
    this.server.maxRequestsPerSocket = 0;
    this.server.on('connection', (socket: Socket) => {
      if (!this.connections.admit(socket)) return;
      // Node's headersTimeout runs from a request's first byte: a socket that never sends one is closed here.
      // The check waits for the next poll phase: bytes that came while the process was busy are read first.
      const t = ctx.clock.setTimer(
        () =>
          setImmediate(() => {
            if (socket.bytesRead === 0) socket.destroy();
          }),
        headersTimeout,
        { unref: true },
      );
      socket.once('close', () => t.cancel());
    });
    this.server.on('clientError', (e: NodeJS.ErrnoException, socket) => {
      const status = e.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : e.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
      if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      else socket.destroy();
      ctx.log.debug('bad HTTP from a client', { err: e.message });
    });
  }

  /** Listen, or fail with a message that says which address could not be had (the CLI exits 1). */
  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', (e: NodeJS.ErrnoException) => reject(listenError('HTTP', host, port, e)));
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
        const t = this.ctx.clock.setTimer(resolve, graceMs);
        this.idle = () => {
          t.cancel();
          resolve();
        };
      });
    }
    this.server.closeAllConnections();
    await closed;
  }

  /**
   * One request. Everything up to the reply runs synchronously unless a step really waits (a
   * session or feed number not cached, a body to read, a handler that reads the database), so an
   * unchanged poll costs no promise, timer or URL object of its own.
   */
  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.inflight++;
    const ip = clientAddress(req.socket.remoteAddress ?? 'unknown', this.trusted.empty ? undefined : req.headers['x-forwarded-for'], this.trusted);
    const x: Exchange = { req, res, started: performance.now(), ip, key: addressKey(ip), name: 'unknown', status: 500, aborter: undefined };
    let pending: Promise<void> | void;
    try {
      pending = this.dispatch(x);
    } catch (e) {
      pending = undefined;
      this.guard(x, () => this.refuse(x, e));
    }
    if (pending === undefined) {
      this.guard(x, () => this.finish(x));
      return;
    }
    pending
      .then(undefined, (e: unknown) => this.refuse(x, e))
      .catch((e: unknown) => this.ctx.log.error('request handling failed', errorFields(e)))
      .finally(() => this.guard(x, () => this.finish(x)));
  }

  /** Run a step that must not throw out of the request callback; count the request done once. */
  private guard(x: Exchange, step: () => void): void {
    try {
      step();
    } catch (e) {
      this.ctx.log.error('request handling failed', errorFields(e));
    }
  }

  private finish(x: Exchange): void {
    try {
      const seconds = (performance.now() - x.started) / 1000;
      this.ctx.metrics.observe(x.name, x.status, seconds);
      if (this.ctx.log.enabled('debug')) this.ctx.log.debug('request', { tx: x.name, status: x.status, ms: Math.round(seconds * 1e4) / 10, ip: x.ip });
    } finally {
      this.inflight--;
      if (this.inflight === 0) this.idle?.();
    }
  }

  private dispatch(x: Exchange): void | Promise<void> {
    const { req, res } = x;
    const t = target(req.url ?? '/');
    const extra = this.o.extra[t.pathname];
    if (extra !== undefined) {
      x.name = t.pathname === '/' ? 'app' : t.pathname.slice(1);
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new Refusal(405, 'malformed', `${t.pathname} takes GET`, { allow: 'GET' });
      return extra().then((r) => {
        x.status = r.status;
        this.send(res, r.status, r.body, { 'content-type': r.type, ...r.headers });
      });
    }
    const post = this.o.extraPost?.[t.pathname];
    if (post !== undefined) {
      x.name = t.pathname.slice(1);
      if (req.method !== 'POST') throw new Refusal(405, 'malformed', `${t.pathname} takes POST`, { allow: 'POST' });
      const take = this.o.perIp.take(x.key, this.ctx.now());
      if (!take.ok) throw new Refusal(429, 'rate-limited', `too many requests from this address; try again in ${take.retryAfterS} s`, { 'retry-after': String(take.retryAfterS) });
      return readBody(req, 64 * 1024).then((b) => {
        const r = post(b);
        x.status = r.status;
        this.send(res, r.status, r.body, { 'content-type': r.type });
      });
    }
    const route = this.routes.get(t.pathname);
    if (route === undefined) throw new Refusal(404, 'not-found', `no transaction at ${t.pathname.slice(0, 200)}`);
    // the owner app loaded from another origin (a static host, a local file): the protocol carries
    // no cookies (a bearer token is sent by hand), so any origin may call it; a preflight is answered here
    if (req.headers.origin !== undefined) {
      res.setHeader('access-control-allow-origin', '*');
      if (req.method === 'OPTIONS') {
        x.name = route.name;
        x.status = 204;
        res.writeHead(204, { 'access-control-allow-methods': route.method, 'access-control-allow-headers': 'authorization, content-type', 'access-control-max-age': '600', 'cache-control': 'no-store', 'content-length': 0 });
        res.end();
        return;
      }
    }
    x.name = route.name;
    if (req.method !== route.method) throw new Refusal(405, 'malformed', `${route.name} takes ${route.method}`, { allow: route.method });
    const now = this.ctx.now();
    const ipTake = this.o.perIp.take(x.key, now);
    if (!ipTake.ok) throw new Refusal(429, 'rate-limited', `too many requests from this address; try again in ${ipTake.retryAfterS} s`, { 'retry-after': String(ipTake.retryAfterS) });
    if (route.auth === 'none') return this.withBody(x, route, t.query, undefined);
    const token = bearer(req);
    if (token === undefined) return this.authorized(x, route, t.query, token, undefined, now);
    const cached = this.ctx.sessions.cached(token);
    if (cached !== null) return this.authorized(x, route, t.query, token, cached, now);
    return this.ctx.sessions.authenticate(token).then((s) => this.authorized(x, route, t.query, token, s, now));
  }

  private authorized(x: Exchange, route: Route, query: URLSearchParams, token: string | undefined, session: Session | undefined, now: number): void | Promise<void> {
    if (session === undefined) {
      throw new Refusal(401, 'unauthorized', token === undefined ? 'this transaction needs "Authorization: Bearer <token>"; open a Session' : 'the session is unknown or expired; open a new Session', {
        'www-authenticate': 'Bearer',
      });
    }
    if (session.kind !== route.auth) throw new Refusal(403, 'forbidden', `${route.name} is for ${route.auth === 'device' ? 'devices' : 'owners'}, not a ${session.kind} session`);
    const t = this.o.perSession.take(session.subject, now);
    if (!t.ok) throw new Refusal(429, 'rate-limited', `too many requests from ${session.subject}; try again in ${t.retryAfterS} s`, { 'retry-after': String(t.retryAfterS) });
    return this.withBody(x, route, query, session);
  }

  private withBody(x: Exchange, route: Route, query: URLSearchParams, session: Session | undefined): void | Promise<void> {
    const { req } = x;
    const max = route.maxBody ?? LIMITS.maxBodyBytes;
    if (route.method === 'POST') return readBody(req, max).then((b) => this.handle(x, route, query, session, parseJson(b, max, `${route.name} request`)));
    if (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') return readBody(req, LIMITS.maxBodyBytes).then(() => this.handle(x, route, query, session, undefined));
    return this.handle(x, route, query, session, undefined);
  }

  private handle(x: Exchange, route: Route, query: URLSearchParams, session: Session | undefined, body: unknown): void | Promise<void> {
    const r = route.handle(this.ctx, new CallOf(x, query, body, session));
    if (r instanceof Promise) return r.then((reply) => this.reply(x, reply));
    this.reply(x, r);
  }

  private reply(x: Exchange, reply: Reply): void {
    x.status = reply.status ?? 200;
    this.send(x.res, x.status, 'raw' in reply ? reply.raw : JSON.stringify(reply.json), { 'content-type': 'application/json' });
  }

  private refuse(x: Exchange, e: unknown): void {
    const r = this.refusal(e);
    x.status = r.status;
    const err = r.detail === undefined ? { code: r.code, message: r.message } : { code: r.code, message: r.message, detail: r.detail };
    this.send(x.res, r.status, JSON.stringify({ error: err }), { 'content-type': 'application/json', ...r.headers });
    if (r.status >= 500) this.ctx.log.error('request failed', { tx: x.name, status: r.status, ip: x.ip, ...errorFields(e) });
    else this.ctx.log.info('request refused', { tx: x.name, status: r.status, code: r.code, ip: x.ip, err: r.message.slice(0, 300) });
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

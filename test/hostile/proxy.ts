/**
 * A man-in-the-middle HTTP proxy for the hostile-portal tests: it sits between a real client
 * (the agent process, the `mesh` CLI) and a real portal process, forwards every request, and
 * lets a test rewrite what comes back (or answer in the portal's place, or send a request to
 * another upstream). The portal is untrusted by design; these tests make it actively hostile.
 *
 *   const proxy = await startProxy(portal.http);
 *   const off = proxy.use({ name: 'freeze', response: (req, res) => ... });
 *   ...
 *   off();
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProxyRequest {
  readonly method: string;
  /** the path without the query, e.g. /.well-known/mmm/Download */
  readonly path: string;
  readonly query: URLSearchParams;
  /** path and query as received */
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface ProxyResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

export interface Rule {
  readonly name: string;
  /** another upstream base URL for this request (split view), or undefined to keep the default */
  readonly upstream?: (req: ProxyRequest) => string | undefined;
  /** answer without asking the portal at all */
  readonly request?: (req: ProxyRequest) => ProxyResponse | undefined;
  /** rewrite the portal's answer; undefined leaves it as it is */
  readonly response?: (req: ProxyRequest, res: ProxyResponse) => ProxyResponse | undefined | Promise<ProxyResponse | undefined>;
}

export interface Exchange {
  readonly method: string;
  readonly url: string;
  readonly status: number;
  /** names of the rules that changed this exchange */
  readonly rules: readonly string[];
}

export interface Proxy {
  readonly url: string;
  /** every exchange so far (newest last, at most 5000) */
  readonly exchanges: Exchange[];
  /** add a rule (applied after the earlier ones); returns a function that removes it */
  use(rule: Rule): () => void;
  close(): Promise<void>;
}

const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'host', 'proxy-connection', 'te', 'trailer', 'upgrade']);

function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
}

export function jsonResponse(status: number, value: unknown): ProxyResponse {
  return { status, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify(value), 'utf8') };
}

export async function startProxy(upstream: string): Promise<Proxy> {
  const rules: Rule[] = [];
  const exchanges: Exchange[] = [];
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  const forward = (base: string, req: ProxyRequest): Promise<ProxyResponse> =>
    new Promise((resolve, reject) => {
      const u = new URL(base);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k) && typeof v === 'string') headers[k] = v;
      if (req.body.length > 0 || req.method === 'POST') headers['content-length'] = String(req.body.length);
      const r = http.request({ hostname: u.hostname, port: u.port, path: u.pathname.replace(/\/$/, '') + req.url, method: req.method, headers, agent, timeout: 70_000 }, (res) => {
        readAll(res).then((body) => {
          const h: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) if (!HOP.has(k) && typeof v === 'string') h[k] = v;
          resolve({ status: res.statusCode ?? 502, headers: h, body });
        }, reject);
      });
      r.on('timeout', () => r.destroy(new Error('upstream timeout')));
      r.on('error', reject);
      r.end(req.body);
    });

  const server = http.createServer((req, res) => {
    void (async () => {
      const body = await readAll(req);
      const u = new URL(req.url ?? '/', 'http://proxy');
      const preq: ProxyRequest = { method: req.method ?? 'GET', path: u.pathname, query: u.searchParams, url: req.url ?? '/', headers: req.headers, body };
      const applied: string[] = [];
      let early: ProxyResponse | undefined;
      for (const r of rules.slice()) { // a copy: a rule may remove itself
        const x = r.request?.(preq);
        if (x !== undefined) {
          early = x;
          applied.push(r.name);
          break;
        }
      }
      let out: ProxyResponse;
      if (early !== undefined) out = early;
      else {
        let base = upstream;
        for (const r of rules.slice()) { // a copy: a rule may remove itself
          const b = r.upstream?.(preq);
          if (b !== undefined) {
            base = b;
            applied.push(r.name);
          }
        }
        try {
          out = await forward(base, preq);
        } catch (e) {
          out = jsonResponse(502, { error: { code: 'unavailable', message: `proxy: ${(e as Error).message}` } });
        }
        for (const r of rules.slice()) { // a copy: a rule may remove itself
          const x: ProxyResponse | undefined = await r.response?.(preq, out);
          if (x !== undefined) {
            out = x;
            applied.push(r.name);
          }
        }
      }
      exchanges.push({ method: preq.method, url: preq.url, status: out.status, rules: applied });
      if (exchanges.length > 5000) exchanges.splice(0, exchanges.length - 5000);
      if (res.destroyed) return;
      res.writeHead(out.status, { ...out.headers, 'content-length': String(out.body.length) });
      res.end(out.body);
    })().catch((e: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`proxy failure: ${String(e)}`);
    });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    exchanges,
    use(rule) {
      rules.push(rule);
      return () => {
        const i = rules.indexOf(rule);
        if (i >= 0) rules.splice(i, 1);
      };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        agent.destroy();
      }),
  };
}

// ---------------------------------------------------------------- feed (Download) attacks

export const DOWNLOAD = '/.well-known/mmm/Download';

export interface WireItem {
  n: number;
  kind: string;
  object: { payload: string; sigs: { kid: string; key?: string; sig: string }[]; parts?: { device?: string; kid: string; wk: string }[] };
  master?: unknown;
  index: number;
  /** the inclusion proof in the answer's log head (mesh/feedlog.ts) */
  path?: string[];
}

export interface WireAnswer {
  n: number;
  items: WireItem[];
  log?: { treeHead: string; from: number; consistency: string[] };
}

/** Rewrite the JSON of successful Download answers. `fn` gets the parsed body and the device's `since`. */
export function onDownload(name: string, fn: (body: WireAnswer, since: number) => unknown): Rule {
  return {
    name,
    response: async (req, res) => {
      if (req.path !== DOWNLOAD || res.status !== 200) return undefined;
      const body = JSON.parse(res.body.toString('utf8')) as WireAnswer;
      const next: unknown = await fn(body, Number(req.query.get('since') ?? 0));
      if (next === undefined) return undefined;
      return { ...res, body: typeof next === 'string' ? Buffer.from(next, 'utf8') : Buffer.isBuffer(next) ? next : Buffer.from(JSON.stringify(next), 'utf8') };
    },
  };
}

/**
 * Swap the next real feed item that matches (e.g. the application profile the owner just
 * published) for what `replace` makes of it; the same feed position keeps its replacement if it
 * is downloaded again. `served` resolves with the item number once the device has been sent it.
 */
export function swapNextItem(name: string, match: (item: WireItem) => boolean, replace: (item: WireItem, body: WireAnswer) => WireItem | Promise<WireItem>): { rule: Rule; served: Promise<number> } {
  const swapped = new Map<number, WireItem>();
  let target: number | undefined;
  let done: (n: number) => void = () => undefined;
  const served = new Promise<number>((resolve) => (done = resolve));
  const rule = onDownload(name, async (body) => {
    let changed = false;
    const items: WireItem[] = [];
    for (const it of body.items) {
      if (target === undefined && match(it)) {
        target = it.n;
        swapped.set(it.n, await replace(it, body));
      }
      const s = swapped.get(it.n);
      if (s === undefined) items.push(it);
      else {
        changed = true;
        items.push(s);
      }
    }
    if (!changed) return undefined;
    done(target as number);
    return { ...body, items };
  });
  return { rule, served };
}

/**
 * The item `it` carrying `object` instead: a genuine object the portal logged earlier (a replay),
 * with its own log index and its inclusion proof in the answer's head, fetched from the portal:
 * what a hostile portal can always do, since the object is in its log. The device's log check
 * passes; its own rules must refuse it.
 */
export async function asLogged(portal: string, body: WireAnswer, it: WireItem, object: { payload: string }, extra: Partial<WireItem> = {}): Promise<WireItem> {
  const size = Number(body.log?.treeHead.split('\n')[1]);
  if (!Number.isSafeInteger(size)) throw new Error('the answer has no log head');
  const data = Buffer.from(object.payload, 'base64url').toString('base64url');
  for (let i = size - 1; i >= 0; i--) {
    const e = (await (await fetch(`${portal}/.well-known/mmm/Log/Entry?index=${i}`)).json()) as { data: string };
    if (e.data !== data) continue;
    const inc = (await (await fetch(`${portal}/.well-known/mmm/Log/Inclusion?index=${i}&size=${size}`)).json()) as { proof: string[] };
    return { ...it, ...extra, object: object as WireItem['object'], index: i, path: inc.proof };
  }
  throw new Error('the object is not in the portal\'s log');
}

/**
 * A small autocannon-style HTTP/1.1 load generator on raw keep-alive sockets: each connection
 * writes one pre-serialized request, reads the whole response (status line, headers,
 * Content-Length body), and writes the next. The same tool drives the portal and the bare
 * node:http baseline, so the ratio between them is fair. No pipelining.
 */
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';

export interface LoadResult {
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  /** responses whose status was not the expected one */
  readonly bad: number;
  readonly statuses: Readonly<Record<string, number>>;
  /** first unexpected response, for diagnosis */
  readonly sample?: string;
}

/** Serialize one request exactly as it will go on the wire. */
export function rawRequest(method: 'GET' | 'POST', host: string, path: string, headers: Readonly<Record<string, string>> = {}, body?: string | Buffer): Buffer {
  const b = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  let head = `${method} ${path} HTTP/1.1\r\nHost: ${host}\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  if (b !== undefined) head += `Content-Length: ${b.length}\r\n`;
  head += '\r\n';
  return b === undefined ? Buffer.from(head, 'latin1') : Buffer.concat([Buffer.from(head, 'latin1'), b]);
}

/** Reads HTTP/1.1 responses with Content-Length off a byte stream. */
class ResponseReader {
  private buf: Buffer = Buffer.alloc(0);
  private need = -1;
  private status = 0;
  private headLen = 0;

  /** Feed bytes; calls `done(status, bodyStart)` per complete response. */
  push(chunk: Buffer, done: (status: number, text: () => string) => void): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      if (this.need < 0) {
        const end = this.buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = this.buf.toString('latin1', 0, end);
        this.status = Number(head.slice(9, 12));
        const m = /\r\ncontent-length: *(\d+)/i.exec(head);
        this.headLen = end + 4;
        this.need = this.headLen + (m?.[1] === undefined ? 0 : Number(m[1]));
      }
      if (this.buf.length < this.need) return;
      const whole = this.buf.subarray(0, this.need);
      const st = this.status;
      this.buf = this.buf.subarray(this.need);
      this.need = -1;
      done(st, () => whole.toString('utf8'));
    }
  }
}

export interface ConnectionPlan {
  /** the next request to send, or undefined when this connection is done */
  next(): Buffer | undefined;
}

/**
 * Run `connections` keep-alive connections, each sending requests from its plan until the plan
 * is exhausted or `durationMs` passes. Counts responses with status `expect`.
 */
export async function hammer(o: {
  readonly port: number;
  readonly host?: string;
  readonly connections: number;
  readonly plan: (conn: number) => ConnectionPlan;
  readonly durationMs?: number;
  readonly expect?: number;
}): Promise<LoadResult> {
  const host = o.host ?? '127.0.0.1';
  const expect = o.expect ?? 200;
  const statuses: Record<string, number> = {};
  let requests = 0;
  let bad = 0;
  let sample: string | undefined;
  const sockets: net.Socket[] = [];
  await Promise.all(
    Array.from({ length: o.connections }, () => new Promise<void>((resolve, reject) => {
      const s = net.connect(o.port, host, () => resolve());
      s.setNoDelay(true);
      s.once('error', reject);
      sockets.push(s);
    })),
  );
  const started = performance.now();
  const deadline = o.durationMs === undefined ? Infinity : started + o.durationMs;
  await Promise.all(
    sockets.map(
      (s, i) =>
        new Promise<void>((resolve, reject) => {
          const plan = o.plan(i);
          const reader = new ResponseReader();
          const send = (): void => {
            const req = performance.now() < deadline ? plan.next() : undefined;
            if (req === undefined) {
              resolve();
              return;
            }
            s.write(req);
          };
          s.on('data', (chunk: Buffer) =>
            reader.push(chunk, (status, text) => {
              requests++;
              statuses[status] = (statuses[status] ?? 0) + 1;
              if (status !== expect) {
                bad++;
                sample ??= text().slice(0, 600);
              }
              send();
            }),
          );
          s.on('error', reject);
          s.on('close', () => reject(new Error('the server closed a connection')));
          send();
        }),
    ),
  );
  const seconds = (performance.now() - started) / 1000;
  for (const s of sockets) {
    s.removeAllListeners('close');
    s.destroy();
  }
  return { requests, seconds, rps: requests / seconds, bad, statuses, ...(sample !== undefined ? { sample } : {}) };
}

/** A plan that sends the same request forever. */
export function repeat(req: Buffer): ConnectionPlan {
  return { next: () => req };
}

/** A plan that sends each request of a list once. */
export function each(reqs: readonly Buffer[]): ConnectionPlan {
  let i = 0;
  return { next: () => reqs[i++] };
}

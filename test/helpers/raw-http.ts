/**
 * One raw HTTP exchange (for what the project's client would never send, or from a chosen local
 * address such as 127.0.0.2: another client on this machine). The body is parsed as JSON when it
 * is JSON, else kept as text (metrics).
 */
import * as http from 'node:http';

export interface RawAnswer {
  readonly status: number;
  readonly json: unknown;
  readonly headers: http.IncomingHttpHeaders;
}

export function rawHttp(
  url: string,
  method: string,
  path: string,
  o: { body?: string | Buffer; headers?: Record<string, string>; localAddress?: string; timeoutMs?: number } = {},
): Promise<RawAnswer> {
  const { body } = o;
  return new Promise((resolve, reject) => {
    const req = http.request(
      new URL(path, url),
      {
        method,
        ...(o.localAddress !== undefined ? { localAddress: o.localAddress, agent: false } : {}),
        ...(o.timeoutMs !== undefined ? { timeout: o.timeoutMs } : {}),
        headers: { ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {}), ...o.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown = text;
          try {
            json = JSON.parse(text) as unknown;
          } catch {
            // not JSON (metrics)
          }
          resolve({ status: res.statusCode ?? 0, json, headers: res.headers });
        });
        res.on('error', reject);
      },
    );
    // (the global agent sets a socket timeout of its own: only ours ends the request)
    if (o.timeoutMs !== undefined) req.on('timeout', () => req.destroy(new Error(`no answer from ${url}${path} within ${o.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * PortalClient's transport on node:http: a keep-alive agent and no extra headers, so an unchanged
 * poll stays small (client/transport.ts).
 */
import * as http from 'node:http';
import { createRequire } from 'node:module';
import { MeshError } from '../mesh/errors.js';
import type { HttpRequest, HttpResponse, Transport } from './transport.js';

export function makeTransport(url: URL): Transport {
  const secure = url.protocol === 'https:';
  // node:https (and TLS with it) is loaded only for an https portal: a device on http does not pay for it at idle
  const https = secure ? (createRequire(import.meta.url)('node:https') as typeof import('node:https')) : undefined;
  const agent = https !== undefined ? new https.Agent({ keepAlive: true, maxSockets: 4 }) : new http.Agent({ keepAlive: true, maxSockets: 4 });
  const mod = https ?? http;
  return {
    close: () => agent.destroy(),
    send: (r: HttpRequest): Promise<HttpResponse> =>
      new Promise((resolve, reject) => {
        const headers = r.body === undefined ? { ...r.headers } : { ...r.headers, 'content-length': String(r.body.length) };
        const req = mod.request({ protocol: url.protocol, hostname: url.hostname, port: url.port, path: r.path, method: r.method, headers, agent, timeout: r.timeoutMs }, (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > r.maxBytes) {
              req.destroy(new MeshError('too-large', 'the portal sent too large a response'));
              return;
            }
            chunks.push(c);
          });
          res.on('end', () => {
            const b = Buffer.concat(chunks);
            resolve({ status: res.statusCode ?? 0, body: new Uint8Array(b.buffer, b.byteOffset, b.byteLength), headerBytes: headerBytes(res) });
          });
          res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new MeshError('timeout', `the portal did not answer within ${r.timeoutMs} ms`)));
        req.on('error', (e) => reject(e instanceof MeshError ? e : new MeshError('unavailable', `cannot reach the portal at ${url.origin}: ${e.message}`)));
        req.end(r.body);
      }),
  };
}

function headerBytes(res: http.IncomingMessage): number {
  let n = `HTTP/1.1 ${res.statusCode ?? 200} ${res.statusMessage ?? ''}\r\n`.length + 2;
  const raw = res.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) n += (raw[i] as string).length + (raw[i + 1] as string).length + 4;
  return n;
}

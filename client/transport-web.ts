/**
 * PortalClient's transport in the browser (the owner app): fetch, with no credentials and no
 * cookies, so nothing but what PortalClient puts in the request leaves the page
 * (client/transport.ts). scripts/build-web.mjs puts this file in the place of transport-node.ts.
 */
import { MeshError } from '../mesh/errors.js';
import type { HttpRequest, HttpResponse, Transport } from './transport.js';

export function makeTransport(url: URL): Transport {
  const live = new Set<AbortController>();
  return {
    close: () => {
      for (const a of live) a.abort();
    },
    send: async (r: HttpRequest): Promise<HttpResponse> => {
      const abort = new AbortController();
      live.add(abort);
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        abort.abort();
      }, r.timeoutMs);
      try {
        const res = await fetch(url.origin + r.path, {
          method: r.method,
          headers: r.headers,
          ...(r.body !== undefined ? { body: r.body as Uint8Array<ArrayBuffer> } : {}),
          signal: abort.signal,
          credentials: 'omit',
          redirect: 'error',
          referrerPolicy: 'no-referrer',
        });
        const body = new Uint8Array(await res.arrayBuffer());
        if (body.length > r.maxBytes) throw new MeshError('too-large', 'the portal sent too large a response');
        return { status: res.status, body, headerBytes: 0 };
      } catch (e) {
        if (e instanceof MeshError) throw e;
        if (timedOut) throw new MeshError('timeout', `the portal did not answer within ${r.timeoutMs} ms`);
        throw new MeshError('unavailable', `cannot reach the portal at ${url.origin}: ${e instanceof Error ? e.message : String(e)}`);
      } finally {
        clearTimeout(timer);
        live.delete(abort);
      }
    },
  };
}

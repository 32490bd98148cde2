/**
 * The one list of error codes (mesh/errors.ts) and everything derived from it: the portal's HTTP
 * status per code (portal/status-codes.ts), the client's reading of a refusal
 * (client/portal-client.ts), and the table in docs/protocol.md.
 *
 * Round trip: for every code, a refusal written the way the portal writes it (the status from
 * portal/status-codes.ts, the body `{"error": MeshError.toJSON()}`) comes out of the client as the
 * same code. A code the client does not know is `bad-answer` naming the raw code, never a code that
 * blames the caller's input (`malformed`) or the owner's state.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { PortalClient } from '../client/portal-client.js';
import { MESH_ERRORS, MESH_ERROR_CODES, MeshError, isMeshErrorCode, type MeshErrorCode } from '../mesh/errors.js';
import { PATHS, type WireError } from '../mesh/protocol.js';
import { HTTP_STATUS, httpStatus } from '../portal/status-codes.js';
import { startPortalProcess } from '../harness/portal-process.js';
import { REPO } from '../harness/agent-process.js';
import { errorCodeTable } from '../harness/protocol-examples.js';

interface Answer {
  readonly status: number;
  readonly body: string;
  readonly type?: string;
}

/** A stand-in portal that answers every request with what `next` holds. */
async function answering(): Promise<{ url: string; next: { a: Answer }; close: () => Promise<void> }> {
  const next = { a: { status: 200, body: '{}' } as Answer };
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(next.a.status, { 'content-type': next.a.type ?? 'application/json', 'content-length': Buffer.byteLength(next.a.body) });
      res.end(next.a.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, next, close: () => new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections(); }) };
}

async function refusalOf(client: PortalClient): Promise<MeshError> {
  try {
    await client.request('GET', PATHS.hello, undefined, { auth: false });
  } catch (e) {
    if (e instanceof MeshError) return e;
    throw e;
  }
  throw new Error('the client accepted a refusal');
}

test('the list: every code once, each with a meaning; the type is the list', (t) => {
  t.is(new Set(MESH_ERROR_CODES).size, MESH_ERROR_CODES.length, 'no code is listed twice');
  for (const e of MESH_ERRORS) {
    t.regex(e.code, /^[a-z]+(-[a-z]+)*$/, `${e.code} is a lowercase-dashed word`);
    t.true(e.meaning.length > 10, `${e.code} says what it means`);
  }
  t.true(isMeshErrorCode('rollback'));
  t.true(isMeshErrorCode('bad-answer'));
  t.false(isMeshErrorCode('Rollback'));
  t.false(isMeshErrorCode('toString'), 'a key of Object.prototype is no code');
  t.false(isMeshErrorCode(undefined));
});

test('the portal has an HTTP status for exactly the codes of the list', (t) => {
  t.deepEqual(Object.keys(HTTP_STATUS).sort(), [...MESH_ERROR_CODES].sort());
  for (const code of MESH_ERROR_CODES) {
    const s = httpStatus(code);
    t.true(s >= 400 && s < 600, `${code} -> ${s} is a refusal status`);
  }
});

test('every code round-trips portal -> client, with its status', async (t) => {
  const srv = await answering();
  const client = new PortalClient({ url: srv.url });
  try {
    for (const code of MESH_ERROR_CODES) {
      const status = httpStatus(code);
      const wire: WireError = { error: new MeshError(code, `refused with ${code}`).toJSON() };
      srv.next.a = { status, body: JSON.stringify(wire) };
      const e = await refusalOf(client);
      t.is(e.code, code, `${code} (HTTP ${status}) comes back as ${e.code}`);
      t.is(e.detail?.status, status);
      t.true(e.message.includes(`refused with ${code}`), 'the portal\'s message is kept');
    }
  } finally {
    client.close();
    await srv.close();
  }
});

test('a code the client does not know is bad-answer naming the raw code, whatever the status', async (t) => {
  const srv = await answering();
  const client = new PortalClient({ url: srv.url });
  try {
    for (const status of [400, 401, 409, 422, 429, 500, 503]) {
      srv.next.a = { status, body: JSON.stringify({ error: { code: 'frobnicated', message: 'no such thing' } }) };
      const e = await refusalOf(client);
      t.is(e.code, 'bad-answer', `HTTP ${status} with an unknown code`);
      t.is(e.detail?.code, 'frobnicated');
      t.is(e.detail?.status, status);
      t.true(e.message.includes('frobnicated'));
    }
    // not a string at all
    srv.next.a = { status: 409, body: JSON.stringify({ error: { code: 7, message: 'x' } }) };
    t.is((await refusalOf(client)).code, 'bad-answer');
    // a key of Object.prototype is not a code either
    srv.next.a = { status: 409, body: JSON.stringify({ error: { code: 'constructor', message: 'x' } }) };
    t.is((await refusalOf(client)).code, 'bad-answer');
  } finally {
    client.close();
    await srv.close();
  }
});

test('a refusal without a code is judged by its status; a gateway page is not blamed on the input', async (t) => {
  const srv = await answering();
  const client = new PortalClient({ url: srv.url });
  const cases: [Answer, MeshErrorCode][] = [
    [{ status: 502, body: '<html>Bad Gateway</html>', type: 'text/html' }, 'unavailable'],
    [{ status: 503, body: '' }, 'unavailable'],
    [{ status: 429, body: '{}' }, 'rate-limited'],
    [{ status: 401, body: 'no' }, 'unauthorized'],
    [{ status: 404, body: '<html>Not Found</html>', type: 'text/html' }, 'bad-answer'],
    [{ status: 400, body: '{"error":{}}' }, 'bad-answer'],
  ];
  try {
    for (const [a, code] of cases) {
      srv.next.a = a;
      const e = await refusalOf(client);
      t.is(e.code, code, `HTTP ${a.status} ${a.body.slice(0, 20)} -> ${code}`);
    }
  } finally {
    client.close();
    await srv.close();
  }
});

test('a real portal process: its refusals reach the client with the code it sent', async (t) => {
  const p = await startPortalProcess();
  const client = new PortalClient({ url: p.http });
  try {
    // no session: unauthorized (401)
    const e1 = await client.request('GET', PATHS.account, undefined, { auth: false }).then(() => undefined, (e: unknown) => e);
    t.true(e1 instanceof MeshError && e1.code === 'unauthorized' && e1.detail?.status === 401, String(e1));
    // a tree size the log has not reached: not-found (404)
    const e2 = await client.consistency(0, 1000).then(() => undefined, (e: unknown) => e);
    t.true(e2 instanceof MeshError && e2.code === 'not-found' && e2.detail?.status === 404, String(e2));
    // a body that is not JSON: malformed (400)
    const e3 = await fetch(`${p.http}${PATHS.join}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' });
    const w = (await e3.json()) as WireError;
    t.is(e3.status, httpStatus('malformed'));
    t.is(w.error.code, 'malformed');
  } finally {
    client.close();
    await p.stop();
  }
});

test('docs/protocol.md carries the table of every code, exactly as the list and the status map give it', (t) => {
  const table = errorCodeTable();
  for (const code of MESH_ERROR_CODES) t.true(table.includes(`| \`${code}\` | ${httpStatus(code)} |`), `${code} is in the table`);
  t.is(table.trim().split('\n').length, MESH_ERROR_CODES.length + 2);
  const doc = fs.readFileSync(path.join(REPO, 'docs', 'protocol.md'), 'utf8');
  t.true(doc.includes(table), 'docs/protocol.md §11 is out of date: paste errorCodeTable() (node dist/scripts/protocol-doc.js prints the whole document)');
});

#!/usr/bin/env node
/**
 * mesh-witness: a transparency-log witness anyone can run (C2SP tlog-witness; mesh/witness.ts).
 * Prints one line when ready:
 *   mesh-witness ready {"url":"http://127.0.0.1:PORT","vkey":"<name>+<id>+<key>"}
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import * as c from '../mesh/crypto.js';
import { b64u, fromB64u } from '../mesh/bytes.js';
import { formatVkey, NOTE_ED25519_TYPE, parseVkey } from '../mesh/cosignature.js';
import { parseJson } from '../mesh/json.js';
import { intFlag, parse, runMain, usage } from '../runtime/cli.js';
import { createFileOnce, readTextIfExists } from '../runtime/files.js';
import { fileWitnessStore, Witness } from '../mesh/witness.js';
import * as files from '../runtime/files.js';

const NAME = 'mesh-witness';

const HELP = `${NAME}: a transparency-log witness for Mathematical Mesh portals (C2SP tlog-witness)

Usage:
  ${NAME} --data DIR --name NAME --log VKEY [--log VKEY ...] [options]

It cosigns a log's checkpoint only with a consistency proof from the last one it cosigned for
that log (C2SP tlog-cosignature v1, Ed25519), so a portal cannot show two histories to those who
require its cosignature. Its key is made at the first start (DIR/witness-key.json, 0600).

Required:
  --data DIR          the witness's directory: its key and the checkpoint it holds per log
  --name NAME         the witness's name in its cosignatures (e.g. witness.example.org/w1)
  --log VKEY          a log to witness, as the verifier key of its checkpoints
                      (<origin>+<key ID>+<base64(0x01 || Ed25519 key)>: mesh-portal's /healthz
                      "logKey"); repeatable

Options:
  --http-port N       port (default 0: any free port)
  --host HOST         address to listen on (default 127.0.0.1)
  --print-vkey        print the witness's verifier key (made if need be) and exit
  --json              machine-readable output
  -h, --help          this help

HTTP: POST /add-checkpoint (C2SP tlog-witness): 200 with the cosignature line, 409 with the size
it holds (text/x.tlog.size), 422 for a proof that does not verify, 403 for a checkpoint not
signed by the log's key, 404 for a log it does not witness. GET /livez answers when it runs.
When ready, one line on stdout: ${NAME} ready {"url":...,"vkey":...}. Logs: on stderr.
`;

function loadKey(dir: string): c.KeyPair {
  const file = path.join(dir, 'witness-key.json');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  createFileOnce(file, JSON.stringify({ seed: b64u(c.randomBytes(32)) }) + '\n', 0o600);
  const t = readTextIfExists(file) ?? '';
  const o = parseJson(t, 4096, file) as { seed?: unknown };
  return c.ed25519KeyPair(fromB64u(o.seed, `${file} seed`, 32));
}

async function main(argv: string[]): Promise<void> {
  const a = parse(argv, {
    data: { type: 'string' },
    name: { type: 'string' },
    log: { type: 'string', multiple: true },
    'http-port': { type: 'string' },
    host: { type: 'string' },
    'print-vkey': { type: 'boolean' },
  }, false);
  if (a.values.help === true) {
    process.stdout.write(HELP);
    return;
  }
  const dir = a.values.data ?? usage('--data DIR is required');
  const name = a.values.name ?? usage('--name NAME is required');
  if (!/^[\x21-\x2a\x2c-\x7e]+$/.test(name)) usage('--name is printable ASCII without spaces or plus signs');
  const key = loadKey(dir);
  const vkey = formatVkey({ name, publicKey: key.publicKey });
  if (a.values['print-vkey'] === true) {
    process.stdout.write(a.values.json === true ? JSON.stringify({ vkey }) + '\n' : vkey + '\n');
    return;
  }
  const logs = (a.values.log ?? []).map((v) => parseVkey(v, NOTE_ED25519_TYPE));
  if (logs.length === 0) usage('at least one --log VKEY is required');
  const port = intFlag(a.values['http-port'], '--http-port', { min: 0, max: 65535 }) ?? 0;
  const host = a.values.host ?? '127.0.0.1';
  const log = (event: string, data: Record<string, unknown>): void => {
    process.stderr.write(JSON.stringify({ time: new Date().toISOString(), event, ...data }) + '\n');
  };
  const w = new Witness({ name, key, logs, store: fileWitnessStore(path.join(dir, 'witness-state.json'), files), now: () => Math.floor(Date.now() / 1000), log });
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (d: Buffer) => {
      size += d.length;
      if (size > 64 * 1024) req.destroy();
      else chunks.push(d);
    });
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://witness');
      let r: { status: number; type: string; body: string };
      if (url.pathname === '/add-checkpoint' && req.method === 'POST') r = w.addCheckpoint(Buffer.concat(chunks));
      else if (url.pathname === '/livez' && req.method === 'GET') r = { status: 200, type: 'application/json', body: JSON.stringify({ ok: true, vkey }) + '\n' };
      else r = { status: 404, type: 'text/plain', body: 'not found\n' };
      res.writeHead(r.status, { 'content-type': r.type, 'content-length': Buffer.byteLength(r.body) });
      res.end(r.body);
    });
    req.on('error', () => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const addr = server.address() as AddressInfo;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}`;
  process.stdout.write(`${NAME} ready ${JSON.stringify({ url, vkey })}\n`);
  log('started', { url, vkey, logs: logs.map((l) => l.name) });
  const stop = (): void => {
    server.close();
    server.closeAllConnections();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

runMain(NAME, main);

/**
 * admin/state.ts: profile.json version 2 (a document per application and per device), and the
 * upgrade of a version 1 file (one document per application, sent to every device).
 */
import test from 'ava';
import { b64u } from '../mesh/bytes.js';
import { buildExamples } from '../harness/protocol-examples.js';
import { docFor, parseState, STATE_VERSION } from '../client/owner-state.js';
import { codeOf } from './helpers/code-of.js';

const x = buildExamples();

function v1(): Record<string, unknown> {
  const device = (id: string, name: string) => ({ id, name, model: 'thermostat', enc: b64u(new Uint8Array(32).fill(7)), fingerprint: id.slice(0, 20), claimedAt: null, endorsedBy: null });
  return {
    version: 1,
    portal: 'https://portal.example',
    portalKey: b64u(new Uint8Array(32).fill(1)),
    portalId: 'MAAA-AAAA',
    portalName: 'portal.example',
    account: 'alice@portal.example',
    master: x.masterId,
    masterEnvelope: x.master,
    personalSeq: 3,
    admin: 'laptop',
    apps: { thermostat: { seq: 7, doc: { setpoint: 21 }, publishedAt: '2026-11-01T00:00:00.000Z' } },
    devices: [device('MDEV-ONEA-AAAA-AAAA', 'hall'), device('MDEV-TWOA-AAAA-AAAA', 'bedroom')],
    lastTreeHead: null,
    receipts: [],
  };
}

test('a version 1 profile.json is read and upgraded: every device had the one document', (t) => {
  const s = parseState(v1());
  t.is(s.version, STATE_VERSION);
  t.is(STATE_VERSION, 2);
  const r = s.apps.thermostat!;
  t.is(r.seq, 7);
  t.deepEqual(r.doc, { setpoint: 21 });
  for (const id of ['MDEV-ONEA-AAAA-AAAA', 'MDEV-TWOA-AAAA-AAAA']) t.deepEqual(docFor(r, id), { seq: 7, doc: { setpoint: 21 }, publishedAt: '2026-11-01T00:00:00.000Z' });
  t.is(docFor(r, 'MDEV-THRE-AAAA-AAAA'), undefined, 'a device it was never sent to has none');
});

test('version 2 round-trips per-device documents, the document before a refused one, and a removed application', (t) => {
  const o = v1();
  o.version = 2;
  o.apps = {
    thermostat: {
      seq: 9,
      doc: { setpoint: 21 },
      publishedAt: '2026-11-02T00:00:00.000Z',
      targets: {
        'MDEV-ONEA-AAAA-AAAA': { seq: 8, doc: { setpoint: 21 }, publishedAt: '2026-11-02T00:00:00.000Z', prev: null },
        'MDEV-TWOA-AAAA-AAAA': { seq: 9, doc: { setpoint: 18 }, publishedAt: '2026-11-02T00:00:01.000Z', prev: { setpoint: 21 } },
      },
    },
    lamp: { seq: 2, doc: {}, publishedAt: '2026-11-02T00:00:00.000Z', targets: {}, removed: true },
  };
  const s = parseState(JSON.parse(JSON.stringify(o)));
  t.deepEqual(docFor(s.apps.thermostat!, 'MDEV-TWOA-AAAA-AAAA'), { seq: 9, doc: { setpoint: 18 }, publishedAt: '2026-11-02T00:00:01.000Z', prev: { setpoint: 21 } });
  t.is(docFor(s.apps.thermostat!, 'MDEV-ONEA-AAAA-AAAA')?.seq, 8);
  t.true(s.apps.lamp!.removed);
  t.deepEqual(parseState(JSON.parse(JSON.stringify(s))), s, 'written and read back unchanged');
  o.version = 3;
  t.is(codeOf(() => parseState(o)), 'malformed', 'a version from a newer mesh is refused, not guessed at');
});

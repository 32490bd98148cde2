/**
 * bytes: what ONE device downloads for one configuration change sent to N devices (1, 100, 1,000,
 * 10,000; --quick stops at 1,000), through a real portal process. For each N a fresh owner claims
 * one registered device, then publishes one application profile (mesh/profiles.ts
 * createApplicationProfile, as client/owner.ts publishApp builds it) encrypted to that device and
 * N - 1 others (generated keys and ids only: no agents). The device's Download answer for that
 * item, asked with the log head it holds (so with its inclusion and consistency proofs), is
 * fetched raw (no compression) and its body counted. "Stored" is the published profile's size:
 * the portal keeps that text once (objects; each device's feed row refers to it as "@id", so
 * per-device rows do not repeat it), again as the app's latest profile (applications) and its
 * payload as the log leaf: not the database's bytes on disk, which this row does not measure.
 * Today a profile carries a wrapped key and an id per recipient, so the figure grows with N
 * (issue 16: per-device parts are not built); a refusal of the portal is reported as such.
 */
import * as http from 'node:http';
import { signKeyId } from '../mesh/keys.js';
import * as c from '../mesh/crypto.js';
import { parseSignedNote } from '../mesh/checkpoint.js';
import { isMeshError } from '../mesh/errors.js';
import { PATHS } from '../mesh/protocol.js';
import { TestOwner, type TestDevice } from '../harness/owner.js';
import { registerDevice } from '../harness/device.js';
import type { PortalClient } from '../client/portal-client.js';
import { fmt, log, startBenchPortal, type Line, type Options } from './util.js';

interface Point {
  readonly n: number;
  readonly downloaded?: number;
  readonly stored?: number;
  readonly refused?: string;
}

/** GET with the session's bearer token, no compression asked: the body's bytes and the parsed answer. */
function rawGet(url: string, token: string): Promise<{ bytes: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { authorization: `Bearer ${token}`, 'accept-encoding': 'identity' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        if (res.statusCode !== 200) reject(new Error(`Download: HTTP ${String(res.statusCode)}: ${buf.toString('utf8').slice(0, 200)}`));
        else resolve({ bytes: buf.length, body: JSON.parse(buf.toString('utf8')) as unknown });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

function generated(count: number): TestDevice[] {
  return Array.from({ length: count }, () => ({ id: signKeyId(c.ed25519KeyPair().publicKey), enc: c.x25519KeyPair().publicKey }));
}

/** One owner, one measuring device; the other recipients are registered and claimed as N grows (the portal takes a profile only for the owner's devices). */
class Fleet {
  readonly devices: TestDevice[] = [];
  private since = 0;
  private head = 0;
  private constructor(
    readonly portalUrl: string,
    readonly owner: TestOwner,
    readonly client: PortalClient,
  ) {}

  static async create(portalUrl: string): Promise<Fleet> {
    const owner = await TestOwner.create(portalUrl, 'bytes');
    const { client, identity } = await registerDevice(portalUrl);
    const f = new Fleet(portalUrl, owner, client);
    f.devices.push(await owner.claim(identity.labelUri));
    return f;
  }

  async grow(n: number): Promise<void> {
    const work = async (): Promise<void> => {
      while (this.devices.length < n) {
        const slot = this.devices.length;
        this.devices.length = slot + 1; // reserve the slot before awaiting
        const { client, identity } = await registerDevice(this.portalUrl);
        client.close();
        this.devices[slot] = await this.owner.claim(identity.labelUri);
      }
    };
    await Promise.all(Array.from({ length: 4 }, work));
  }

  /** the measuring device catches up and holds the log head of that answer */
  async catchUp(): Promise<void> {
    const a = await this.client.download(this.since, 0, this.head);
    this.since = a.n;
    if (a.log !== undefined) this.head = Number(parseSignedNote(a.log.treeHead).text.split('\n')[1]);
  }

  async point(n: number): Promise<Point> {
    const change = { setpoint: 22, mode: 'eco' };
    // the owner side may refuse this many recipients before anything is sent (checked with generated keys)
    try {
      this.owner.applicationProfile('probe', change, { devices: generated(n) });
    } catch (e) {
      if (isMeshError(e)) return { n, refused: `${e.code} (owner side: ${e.message})` };
      throw e;
    }
    await this.grow(n);
    await this.catchUp();
    const env = this.owner.applicationProfile('thermostat', change, { devices: this.devices.slice(0, n) });
    const stored = Buffer.byteLength(JSON.stringify(env));
    try {
      await this.owner.client.publish(env);
    } catch (e) {
      if (isMeshError(e)) return { n, stored, refused: `${e.code} (portal: ${e.message})` };
      throw e;
    }
    const r = await rawGet(`${this.portalUrl}${PATHS.download}?since=${this.since}&log=${this.head}`, this.client.currentToken as string);
    const items = (r.body as { items?: unknown[] }).items ?? [];
    if (items.length !== 1) throw new Error(`bytes: N=${n}: the device's answer holds ${items.length} items, not the one change`);
    return { n, downloaded: r.bytes, stored };
  }

  close(): void {
    this.client.close();
    this.owner.client.close();
  }
}

export async function bytesRow(o: Options): Promise<Line[]> {
  const ns = o.quick ? [1, 100, 1000] : [1, 100, 1000, 10_000];
  const portal = await startBenchPortal({ args: ['--no-mqtt'] });
  const points: Point[] = [];
  let fleet: Fleet | undefined;
  try {
    fleet = await Fleet.create(portal.http);
    for (const n of ns) {
      const p = await fleet.point(n);
      log(`bytes: N=${n}: ${p.refused !== undefined ? `refused: ${p.refused}${p.stored !== undefined ? ` (profile ${p.stored} bytes)` : ''}` : `downloaded ${p.downloaded ?? 0} bytes, stored ${p.stored ?? 0} bytes`}`);
      points.push(p);
    }
  } finally {
    fleet?.close();
    await portal.stop();
  }
  const base = points[0]?.downloaded ?? NaN;
  const show = (f: (p: Point) => number | undefined): string =>
    points.map((p) => `N=${fmt.int(p.n)}: ${f(p) === undefined ? `refused: ${p.refused?.split(' ')[0] ?? '?'}` : `${fmt.int(f(p) ?? NaN)} B`}`).join('; ');
  const dl = (p: Point): number | undefined => p.downloaded;
  // flat: every N measured within 10% of N=1; a refused N is not flat either
  const flat = points.every((p) => p.downloaded !== undefined && Math.abs(p.downloaded - base) <= 0.1 * base);
  return [
    {
      figure: `bytes one device downloads for one change (Download body with log proofs, real portal), N = ${ns.map((n) => fmt.int(n)).join(' / ')} recipients`,
      value: show(dl),
      baseline: `N=1: ${fmt.int(base)} B`,
      target: 'flat within 10% of N=1',
      pass: flat,
      data: { points },
    },
    {
      figure: 'bytes of the published profile (the portal stores its text once, feed rows refer to it; not measured on disk)',
      value: show((p) => p.stored),
      baseline: '-',
      target: 'report',
      pass: null,
      data: { points },
    },
  ];
}

/**
 * bytes: what ONE device downloads for one configuration change sent to N devices (1, 100, 1,000,
 * 10,000; --quick stops at 1,000), through a real portal process (one per N, SQLite, no MQTT).
 * For each N an owner claims the measuring device first, then N - 1 registered devices (the
 * portal takes a profile only for devices the account claimed) and publishes one application
 * profile (mesh/profiles.ts createApplicationProfile, as client/owner.ts publishApp builds it: a
 * parted profile, every part in the Publish). The log is padded so that the change lands at the
 * same log index at every N, and the device asks with the same held head, so its proofs have the
 * same shape: only the recipients change. The device's Download answer (raw, no compression, with
 * the checkpoint, consistency and inclusion proofs) is counted; so is the object alone (the signed
 * envelope with the device's own part), what the portal stores once and what the owner sent.
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
  /** the Download answer's body, with its log proofs */
  readonly downloaded?: number;
  /** the item's object alone: the signed envelope and the device's own part */
  readonly item?: number;
  /** what the portal keeps once for every device (the envelope without the parts) */
  readonly stored?: number;
  /** the Publish: the envelope with every part */
  readonly published?: number;
  /** the log head the measuring device held */
  readonly head?: number;
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

/**
 * One point: a fresh portal, one owner, the measuring device claimed first (so the log head it
 * holds is the same at every N), N - 1 more devices and one to pad with; the log padded with
 * small profiles to the pad device until the measured change lands at the same log index at every
 * N. The log's proofs depend on the log's size (log2 of it, and on its binary shape), not on the
 * recipients: holding the size fixed leaves the recipients the only thing that changes.
 */
class Fleet {
  readonly devices: TestDevice[] = [];
  private since = 0;
  private head = 0;
  private pad: TestDevice | undefined;
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
    await f.catchUp();
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
    const { client, identity } = await registerDevice(this.portalUrl);
    client.close();
    this.pad = await this.owner.claim(identity.labelUri);
  }

  /** the measuring device catches up and holds the log head of that answer */
  async catchUp(): Promise<void> {
    const a = await this.client.download(this.since, 0, this.head);
    this.since = a.n;
    if (a.log !== undefined) this.head = Number(parseSignedNote(a.log.treeHead).text.split('\n')[1]);
  }

  /** small profiles to the pad device until the log's next index is `next` */
  async padTo(next: number): Promise<void> {
    const pad = this.pad as TestDevice;
    let k = 0;
    const one = async (): Promise<number> => (await this.owner.client.publish(this.owner.applicationProfile(`pad-${++k}`, { n: k }, { devices: [pad] }))).index;
    const at = (await one()) + 1;
    if (at > next) throw new Error(`bytes: the log is at ${at} already, past ${next}`);
    let left = next - at;
    const work = async (): Promise<void> => {
      while (left > 0) {
        left--;
        await one();
      }
    };
    await Promise.all(Array.from({ length: 8 }, work));
  }

  /** `at`: the log index the change is to land at (the same for every N) */
  async point(n: number, at: number): Promise<Point> {
    const change = { setpoint: 22, mode: 'eco' };
    // the owner side may refuse this many recipients before anything is sent (checked with generated keys)
    try {
      this.owner.applicationProfile('probe', change, { devices: generated(n) });
    } catch (e) {
      if (isMeshError(e)) return { n, refused: `${e.code} (owner side: ${e.message})` };
      throw e;
    }
    await this.grow(n);
    await this.padTo(at);
    const env = this.owner.applicationProfile('thermostat', change, { devices: this.devices.slice(0, n) });
    const stored = Buffer.byteLength(JSON.stringify({ payload: env.payload, sigs: env.sigs }));
    const published = Buffer.byteLength(JSON.stringify(env));
    try {
      const r = await this.owner.client.publish(env);
      if (r.index !== at) throw new Error(`bytes: N=${n}: the change landed at log index ${r.index}, not ${at}`);
    } catch (e) {
      if (isMeshError(e)) return { n, stored, published, refused: `${e.code} (portal: ${e.message})` };
      throw e;
    }
    const r = await rawGet(`${this.portalUrl}${PATHS.download}?since=${this.since}&log=${this.head}`, this.client.currentToken as string);
    const items = (r.body as { items?: { object?: unknown }[] }).items ?? [];
    if (items.length !== 1) throw new Error(`bytes: N=${n}: the device's answer holds ${items.length} items, not the one change`);
    const item = Buffer.byteLength(JSON.stringify(items[0]?.object));
    return { n, downloaded: r.bytes, item, stored, published, head: this.head };
  }

  close(): void {
    this.client.close();
    this.owner.client.close();
  }
}

export async function bytesRow(o: Options): Promise<Line[]> {
  const ns = o.quick ? [1, 100, 1000] : [1, 100, 1000, 10_000];
  // the index every N's change lands at: past the largest fleet's claims (one leaf each) and the owner's first leaves
  const at = (ns[ns.length - 1] as number) + 64;
  const points: Point[] = [];
  for (const n of ns) {
    const portal = await startBenchPortal({ args: ['--no-mqtt'] });
    let fleet: Fleet | undefined;
    try {
      fleet = await Fleet.create(portal.http);
      const p = await fleet.point(n, at);
      log(`bytes: N=${n}: ${p.refused !== undefined ? `refused: ${p.refused}` : `downloaded ${p.downloaded ?? 0} bytes (object with its part ${p.item ?? 0}), stored once ${p.stored ?? 0} bytes, published ${p.published ?? 0} bytes, log index ${at}, held head ${p.head ?? 0}`}`);
      points.push(p);
    } finally {
      fleet?.close();
      await portal.stop();
    }
  }
  const base = points[0]?.downloaded ?? NaN;
  const show = (f: (p: Point) => number | undefined): string =>
    points.map((p) => `N=${fmt.int(p.n)}: ${f(p) === undefined ? `refused: ${p.refused?.split(' ')[0] ?? '?'}` : `${fmt.int(f(p) ?? NaN)} B`}`).join('; ');
  // flat: every N measured within 10% of N=1; a refused N is not flat either
  const flat = points.every((p) => p.downloaded !== undefined && Math.abs(p.downloaded - base) <= 0.1 * base);
  return [
    {
      figure: `bytes one device downloads for one change (Download body with log proofs, real portal; the change at log index ${fmt.int(at)} at every N), N = ${ns.map((n) => fmt.int(n)).join(' / ')} recipients`,
      value: show((p) => p.downloaded),
      baseline: `N=1: ${fmt.int(base)} B`,
      target: 'flat within 10% of N=1',
      pass: flat,
      data: { points, at },
    },
    {
      figure: 'bytes the portal stores once for the change (the signed envelope; each device\'s feed row adds its own part, about 170 B) / bytes of the Publish (every part)',
      value: points.map((p) => `N=${fmt.int(p.n)}: ${p.stored === undefined ? '-' : fmt.int(p.stored)} / ${p.published === undefined ? '-' : fmt.int(p.published)} B`).join('; '),
      baseline: '-',
      target: 'report',
      pass: null,
      data: { points },
    },
  ];
}

/**
 * Who a client is, for per-address limits: the TCP peer, or, when the peer is a reverse proxy the
 * operator named (`--trusted-proxy`), the address that proxy says it forwarded for. Nobody else's
 * X-Forwarded-For is believed: a client could otherwise pick any address it likes and escape every
 * per-address limit. IPv6 clients are counted by /64 (one subscriber's allocation), so an
 * attacker cannot multiply its budget by walking through the addresses of its own prefix.
 */
import { BlockList, isIP } from 'node:net';
import { MeshError } from '../mesh/errors.js';

/** `::ffff:192.0.2.1` (an IPv4 client on a dual-stack socket) is `192.0.2.1`. */
function unmapped(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

/** The eight groups of an IPv6 address, expanded (`2001:db8::1` -> 2001, db8, 0, ..., 1). */
function groups6(ip: string): string[] {
  const zone = ip.indexOf('%');
  const a = zone < 0 ? ip : ip.slice(0, zone);
  const [head = '', tail] = a.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? [] : Array.from({ length: Math.max(0, 8 - h.length - t.length) }, () => '0');
  return [...h, ...fill, ...t].map((g) => g.toLowerCase().replace(/^0+(?=.)/, ''));
}

/** The key per-address limits count under: an IPv4 address as it is, an IPv6 address by its /64. */
export function addressKey(ip: string): string {
  const a = unmapped(ip);
  if (isIP(a) !== 6) return a;
  return `${groups6(a).slice(0, 4).join(':')}::/64`;
}

/** The reverse proxies whose X-Forwarded-For is believed: addresses and CIDR ranges. */
export class TrustedProxies {
  private readonly list = new BlockList();
  private constructor(readonly entries: readonly string[]) {
    for (const e of entries) {
      const [addr = '', bits] = e.split('/');
      const family = isIP(addr);
      if (family === 0) throw new MeshError('usage', `--trusted-proxy: "${e}" is not an IP address or CIDR range`);
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (bits === undefined) this.list.addAddress(addr, type);
      else {
        const n = Number(bits);
        if (!/^\d{1,3}$/.test(bits) || n > (family === 4 ? 32 : 128)) throw new MeshError('usage', `--trusted-proxy: "${e}" has a bad prefix length`);
        this.list.addSubnet(addr, n, type);
      }
    }
  }

  /** A comma-separated list (`10.0.0.0/8,192.0.2.7,fd00::/8`); empty trusts nobody. */
  static parse(list: string | undefined): TrustedProxies {
    const entries = (list ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    return new TrustedProxies(entries);
  }

  get empty(): boolean {
    return this.entries.length === 0;
  }

  has(ip: string): boolean {
    if (this.entries.length === 0) return false;
    const a = unmapped(ip);
    const family = isIP(a);
    if (family === 0) return false;
    return this.list.check(a, family === 4 ? 'ipv4' : 'ipv6');
  }
}

export const NO_PROXIES = TrustedProxies.parse('');

/**
 * The client's address: the TCP peer, unless the peer is a trusted proxy; then the rightmost
 * X-Forwarded-For entry that is not itself a trusted proxy (entries to its left were written by
 * the client and prove nothing). A trusted proxy that sends no usable header is the client.
 */
export function clientAddress(peer: string, forwarded: string | string[] | undefined, trusted: TrustedProxies): string {
  const p = unmapped(peer);
  if (forwarded === undefined || !trusted.has(p)) return p;
  const hops = (Array.isArray(forwarded) ? forwarded.join(',') : forwarded).split(',');
  for (let i = hops.length - 1; i >= 0; i--) {
    const h = unmapped((hops[i] ?? '').trim());
    if (isIP(h) === 0) return p;
    if (!trusted.has(h)) return h;
  }
  return p;
}

/**
 * Listeners (HTTP and the embedded MQTT broker): a listener that cannot bind fails the start with a
 * message naming it (the CLI exits 1), and each has connection caps: at most `maxPerAddress` open
 * sockets per client address (by /64 for IPv6) and `maxTotal` in all. A socket over a cap
 * is destroyed as it is accepted, before any byte of it is read, so thousands of idle sockets
 * from one address cost the portal a counter each, and cannot crowd out other clients.
 * Trusted reverse proxies carry many clients on their connections: they count toward the total
 * only.
 */
import type { Socket } from 'node:net';
import { MeshError } from '../mesh/errors.js';
import { addressKey, NO_PROXIES, type TrustedProxies } from './address.js';

export interface ConnectionLimits {
  /** open sockets in all; beyond it new ones are closed at once */
  readonly maxTotal: number;
  /** open sockets per client address; 0 = no per-address cap */
  readonly maxPerAddress: number;
  readonly trusted?: TrustedProxies;
}

export class ConnectionGuard {
  private readonly perAddress = new Map<string, number>();
  private open = 0;
  /** sockets accepted from the kernel, refused ones included */
  accepted = 0;
  /** sockets closed at accept because of a cap */
  refused = 0;

  constructor(private readonly limits: ConnectionLimits) {}

  get total(): number {
    return this.open;
  }

  /** Count a new socket; destroy it and return false when it is over a cap. */
  admit(socket: Socket): boolean {
    this.accepted++;
    const peer = socket.remoteAddress;
    if (peer === undefined) {
      // already gone
      socket.destroy();
      return false;
    }
    const trusted = (this.limits.trusted ?? NO_PROXIES).has(peer);
    const key = addressKey(peer);
    const mine = this.perAddress.get(key) ?? 0;
    if (this.open >= this.limits.maxTotal || (!trusted && this.limits.maxPerAddress > 0 && mine >= this.limits.maxPerAddress)) {
      this.refused++;
      socket.destroy();
      return false;
    }
    this.open++;
    this.perAddress.set(key, mine + 1);
    socket.once('close', () => {
      this.open--;
      const n = (this.perAddress.get(key) ?? 1) - 1;
      if (n <= 0) this.perAddress.delete(key);
      else this.perAddress.set(key, n);
    });
    return true;
  }
}

/** A listener that could not bind, as a MeshError naming it (`unavailable`). */
export function listenError(what: string, host: string, port: number, e: NodeJS.ErrnoException): MeshError {
  const why = e.code === 'EADDRINUSE' ? 'the address is in use (another process listens there; pick another port, or 0 for a free one)' : e.code === 'EACCES' ? 'permission denied (ports below 1024 need privileges)' : e.message;
  return new MeshError('unavailable', `cannot listen for ${what} on ${host}:${port}: ${why}`, { listener: what, host, port, errno: e.code ?? null });
}

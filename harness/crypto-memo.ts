/**
 * Memos of pure node:crypto functions, for the model-based test of the device's rules only
 * (test/agent-model.test.ts and scripts/model-long.ts install it; product code never imports
 * harness/, and ava runs each test file in its own process, so nothing else is affected).
 *
 * The model test runs millions of steps with the same few keys and cached signed objects, so the
 * same signatures are verified and the same envelopes decrypted over and over. A memo of a pure
 * function returns what the function would have returned, so it changes no outcome:
 *   - `verify(null, data, key, sig)` (Ed25519): keyed by the KeyObject (the same instance for the
 *     same public key: mesh/crypto.ts caches them; objects are immutable), the signature and a
 *     SHA-256 of the data;
 *   - `createPrivateKey` / `createPublicKey` from DER bytes: keyed by the DER (a KeyObject is
 *     immutable), so that
 *   - `diffieHellman({ privateKey, publicKey })` can be keyed by the two KeyObjects.
 * A forged or changed signature or message gives another key, so it is verified for real.
 * The memos are bounded (cleared when full).
 */
import { createRequire, syncBuiltinESMExports } from 'node:module';
import type * as NodeCrypto from 'node:crypto';

const require = createRequire(import.meta.url);
const nc = require('node:crypto') as typeof NodeCrypto & Record<string, unknown>;

const MAX = 1_000_000;

export interface MemoStats {
  verify: { hits: number; misses: number };
  keys: { hits: number; misses: number };
  dh: { hits: number; misses: number };
}

let installed: MemoStats | undefined;

function bounded<K, V>(m: Map<K, V>, k: K, v: V): V {
  if (m.size >= MAX) m.clear();
  m.set(k, v);
  return v;
}

/** Install the memos in this process (once); returns their hit counts. */
export function installCryptoMemo(): MemoStats {
  if (installed !== undefined) return installed;
  const stats: MemoStats = { verify: { hits: 0, misses: 0 }, keys: { hits: 0, misses: 0 }, dh: { hits: 0, misses: 0 } };
  const ids = new WeakMap<object, number>();
  let nextId = 0;
  const idOf = (k: object): number => {
    let id = ids.get(k);
    if (id === undefined) {
      id = nextId++;
      ids.set(k, id);
    }
    return id;
  };

  const verify = nc.verify;
  const verifyMemo = new Map<string, boolean>();
  const memoVerify = function (this: unknown, ...args: unknown[]): unknown {
    const [alg, data, key, sig, cb] = args;
    if (alg !== null || cb !== undefined || !(key instanceof nc.KeyObject) || !(data instanceof Uint8Array) || !(sig instanceof Uint8Array)) {
      return (verify as (...a: unknown[]) => unknown).apply(this, args);
    }
    const k = `${idOf(key)}|${Buffer.from(sig.buffer, sig.byteOffset, sig.byteLength).toString('base64')}|${nc.createHash('sha256').update(data).digest('base64')}`;
    const hit = verifyMemo.get(k);
    if (hit !== undefined) {
      stats.verify.hits++;
      return hit;
    }
    stats.verify.misses++;
    return bounded(verifyMemo, k, (verify as (...a: unknown[]) => boolean).apply(this, args));
  };

  const keyMemo = (orig: (...a: unknown[]) => NodeCrypto.KeyObject, tag: string): ((...a: unknown[]) => NodeCrypto.KeyObject) => {
    const memo = new Map<string, NodeCrypto.KeyObject>();
    return function (this: unknown, ...args: unknown[]): NodeCrypto.KeyObject {
      const o = args[0] as { key?: unknown; format?: unknown; type?: unknown } | undefined;
      if (args.length !== 1 || o === null || typeof o !== 'object' || !(o.key instanceof Uint8Array) || o.format !== 'der' || typeof o.type !== 'string' || Object.keys(o).length !== 3) {
        return orig.apply(this, args);
      }
      const k = `${tag}|${o.type}|${Buffer.from(o.key.buffer, o.key.byteOffset, o.key.byteLength).toString('base64')}`;
      const hit = memo.get(k);
      if (hit !== undefined) {
        stats.keys.hits++;
        return hit;
      }
      stats.keys.misses++;
      return bounded(memo, k, orig.apply(this, args));
    };
  };

  const dh = nc.diffieHellman;
  const dhMemo = new Map<string, Buffer>();
  const memoDh = function (this: unknown, ...args: unknown[]): unknown {
    const o = args[0] as { privateKey?: unknown; publicKey?: unknown } | undefined;
    if (args.length !== 1 || o === null || typeof o !== 'object' || !(o.privateKey instanceof nc.KeyObject) || !(o.publicKey instanceof nc.KeyObject) || Object.keys(o).length !== 2) {
      return (dh as (...a: unknown[]) => unknown).apply(this, args);
    }
    const k = `${idOf(o.privateKey)}|${idOf(o.publicKey)}`;
    const hit = dhMemo.get(k);
    if (hit !== undefined) {
      stats.dh.hits++;
      return Buffer.from(hit); // a copy: callers may not change the memo
    }
    stats.dh.misses++;
    const r = (dh as (...a: unknown[]) => Buffer).apply(this, args);
    bounded(dhMemo, k, Buffer.from(r));
    return r;
  };

  nc.verify = memoVerify as typeof nc.verify;
  nc.createPrivateKey = keyMemo(nc.createPrivateKey as (...a: unknown[]) => NodeCrypto.KeyObject, 'priv') as typeof nc.createPrivateKey;
  nc.createPublicKey = keyMemo(nc.createPublicKey as (...a: unknown[]) => NodeCrypto.KeyObject, 'pub') as typeof nc.createPublicKey;
  nc.diffieHellman = memoDh as typeof nc.diffieHellman;
  syncBuiltinESMExports();
  installed = stats;
  return stats;
}

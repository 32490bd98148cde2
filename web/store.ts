/**
 * What this browser keeps, in IndexedDB and nowhere else: the owner's state (the same record the
 * CLI keeps in profile.json, read back through the same checks), this administration device's
 * private keys, and the master seed only when the owner asked to keep it. Nothing here is ever
 * sent: the page sends only what the protocol carries (signatures, public keys, ciphertext).
 */
import { b64u, fromB64u } from '../mesh/bytes.js';
import type { AdminKeys } from '../mesh/profiles.js';
import { adminKeysJson, parseAdminKeysJson, parseState, trimReceipts, type State, type StoredAdminKeys } from '../client/owner-state.js';

const DB = 'mesh-owner';
const STORE = 'kv';

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(DB, 1);
    r.onupgradeneeded = () => r.result.createObjectStore(STORE);
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error('IndexedDB cannot be opened'));
  });
}

let db: Promise<IDBDatabase> | undefined;
const conn = (): Promise<IDBDatabase> => (db ??= open());

async function tx<T>(mode: IDBTransactionMode, fn: (s: IDBObjectStore) => IDBRequest<T> | undefined): Promise<T | undefined> {
  const d = await conn();
  return new Promise((resolve, reject) => {
    const t = d.transaction(STORE, mode);
    const req = fn(t.objectStore(STORE));
    t.oncomplete = () => resolve(req?.result);
    t.onerror = () => reject(t.error ?? new Error('IndexedDB failed'));
    t.onabort = () => reject(t.error ?? new Error('IndexedDB write aborted'));
  });
}

const get = (k: string): Promise<unknown> => tx('readonly', (s) => s.get(k));
const put = (k: string, v: unknown): Promise<unknown> => tx('readwrite', (s) => s.put(v, k));

// writes one after the other, in the order they were asked for
let queue: Promise<unknown> = Promise.resolve();
function enqueue(fn: () => Promise<unknown>): void {
  queue = queue.then(fn, fn);
}

/** Keep the state (a copy as plain JSON, as profile.json holds it). */
export function saveState(s: State): void {
  trimReceipts(s);
  const copy = JSON.parse(JSON.stringify(s)) as unknown;
  enqueue(() => put('state', copy));
}

export function saveKeys(k: AdminKeys, extra: { account?: string; pending?: boolean } = {}): void {
  const v = adminKeysJson(k, extra);
  enqueue(() => put('keys', v));
}

export function saveSeed(seed: Uint8Array | null): void {
  const v = seed === null ? null : b64u(seed);
  enqueue(() => put('seed', v));
}

/** Every write asked for so far is done. */
export async function flush(): Promise<void> {
  await queue;
}

export interface Stored {
  readonly state: State | undefined;
  readonly keys: StoredAdminKeys | undefined;
  readonly seed: Uint8Array | undefined;
}

export async function load(): Promise<Stored> {
  const [s, k, seed] = await Promise.all([get('state'), get('keys'), get('seed')]);
  return {
    state: s === undefined || s === null ? undefined : parseState(s),
    keys: k === undefined || k === null ? undefined : parseAdminKeysJson(k, 'the keys in this browser'),
    seed: typeof seed === 'string' ? fromB64u(seed, 'the kept master seed', 32) : undefined,
  };
}

/** Forget everything this browser holds (a new start, or handing the phone on). */
export async function wipe(): Promise<void> {
  await flush();
  await tx('readwrite', (s) => s.clear());
}

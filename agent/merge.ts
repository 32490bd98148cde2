/**
 * Turning several owners' documents into one effective configuration, deterministically and
 * with no clock: for each key, the change the device applied last wins, in the order the device
 * received and applied them (its feed order `n`). The times signers put in their profiles are
 * recorded for display only: a co-owner whose clock is fast (or set far ahead) wins nothing by it.
 * Every effective value records who set it, in which change, and when they said it was.
 */
import type { Json } from '../mesh/json.js';

export interface KeyValue {
  readonly value: Json;
  /** creation time (the signer's clock, display only) of the profile that last changed this key's value */
  readonly changedAt: string;
  /** the feed position of the change that last changed this key's value: what decides precedence */
  readonly n?: number;
}

export interface OwnerDoc {
  readonly master: string;
  readonly account: string;
  readonly values: Readonly<Record<string, KeyValue>>;
}

export interface Source {
  readonly owner: string;
  readonly master: string;
  readonly at: string;
  /** the feed position of the change that set it */
  readonly n: number;
}

export interface Effective {
  readonly values: Record<string, Json>;
  readonly sources: Record<string, Source>;
}

/** The owner's new per-key record after a new document: a key keeps its changedAt unless its value changed. */
export function nextValues(prev: Readonly<Record<string, KeyValue>> | undefined, doc: Readonly<Record<string, Json>>, created: string, n: number): Record<string, KeyValue> {
  const out: Record<string, KeyValue> = {};
  for (const k of Object.keys(doc).sort()) {
    const v = doc[k] as Json;
    const p = prev?.[k];
    out[k] = p !== undefined && JSON.stringify(p.value) === JSON.stringify(v) ? p : { value: v, changedAt: created, n };
  }
  return out;
}

/** Does change `a` take precedence over `b`? Feed order; for values recorded before feed order was kept (no n), the older rule. */
function wins(a: { n: number; at: string; master: string }, b: { n: number; at: string; master: string }): boolean {
  if (a.n !== b.n) return a.n > b.n;
  if (a.at !== b.at) return a.at > b.at;
  return a.master > b.master;
}

export function merge(owners: readonly OwnerDoc[]): Effective {
  const values: Record<string, Json> = {};
  const sources: Record<string, Source> = {};
  const best: Record<string, { n: number; at: string; master: string }> = {};
  for (const o of owners) {
    for (const [k, kv] of Object.entries(o.values)) {
      const b = best[k];
      const c = { n: kv.n ?? 0, at: kv.changedAt, master: o.master };
      if (b === undefined || wins(c, b)) {
        best[k] = c;
        values[k] = kv.value;
        sources[k] = { owner: o.account, master: o.master, at: kv.changedAt, n: c.n };
      }
    }
  }
  const sortedValues: Record<string, Json> = {};
  const sortedSources: Record<string, Source> = {};
  for (const k of Object.keys(values).sort()) {
    sortedValues[k] = values[k] as Json;
    sortedSources[k] = sources[k] as Source;
  }
  return { values: sortedValues, sources: sortedSources };
}

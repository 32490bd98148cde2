/**
 * Turning several owners' documents into one effective configuration, deterministically:
 * for each key, the most recent signed change wins; ties are broken by the owner's master
 * fingerprint (the greater UDF string wins). Every effective value records who set it and when.
 */
import type { Json } from '../mesh/json.js';

export interface KeyValue {
  readonly value: Json;
  /** creation time of the signed application profile that last changed this key's value */
  readonly changedAt: string;
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
}

export interface Effective {
  readonly values: Record<string, Json>;
  readonly sources: Record<string, Source>;
}

/** The owner's new per-key record after a new document: a key keeps its changedAt unless its value changed. */
export function nextValues(prev: Readonly<Record<string, KeyValue>> | undefined, doc: Readonly<Record<string, Json>>, created: string): Record<string, KeyValue> {
  const out: Record<string, KeyValue> = {};
  for (const k of Object.keys(doc).sort()) {
    const v = doc[k] as Json;
    const p = prev?.[k];
    out[k] = p !== undefined && JSON.stringify(p.value) === JSON.stringify(v) ? p : { value: v, changedAt: created };
  }
  return out;
}

export function merge(owners: readonly OwnerDoc[]): Effective {
  const values: Record<string, Json> = {};
  const sources: Record<string, Source> = {};
  const best: Record<string, { at: string; master: string }> = {};
  for (const o of owners) {
    for (const [k, kv] of Object.entries(o.values)) {
      const b = best[k];
      if (b === undefined || kv.changedAt > b.at || (kv.changedAt === b.at && o.master > b.master)) {
        best[k] = { at: kv.changedAt, master: o.master };
        values[k] = kv.value;
        sources[k] = { owner: o.account, master: o.master, at: kv.changedAt };
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

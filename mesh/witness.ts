/**
 * A transparency-log witness (C2SP tlog-witness, cosignature/v1): for each log it is configured
 * with (origin and key, as a verifier key), it keeps the latest checkpoint it cosigned and cosigns
 * a new one only with a consistency proof from it. Anyone can run one (`mesh-witness`, witness/);
 * a portal can be one for other portals (`mesh-portal --witness-for`: the Intermesh, portals
 * cosigning each other's heads). A portal started with `--witness URL=VKEY` asks it for
 * cosignatures and serves them on its checkpoints.
 *
 * The state (per log: size and root) is written (`store.write`, atomically) before a cosignature
 * is returned; requests are handled one at a time (the check and the write are one synchronous
 * step), so two submissions cannot roll the witness back.
 */
import { fromB64u, b64u } from './bytes.js';
import { verifyCheckpoint } from './checkpoint.js';
import { cosign, parseAddCheckpoint, type NoteKey } from './cosignature.js';
import { isMeshError } from './errors.js';
import { parseJson } from './json.js';
import { verifyConsistency } from './merkle.js';
import type { KeyPair } from './crypto.js';

/** Where a witness keeps what it cosigned: read once at start, written (atomically, synchronously) before each answer. */
export interface WitnessStore {
  read(): string | undefined;
  write(text: string): void;
}

export interface WitnessOptions {
  readonly name: string;
  readonly key: KeyPair;
  /** the logs witnessed: origin (the checkpoint key name) and the log's Ed25519 key */
  readonly logs: readonly NoteKey[];
  readonly store: WitnessStore;
  /** seconds since the epoch (the cosignature's timestamp) */
  readonly now: () => number;
  readonly log?: (event: string, data: Record<string, unknown>) => void;
}

export interface WitnessReply {
  readonly status: number;
  readonly type: string;
  readonly body: string;
}

interface Held {
  readonly size: number;
  readonly root: string;
}

export class Witness {
  private readonly held: Map<string, Held>;

  constructor(private readonly o: WitnessOptions) {
    const t = o.store.read();
    const saved = t === undefined ? {} : (parseJson(t, 1 << 20, 'witness state') as Record<string, Held>);
    this.held = new Map(Object.entries(saved));
  }

  /** The checkpoint this witness holds for a log (what it cosigned last). */
  latest(origin: string): Held | undefined {
    return this.held.get(origin);
  }

  /** POST /add-checkpoint */
  addCheckpoint(body: Uint8Array): WitnessReply {
    const text = (status: number, s: string, type = 'text/plain; charset=utf-8'): WitnessReply => ({ status, type, body: s.endsWith('\n') ? s : `${s}\n` });
    let req;
    try {
      req = parseAddCheckpoint(body);
    } catch (e) {
      return text(400, (e as Error).message);
    }
    const origin = req.note.split('\n', 1)[0] ?? '';
    const logKey = this.o.logs.find((l) => l.name === origin);
    if (logKey === undefined) return text(404, `this witness does not witness the log "${origin.slice(0, 80)}"`);
    let cp;
    try {
      cp = verifyCheckpoint(req.note, logKey);
    } catch (e) {
      if (isMeshError(e, 'malformed') || isMeshError(e, 'too-large')) return text(400, e.message);
      return text(403, `the checkpoint is not signed by the log's key: ${(e as Error).message}`);
    }
    if (cp.origin !== origin) return text(400, 'the checkpoint origin is not its key name');
    if (req.old > cp.size) return text(400, `old size ${req.old} is larger than the checkpoint's ${cp.size}`);
    const held = this.held.get(origin);
    const heldSize = held?.size ?? 0;
    if (req.old !== heldSize) return text(409, String(heldSize), 'text/x.tlog.size');
    if (held !== undefined && held.size > 0) {
      const heldRoot = fromB64u(held.root, 'root', 32);
      if (cp.size === held.size) {
        if (b64u(cp.root) !== held.root) {
          this.o.log?.('split-view', { origin, size: cp.size, held: held.root, offered: b64u(cp.root) });
          return text(409, String(heldSize), 'text/x.tlog.size');
        }
      } else {
        try {
          verifyConsistency(held.size, cp.size, heldRoot, cp.root, req.proof);
        } catch (e) {
          this.o.log?.('inconsistent', { origin, from: held.size, to: cp.size, message: (e as Error).message });
          return text(422, `the checkpoint of ${cp.size} leaves is not consistent with the one of ${held.size} this witness cosigned: ${(e as Error).message}`);
        }
      }
    } else if (req.proof.length !== 0) {
      return text(422, 'the consistency proof from size 0 is empty');
    }
    const next = new Map(this.held);
    next.set(origin, { size: cp.size, root: b64u(cp.root) });
    this.o.store.write(JSON.stringify(Object.fromEntries(next)) + '\n');
    this.held.clear();
    for (const [k, v] of next) this.held.set(k, v);
    const textOfNote = req.note.slice(0, req.note.lastIndexOf('\n\n') + 1);
    this.o.log?.('cosigned', { origin, size: cp.size });
    return text(200, cosign(textOfNote, { name: this.o.name, key: this.o.key }, this.o.now()));
  }
}

/** A witness's state in a file (written atomically, mode 0600): `files` is runtime/files.ts. */
export function fileWitnessStore(file: string, files: { readTextIfExists(f: string): string | undefined; writeFileAtomic(f: string, data: string, mode?: number): void }): WitnessStore {
  return { read: () => files.readTextIfExists(file), write: (text) => files.writeFileAtomic(file, text, 0o600) };
}

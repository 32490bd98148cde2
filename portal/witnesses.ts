/**
 * The portal asks its witnesses (`--witness URL=VKEY`) to cosign its checkpoints (C2SP
 * tlog-witness add-checkpoint, mesh/cosignature.ts) and serves the cosigned checkpoint: at
 * GET /checkpoint and in Download answers, so that devices and owners who require a quorum of
 * cosignatures get them with the head.
 *
 * One round at a time: the current head's checkpoint goes to every witness with a consistency
 * proof from the size that witness cosigned last (learnt from its 409 answer the first time);
 * the cosignatures that come back are added to the checkpoint, which is then the one served. A
 * Download waits up to 3 s for a round to cosign the head its items need; past that (the
 * witnesses are down or refuse) it proves them in the current head without cosignatures, and
 * rounds go on every second until one succeeds.
 */
import { addSignatures, formatAddCheckpoint, type NoteKey } from '../mesh/cosignature.js';
import { logOrigin } from '../mesh/checkpoint.js';
import type { Clock } from '../runtime/clock.js';
import type { Logger } from './log.js';
import type { LogTree } from './transparency.js';

export interface WitnessConfig {
  readonly url: string;
  readonly key: NoteKey;
}

interface WitnessState {
  readonly cfg: WitnessConfig;
  /** the size this witness holds for our log (undefined: not known yet; ask with 0) */
  size: number | undefined;
}

/** how long a Download waits for a round to cosign the head it needs */
const WAIT_MS = 3000;
const REQUEST_TIMEOUT_MS = 5000;

export class Witnessing {
  private readonly witnesses: WitnessState[];
  private cosigned: { size: number; note: string } | undefined;
  private round: Promise<void> | undefined;
  private again = false;

  constructor(
    cfgs: readonly WitnessConfig[],
    private readonly tree: LogTree,
    private readonly name: string,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    this.witnesses = cfgs.map((cfg) => ({ cfg, size: undefined }));
  }

  get enabled(): boolean {
    return this.witnesses.length > 0;
  }

  /** The newest cosigned checkpoint and its size (undefined before the first round). */
  get latest(): { size: number; note: string } | undefined {
    return this.cosigned;
  }

  /**
   * The newest cosigned head if it holds at least `size` leaves, after a round if need be (a few
   * seconds at most). When no witness has cosigned a head that large (they are down, or refuse),
   * undefined: the caller serves the current head without cosignatures, which an owner requiring
   * none accepts and one requiring a quorum refuses (`not-witnessed`) until a round succeeds.
   */
  async ensure(size: number): Promise<{ size: number; note: string } | undefined> {
    if (this.cosigned !== undefined && this.cosigned.size >= size) return this.cosigned;
    const run = this.start();
    let timer: { cancel(): void } | undefined;
    await Promise.race([run, new Promise<void>((resolve) => (timer = this.clock.setTimer(resolve, WAIT_MS, { unref: true })))]);
    timer?.cancel();
    return this.cosigned !== undefined && this.cosigned.size >= size ? this.cosigned : undefined;
  }

  /** Start a round (or ask for one more after the one under way). */
  start(): Promise<void> {
    if (this.round !== undefined) {
      this.again = true;
      return this.round;
    }
    this.round = (async () => {
      do {
        this.again = false;
        await this.once().catch((e: unknown) => this.log.warn('witness round failed', { err: (e as Error).message }));
      } while (this.again);
    })().finally(() => {
      this.round = undefined;
    });
    return this.round;
  }

  private async once(): Promise<void> {
    await this.tree.sync();
    const size = this.tree.size;
    if (this.cosigned !== undefined && this.cosigned.size >= size) return;
    const note = this.tree.checkpoint(logOrigin(this.name));
    const lines = (await Promise.all(this.witnesses.map((w) => this.ask(w, note, size)))).join('');
    // a head no witness cosigned is not kept as the cosigned one: the next tick asks again
    if (lines === '') return;
    this.cosigned = { size, note: addSignatures(note, lines) };
  }

  /** One witness's cosignature line on `note`, or '' (its refusal logged). */
  private async ask(w: WitnessState, note: string, size: number): Promise<string> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const old = w.size ?? 0;
      if (old > size) {
        this.log.warn('witness holds a larger head of this log than the portal', { witness: w.cfg.key.name, witness_size: old, size });
        return '';
      }
      const proof = old === 0 || old === size ? [] : await this.tree.consistencyProof(old, size);
      const res = await post(`${w.cfg.url.replace(/\/$/, '')}/add-checkpoint`, formatAddCheckpoint({ old, proof, note }));
      if (res.status === 200) {
        w.size = size;
        return res.body.split('\n').filter((l) => l.startsWith(`\u2014 ${w.cfg.key.name} `)).map((l) => `${l}\n`).join('');
      }
      if (res.status === 409 && /^(0|[1-9][0-9]*)\n?$/.test(res.body)) {
        const held = Number(res.body.trim());
        if (held === old) {
          this.log.warn('witness refused the checkpoint: it holds another head of the same size', { witness: w.cfg.key.name, size });
          return '';
        }
        w.size = held;
        continue;
      }
      this.log.warn('witness refused the checkpoint', { witness: w.cfg.key.name, status: res.status, body: res.body.slice(0, 300) });
      return '';
    }
    return '';
  }
}

async function post(url: string, body: string): Promise<{ status: number; body: string }> {
  try {
    const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'text/plain' }, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    const text = (await res.text()).slice(0, 64 * 1024);
    return { status: res.status, body: text };
  } catch (e) {
    return { status: 0, body: (e as Error).message };
  }
}

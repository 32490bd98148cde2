/**
 * Verifying a published application profile off the event loop. The Ed25519 verification, the
 * parse of the profile and the key fingerprints it needs are most of a Publish's CPU; on a
 * machine with more than one core they run on worker threads (verify-worker.ts), so the event
 * loop only moves bytes and talks to the database. With one core, or should a worker fail, the
 * same function runs inline. Same checks, same errors, in both places.
 *
 * Each account is served by one worker, in order, so one owner's publications reach the store in
 * the order they arrived, as with inline verification.
 */
import * as os from 'node:os';
import { Worker } from 'node:worker_threads';
import { MeshError, fail, type MeshErrorCode } from '../mesh/errors.js';
import { payloadBytes, type SignedEnvelope } from '../mesh/envelope.js';
import { leafHash } from '../mesh/merkle.js';
import { applicationTargets, verifyApplicationProfile, verifyMasterProfile, type MasterProfile } from '../mesh/profiles.js';
import type { AccountRecord, LeafInput } from './storage/types.js';

/** What the Publish handler needs of a verified application profile. */
export interface CheckedApplication {
  readonly app: string;
  readonly seq: number;
  readonly devices: readonly string[];
  /** each device's part (JSON text), in the order of `devices`; absent for a profile made before parts */
  readonly parts?: readonly string[];
  /** the envelope as every device's item refers to it (JSON text, without the parts) */
  readonly text: string;
  /** the envelope as the owner reads it back (with every part) */
  readonly latest: string;
  readonly leaf: LeafInput;
}

export interface ApplicationJob {
  readonly object: SignedEnvelope;
  readonly account: string;
  readonly masterId: string;
  readonly master: string;
}

/** Verified masters by account, re-verified when the stored text changes (as Trust does). */
export class MasterCache {
  private readonly m = new Map<string, { text: string; master: MasterProfile }>();
  constructor(private readonly max = 10_000) {}

  get(account: string, masterId: string, text: string): MasterProfile {
    const hit = this.m.get(account);
    if (hit !== undefined && hit.text === text) return hit.master;
    const master = verifyMasterProfile(JSON.parse(text) as unknown, masterId);
    if (this.m.size >= this.max) this.m.clear();
    this.m.set(account, { text, master });
    return master;
  }
}

/** The whole check: the account's master, the profile's signature chain to it, the log leaf. */
export function checkApplication(job: ApplicationJob, masters: MasterCache): CheckedApplication {
  const p = verifyApplicationProfile(job.object, masters.get(job.account, job.masterId, job.master));
  const data = payloadBytes(job.object);
  const leaf = { kind: 'application', data, hash: leafHash(data) };
  if (p.payload.parts === undefined) {
    const text = JSON.stringify(job.object);
    return { app: p.payload.app, seq: p.payload.seq, devices: applicationTargets(p), text, latest: text, leaf };
  }
  if (!p.complete) fail('bad-part', `a publish carries every part: ${job.object.parts?.length ?? 0} of ${p.payload.parts.n} came`);
  const mine = (job.object.parts ?? []).filter((x) => x.device !== undefined);
  const text = JSON.stringify({ payload: job.object.payload, sigs: job.object.sigs });
  return {
    app: p.payload.app,
    seq: p.payload.seq,
    devices: mine.map((x) => x.device as string),
    parts: mine.map((x) => JSON.stringify(x)),
    text,
    latest: `${text.slice(0, -1)},"parts":${JSON.stringify(job.object.parts)}}`,
    leaf,
  };
}

/** A refusal as it crosses the thread boundary. */
export interface WireFailure {
  readonly mesh: boolean;
  readonly code: string;
  readonly message: string;
  readonly detail?: Record<string, unknown>;
}

export function toWire(e: unknown): WireFailure {
  if (e instanceof MeshError) return { mesh: true, code: e.code, message: e.message, ...(e.detail !== undefined ? { detail: { ...e.detail } } : {}) };
  return { mesh: false, code: 'internal', message: e instanceof Error ? e.message : String(e) };
}

function fromWire(f: WireFailure): Error {
  return f.mesh ? new MeshError(f.code as MeshErrorCode, f.message, f.detail) : new Error(f.message);
}

interface Pending {
  readonly job: ApplicationJob;
  readonly resolve: (v: CheckedApplication) => void;
  readonly reject: (e: unknown) => void;
}

interface Lane {
  worker: Worker | undefined;
  readonly pending: Map<number, Pending>;
}

/** Worker threads for the event loop to hand verification to: one fewer than the cores, at most 4. */
export function defaultVerifyThreads(): number {
  return Math.max(0, Math.min(4, os.availableParallelism() - 1));
}

export class Verifier {
  private readonly lanes: Lane[];
  private readonly inline = new MasterCache();
  private next = 0;
  private closed = false;
  private broken = false;

  constructor(threads = defaultVerifyThreads()) {
    this.lanes = Array.from({ length: threads }, () => ({ worker: undefined, pending: new Map<number, Pending>() }));
  }

  /** Verify an application profile against the account's stored master (rejects as inline verification would throw). */
  application(object: SignedEnvelope, a: AccountRecord): Promise<CheckedApplication> {
    const job: ApplicationJob = { object, account: a.account, masterId: a.masterId, master: a.master };
    if (this.lanes.length === 0 || this.broken || this.closed) return this.runInline(job);
    const lane = this.lanes[laneOf(a.account, this.lanes.length)] as Lane;
    const w = lane.worker ?? this.start(lane);
    if (w === undefined) return this.runInline(job);
    const id = ++this.next;
    return new Promise<CheckedApplication>((resolve, reject) => {
      lane.pending.set(id, { job, resolve, reject });
      w.postMessage({ id, job });
    });
  }

  private runInline(job: ApplicationJob): Promise<CheckedApplication> {
    try {
      return Promise.resolve(checkApplication(job, this.inline));
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }

  private start(lane: Lane): Worker | undefined {
    let w: Worker;
    try {
      w = new Worker(new URL('./verify-worker.js', import.meta.url));
    } catch {
      this.broken = true;
      return undefined;
    }
    w.unref();
    w.on('message', (m: { id: number; ok?: CheckedApplication; fail?: WireFailure }) => {
      const p = lane.pending.get(m.id);
      if (p === undefined) return;
      lane.pending.delete(m.id);
      if (m.ok !== undefined) p.resolve(m.ok);
      else p.reject(fromWire(m.fail ?? { mesh: false, code: 'internal', message: 'the verifier answered nothing' }));
    });
    const lost = (): void => {
      if (lane.worker !== w) return;
      lane.worker = undefined;
      // a worker that dies takes no request with it: what it held is verified here, and from now on all is
      if (!this.closed) this.broken = true;
      for (const [id, p] of lane.pending) {
        lane.pending.delete(id);
        this.runInline(p.job).then(p.resolve, p.reject);
      }
    };
    w.on('error', lost);
    w.on('exit', lost);
    lane.worker = w;
    return w;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(
      this.lanes.map(async (lane) => {
        const w = lane.worker;
        if (w === undefined) return;
        // requests in flight finish inline (close waits for in-flight HTTP requests first, so normally none)
        lane.worker = undefined;
        for (const [id, p] of lane.pending) {
          lane.pending.delete(id);
          this.runInline(p.job).then(p.resolve, p.reject);
        }
        await w.terminate();
      }),
    );
  }
}

/** A stable lane per account (FNV-1a). */
function laneOf(account: string, n: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < account.length; i++) {
    h ^= account.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % n;
}

/**
 * Waiting for the devices an owner's action changed: each device's signed status (checked with its
 * own key) tells whether it applied the change, refused it (and why), or has not been reached yet.
 *
 * A refusal is matched by what it is about (application and sequence number, or the owner for a
 * removal), never by its time: the times in a status are on the device's clock, which may be
 * wrong (a board without a real-time clock says 1970).
 */
import type { StatusError, StatusPayload } from '../mesh/messages.js';
import { deviceStatuses, pollUntil, type Ctx } from './owner.js';
import type { DeviceRecord } from './owner-state.js';

/** Errors a device reports that concern this owner (never another owner's). */
export function errorsFor(status: StatusPayload | null, master: string): StatusError[] {
  return (status?.errors ?? []).filter((e) => e.master === undefined || e.master === master);
}

/** `unlinked`: the portal no longer shows this owner the device (after a removal), so its answer cannot be seen */
export type Result = 'applied' | 'refused' | 'not-reached' | 'unlinked';

export interface Outcome {
  readonly device: DeviceRecord;
  readonly result: Result;
  /** the configuration number the device applied (config) */
  readonly seq?: number;
  readonly error?: StatusError;
}

export interface Awaited {
  readonly device: DeviceRecord;
  /** from the device's latest signed status: its verdict, or undefined while it has none */
  readonly check: (status: StatusPayload | null, listed: boolean) => { result: 'applied' | 'refused' | 'unlinked'; seq?: number; error?: StatusError } | undefined;
}

/** Poll the devices' statuses until each has a verdict or `waitMs` passes. */
export async function waitForDevices(ctx: Ctx, targets: readonly Awaited[], waitMs: number): Promise<Outcome[]> {
  const done = new Map<string, Outcome>();
  if (waitMs > 0 && targets.length > 0) {
    ctx.note(`waiting up to ${Math.round(waitMs / 1000)} s for ${targets.length === 1 ? 'the device' : `the ${targets.length} devices`}...\n`);
    await pollUntil(waitMs, 500, async () => {
      const views = await deviceStatuses(ctx);
      for (const t of targets) {
        if (done.has(t.device.id)) continue;
        const v = t.check(views.get(t.device.id)?.status ?? null, views.has(t.device.id));
        if (v !== undefined) done.set(t.device.id, { device: t.device, ...v });
      }
      return done.size === targets.length ? true : undefined;
    });
  }
  return targets.map((t) => done.get(t.device.id) ?? { device: t.device, result: 'not-reached' });
}


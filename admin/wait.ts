/**
 * The CLI's side of waiting for devices (client/owner-wait.ts waits): --wait, the per-device lines
 * and the exit status.
 */
import { intOpt, strOpt, type Values } from './command.js';
import type { Outcome } from '../client/owner-wait.js';

/** exit status when every device reached applied it, but some were not reached in time */
export const EXIT_NOT_REACHED = 3;
/** exit status when at least one device refused it */
export const EXIT_REFUSED = 4;

export const DEFAULT_WAIT_MS = 15_000;

export const WAIT_HELP = `  --wait S      wait up to S seconds for every target device's signed status (default ${DEFAULT_WAIT_MS / 1000}; 0: publish and return)
  --wait-ms N   the same in milliseconds (an older spelling)`;

export const EXIT_HELP = `exit status: 0 when every target device reported it applied the change; ${EXIT_NOT_REACHED} when none
refused it but some did not report within the wait (they get it when they next reach the portal);
${EXIT_REFUSED} when at least one refused it (the reason is printed); 1 for any other error, 64 for
a mistyped command. With --wait 0 the exit status is 0 once it is published.`;

export const WAIT_OPTIONS = { wait: { type: 'string' }, 'wait-ms': { type: 'string' } } as const;

/** --wait S (seconds) or --wait-ms N; default 15 s. */
export function waitMsOpt(v: Values): number {
  if (strOpt(v, 'wait-ms') !== undefined) return intOpt(v, 'wait-ms', DEFAULT_WAIT_MS, 0, 3_600_000);
  return intOpt(v, 'wait', DEFAULT_WAIT_MS / 1000, 0, 3600) * 1000;
}

/** One line per device, for the text output. */
export function outcomeLine(o: Outcome, what: { applied: string; notReached: string }): string {
  if (o.result === 'applied') return `  ${o.device.name}: ${what.applied}${o.seq !== undefined ? ` #${o.seq}` : ''}`;
  if (o.result === 'unlinked') return `  ${o.device.name}: the portal no longer shows you this device's status (it unlinked you when it took the removal), so its answer cannot be waited for; it acts on the removal when it next reaches the portal (a co-owner sees it leave you in mesh device list)`;
  if (o.result === 'refused' && (o.error?.code === 'reverted' || o.error?.code === 'unhealthy')) {
    // applied, then undone by the device itself: say why in a few words first
    const why = o.error.code === 'unhealthy' ? 'health check failed' : 'no portal contact';
    return `  ${o.device.name}: REVERTED${o.error.seq !== undefined ? ` #${o.error.seq}` : ''} (${why}): ${o.error.message}`;
  }
  if (o.result === 'refused') return `  ${o.device.name}: REFUSED${o.error?.seq !== undefined ? ` #${o.error.seq}` : ''}: [${o.error?.code ?? '?'}] ${o.error?.message ?? ''}`;
  return `  ${o.device.name}: not reached yet (${what.notReached})`;
}

export function outcomeJson(o: Outcome): Record<string, unknown> {
  return { device: o.device.name, id: o.device.id, result: o.result, ...(o.seq !== undefined ? { seq: o.seq } : {}), ...(o.error !== undefined ? { error: o.error } : {}) };
}

/** The documented exit status for these outcomes (0 with none: nothing was waited for). */
export function exitFor(outcomes: readonly Outcome[], waited: boolean): number {
  if (!waited) return 0;
  if (outcomes.some((o) => o.result === 'refused')) return EXIT_REFUSED;
  if (outcomes.some((o) => o.result === 'not-reached')) return EXIT_NOT_REACHED;
  return 0;
}

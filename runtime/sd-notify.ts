/**
 * The systemd notification protocol (sd_notify(3)) for Type=notify services: READY=1 once the
 * service works, STATUS= as it changes, WATCHDOG=1 from the main loop at half of WatchdogSec=
 * (sd_watchdog_enabled(3)), STOPPING=1 when it begins to stop.
 *
 * How it is sent. $NOTIFY_SOCKET is a unix *datagram* socket, and Node.js cannot open one (node:dgram
 * is UDP only, node:net is stream only; a native addon would break the single-file agent). So each
 * message is handed to `systemd-notify`, which ships with systemd wherever $NOTIFY_SOCKET is set.
 * Two consequences, both handled in the units (provisioning/systemd.ts):
 *   - the sender is a child process, so the unit says NotifyAccess=all;
 *   - systemd must read the message while that child is alive to know whose it is: systemd-notify
 *     (systemd >= 246) waits on a BARRIER=1 until systemd has processed it, so this holds.
 * One message is in flight at a time; messages that come meanwhile are merged into the next one.
 *
 * The watchdog timer runs on the process's event loop: a loop that is blocked or dead sends nothing,
 * and systemd restarts the service after WatchdogSec=.
 *
 * $NOTIFY_SOCKET and $WATCHDOG_* are removed from process.env when read, so children (the agent's
 * configuration hook, say) cannot speak for the service.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { systemClock, type Clock, type Timer } from './clock.js';

export interface Notifier {
  /** true under a service manager that listens ($NOTIFY_SOCKET was set) */
  readonly enabled: boolean;
  /** the watchdog interval asked for ($WATCHDOG_USEC), in ms, or null */
  readonly watchdogMs: number | null;
  ready(status?: string): void;
  status(status: string): void;
  stopping(status?: string): void;
  /** ping the watchdog now */
  watchdog(): void;
  /** ping every watchdogMs / 2 from now on (nothing without a watchdog); returns the stop function */
  startWatchdog(): () => void;
  /** resolves when every message handed over so far has been sent (for an orderly exit) */
  flush(): Promise<void>;
}

export interface NotifierOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly clock?: Clock;
  /** delivers one message (lines "KEY=VALUE"); default: systemd-notify */
  readonly send?: (socket: string, assignments: readonly string[]) => Promise<void>;
  /** told once when a message could not be delivered */
  readonly onError?: (e: Error) => void;
  /** keep $NOTIFY_SOCKET and $WATCHDOG_* in process.env (tests) */
  readonly keepEnv?: boolean;
}

const NOTIFY_BINARIES = ['/usr/bin/systemd-notify', '/bin/systemd-notify'];

/** Send with the systemd-notify program: it sends the datagram and waits for systemd to have processed it. */
export function systemdNotifySend(socket: string, assignments: readonly string[]): Promise<void> {
  const bin = NOTIFY_BINARIES.find((b) => existsSync(b)) ?? 'systemd-notify';
  return new Promise((resolve, reject) => {
    const p = spawn(bin, [...assignments], { env: { NOTIFY_SOCKET: socket, PATH: process.env.PATH ?? '/usr/bin:/bin' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-500)));
    p.once('error', reject);
    p.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`systemd-notify exited with ${String(code)}: ${err.trim()}`))));
  });
}

/** The notifier for this process; without $NOTIFY_SOCKET every call does nothing. */
export function sdNotifier(o: NotifierOptions = {}): Notifier {
  const env = o.env ?? process.env;
  const clock = o.clock ?? systemClock;
  const socket = env.NOTIFY_SOCKET;
  const usec = Number(env.WATCHDOG_USEC);
  const pidOk = env.WATCHDOG_PID === undefined || env.WATCHDOG_PID === '' || Number(env.WATCHDOG_PID) === process.pid;
  const watchdogMs = Number.isFinite(usec) && usec > 0 && pidOk ? Math.max(1, Math.floor(usec / 1000)) : null;
  if (o.keepEnv !== true) for (const k of ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID']) delete env[k];
  const enabled = socket !== undefined && socket !== '';
  const deliver = o.send ?? systemdNotifySend;

  let pending: Map<string, string> | null = null;
  let inFlight: Promise<void> | null = null;
  let complained = false;
  const pump = (): void => {
    if (inFlight !== null || pending === null || !enabled) return;
    const msg = [...pending].map(([k, v]) => `${k}=${v}`);
    pending = null;
    inFlight = deliver(socket, msg).then(
      () => undefined,
      (e: unknown) => {
        if (!complained) o.onError?.(e instanceof Error ? e : new Error(String(e)));
        complained = true;
      },
    );
    void inFlight.then(() => {
      inFlight = null;
      pump();
    });
  };
  const send = (kv: Record<string, string>): void => {
    if (!enabled) return;
    pending ??= new Map();
    // STATUS lines are single lines in the protocol
    for (const [k, v] of Object.entries(kv)) pending.set(k, v.replace(/\s*\n\s*/g, ' '));
    pump();
  };

  return {
    enabled,
    watchdogMs: enabled ? watchdogMs : null,
    ready: (status) => send({ READY: '1', ...(status !== undefined ? { STATUS: status } : {}) }),
    status: (status) => send({ STATUS: status }),
    stopping: (status) => send({ STOPPING: '1', ...(status !== undefined ? { STATUS: status } : {}) }),
    watchdog: () => send({ WATCHDOG: '1' }),
    startWatchdog() {
      if (!enabled || watchdogMs === null) return () => undefined;
      const every = Math.max(1, Math.floor(watchdogMs / 2));
      let t: Timer | null = null;
      const tick = (): void => {
        send({ WATCHDOG: '1' });
        t = clock.setTimer(tick, every, { unref: true });
      };
      tick();
      return () => t?.cancel();
    },
    async flush() {
      while (inFlight !== null) await inFlight;
    },
  };
}

/**
 * mesh rollout status | resume | abort, and the --canary / --abort-on / --wave options of mesh
 * config set and apply: the options read, the rollout printed. The rollout itself (its record at
 * the portal, the waves, the waits) is client/owner-rollout.ts.
 */
import { MeshError } from '../mesh/errors.js';
import { isFailure, waveDevices, type RolloutRecord } from '../client/rollout.js';
import { abortRollout, currentRollout, refreshed, resumeRollout, type RolloutOptions } from '../client/owner-rollout.js';
import { strOpt, withOwner, type Command, type Ctx, type Values } from './command.js';
import { EXIT_NOT_REACHED, EXIT_REFUSED, WAIT_OPTIONS, waitMsOpt } from './wait.js';

/** --canary N --abort-on K --wave M, or undefined when no --canary was given (no rollout). */
export function rolloutOpts(v: Values): RolloutOptions | undefined {
  const num = (k: string, dflt: number, min: number): number => {
    const s = strOpt(v, k);
    if (s === undefined) return dflt;
    if (!/^\d{1,6}$/.test(s) || Number(s) < min) throw new MeshError('usage', `--${k} must be a whole number of at least ${min}`);
    return Number(s);
  };
  if (strOpt(v, 'canary') === undefined) {
    for (const k of ['abort-on', 'wave']) if (strOpt(v, k) !== undefined) throw new MeshError('usage', `--${k} goes with --canary N (a staged rollout)`);
    return undefined;
  }
  return { canary: num('canary', 1, 1), abortOn: num('abort-on', 1, 1), wave: num('wave', 0, 1) };
}

export const ROLLOUT_HELP = `  --canary N    a staged rollout: send it to the first N target devices only (encrypted to them
                alone), wait for their signed status, then to the rest in waves; see mesh
                rollout status --help
  --abort-on K  stop the rollout once K devices refused it, reverted it or failed their health
                check (default 1): the devices not yet sent it never receive it
  --wave M      devices per wave after the canaries (default: all the rest in one wave)`;

export const ROLLOUT_OPTIONS = { canary: { type: 'string' }, 'abort-on': { type: 'string' }, wave: { type: 'string' } } as const;

// ---------------------------------------------------------------- output

function wavesLines(rec: RolloutRecord): string[] {
  const lines: string[] = [];
  rec.waves.forEach((_ids, i) => {
    const es = waveDevices(rec, i);
    const head = i === 0 ? `canaries (${es.length})` : `wave ${i + 1} of ${rec.waves.length} (${es.length})`;
    if (!es.some((e) => e.seq !== undefined)) {
      lines.push(`  ${head}: not sent${rec.state === 'stopped' || rec.state === 'aborted' ? ' (they never received it)' : ' yet'}: ${es.map((e) => e.name).join(', ')}`);
      return;
    }
    lines.push(`  ${head}:`);
    for (const e of es) {
      const what =
        e.result === 'applied' ? 'applied' : e.result === 'pending' ? 'sent, no answer yet' : e.result === 'not-reached' ? 'not reached yet' : `${e.result.toUpperCase()}${e.code !== undefined && e.code !== e.result ? ` [${e.code}]` : ''}: ${e.message ?? ''}`;
      lines.push(`    ${e.name}: ${what}${e.seq !== undefined ? ` (#${e.seq})` : ''}`);
    }
  });
  return lines;
}

function headline(rec: RolloutRecord): string {
  const reached = rec.devices.filter((d) => d.seq !== undefined).length;
  const state =
    rec.state === 'done'
      ? 'DONE: every device applied it'
      : rec.state === 'stopped'
        ? `STOPPED at ${rec.wave === 0 ? 'the canaries' : `wave ${rec.wave + 1}`}: ${rec.reason ?? ''}`
        : rec.state === 'paused'
          ? `PAUSED at ${rec.wave === 0 ? 'the canaries' : `wave ${rec.wave + 1}`}: ${rec.reason ?? ''}`
          : rec.state === 'aborted'
            ? `ABORTED${rec.reason !== undefined ? ` (${rec.reason})` : ''}`
            : `RUNNING (${rec.wave === 0 ? 'the canaries' : `wave ${rec.wave + 1} of ${rec.waves.length}`})`;
  return `rollout ${rec.id} of ${rec.app} (${rec.summary}), started by ${rec.by} at ${rec.created}: ${state}; sent to ${reached} of ${rec.devices.length} devices`;
}

function nextStep(rec: RolloutRecord): string | undefined {
  if (rec.state === 'stopped') return '  to go on all the same: mesh rollout resume; to end it here: mesh rollout abort';
  if (rec.state === 'paused') return '  to check again and go on: mesh rollout resume; to end it here: mesh rollout abort';
  if (rec.state === 'running') return '  another command is driving it (or was killed): mesh rollout resume takes it over';
  return undefined;
}

export function exitOf(rec: RolloutRecord): number {
  if (rec.state === 'stopped') return EXIT_REFUSED;
  if (rec.state === 'paused' || rec.state === 'running') return EXIT_NOT_REACHED;
  return 0;
}

export function report(ctx: Ctx, rec: RolloutRecord, seq: number, verb: string): void {
  const lines = [headline(rec), ...wavesLines(rec)];
  const step = nextStep(rec);
  if (step !== undefined) lines.push(step);
  const code = verb === 'abort' || verb === 'status' ? 0 : exitOf(rec);
  ctx.io.out(lines.join('\n'), {
    rollout: rec.id,
    record: seq,
    app: rec.app,
    summary: rec.summary,
    state: rec.state,
    ...(rec.reason !== undefined ? { reason: rec.reason } : {}),
    wave: rec.wave,
    waves: rec.waves.length,
    failures: rec.devices.filter((d) => isFailure(d.result)).length,
    abortOn: rec.abortOn,
    devices: rec.devices.map((d) => ({ id: d.id, name: d.name, wave: rec.waves.findIndex((w) => w.includes(d.id)), result: d.seq === undefined ? 'not-sent' : d.result, ...(d.seq !== undefined ? { seq: d.seq } : {}), ...(d.code !== undefined ? { code: d.code, message: d.message } : {}) })),
    exit: code,
  });
  if (code !== 0) process.exitCode = code;
}

// ---------------------------------------------------------------- mesh rollout status | resume | abort

export const rolloutStatusCommand: Command = {
  name: 'rollout status',
  summary: "show your staged rollout: its waves, each device's answer, whether it stopped",
  help: `usage: mesh rollout status [--json]

Shows your latest staged rollout (mesh config set ... --canary N), from any of your
administration devices: the record is kept at the portal, encrypted to your own keys. Each
device sent the change is shown with its signed answer (applied, REFUSED, REVERTED, UNHEALTHY,
or no answer yet); the devices of the waves not sent have not received it.

  --json        print it as JSON`,
  options: {},
  async run(_v, pos, env) {
    if (pos.length > 0) throw new MeshError('usage', 'mesh rollout status takes no arguments');
    await withOwner(env, async (ctx) => {
      const held = await currentRollout(ctx);
      report(ctx, await refreshed(ctx, held.rec), held.seq, 'status');
    });
  },
};

export const rolloutResumeCommand: Command = {
  name: 'rollout resume',
  summary: 'go on with a paused or stopped rollout (the next waves)',
  help: `usage: mesh rollout resume [--wait S] [--json]

Goes on with your rollout, from this or any other of your administration devices: a paused one
(some devices had not answered) waits for them again and goes on; a stopped one (it reached
its abort threshold) goes on to the next wave all the same, counting failures afresh. The
waves are sent as planned when the rollout started; when the configuration of a device not yet
sent the change was changed since, resuming is refused (stale): it would undo that change.

  --wait S      wait up to S seconds for each wave's signed statuses (default 15)
  --json        print the result as JSON

exit status: 0 when every device applied it, 4 when it stopped again, 3 when it paused;
conflict when another administration device changed the rollout at the same moment.`,
  options: { ...WAIT_OPTIONS },
  async run(v, pos, env) {
    if (pos.length > 0) throw new MeshError('usage', 'mesh rollout resume takes no arguments');
    const waitMs = waitMsOpt(v);
    if (waitMs === 0) throw new MeshError('usage', '--wait 0 cannot go with a rollout: it waits for each wave before the next');
    await withOwner(env, async (ctx) => {
      const after = await resumeRollout(ctx, await currentRollout(ctx), waitMs);
      report(ctx, after.rec, after.seq, 'resume');
    });
  },
};

export const rolloutAbortCommand: Command = {
  name: 'rollout abort',
  summary: 'end a rollout where it is: the devices not yet sent the change never get it',
  help: `usage: mesh rollout abort [--json]

Ends your rollout where it is, from this or any other of your administration devices. The
devices of the waves not sent never receive the change. The devices that applied it keep it:
to undo it there, set the earlier values again (mesh config set ... --device NAME).

  --json        print the result as JSON`,
  options: {},
  async run(_v, pos, env) {
    if (pos.length > 0) throw new MeshError('usage', 'mesh rollout abort takes no arguments');
    await withOwner(env, async (ctx) => {
      const after = await abortRollout(ctx, await currentRollout(ctx));
      report(ctx, after.rec, after.seq, 'abort');
    });
  },
};

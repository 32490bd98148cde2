/**
 * mesh config set / unset / apply / remove / show: publish an application profile (the
 * configuration encrypted to the target devices and to the owner's own keys), after checking it
 * against the schemas the target devices declared, then wait for each device's signed status.
 *
 * Per device: the owner's state keeps what was last published to each device (AppRecord.targets),
 * so devices may differ (--device). A change is applied to each target device's own document;
 * devices that end up with the same document share one publication, and every publication takes
 * the next number for this owner and application (the portal and the devices refuse anything not
 * newer). A device that refused a number is not carried forward with the refused value: the next
 * change starts from the document before it.
 */
import * as fs from 'node:fs';
import { MeshError } from '../mesh/errors.js';
import { checkJsonValue, parseJson, type Json } from '../mesh/json.js';
import { MAX_CONFIG_BYTES, MAX_CONFIRM_S } from '../mesh/profiles.js';
import { didYouMean } from '../mesh/suggest.js';
import { checkAppName, listOpt, strOpt, withOwner, type Command, type Values, type Ctx } from './command.js';
import { parseDuration } from './invite.js';
import { publishPersonal, save, sync } from '../client/owner.js';
import { docFor, type ConfigDoc } from '../client/owner-state.js';
import { findDevice } from '../client/owner-devices.js';
import { applyChange, changeConfig, planChange, publishPlanned, type Change, type Planned, type Published } from '../client/owner-config.js';
import { startRollout } from '../client/owner-rollout.js';
import { ROLLOUT_HELP, ROLLOUT_OPTIONS, report as reportRollout, rolloutOpts } from './rollout.js';
import { loadState } from './state.js';
import { EXIT_HELP, WAIT_HELP, WAIT_OPTIONS, exitFor, outcomeJson, outcomeLine, waitMsOpt } from './wait.js';

/** "key=value": the value as JSON when it parses, else the string; "key=" removes the key. */
export function parseAssignments(args: readonly string[]): { set: Record<string, Json>; remove: string[] } {
  const set: Record<string, Json> = {};
  const remove: string[] = [];
  for (const a of args) {
    const i = a.indexOf('=');
    if (i <= 0) throw new MeshError('usage', `"${a}" is not key=value (use key= to remove a key, or mesh config unset APP KEY)`);
    const k = a.slice(0, i);
    const raw = a.slice(i + 1);
    if (raw === '') {
      remove.push(k);
      continue;
    }
    let val: Json;
    try {
      val = checkJsonValue(JSON.parse(raw) as unknown, k);
    } catch {
      val = raw;
    }
    set[k] = val;
  }
  return { set, remove };
}

// ---------------------------------------------------------------- publish and wait

/** Say what was published and what each device did, and set the exit status. */
function report(ctx: Ctx, app: string, planned: readonly Planned[], r: Published, p: { waitMs: number; verb: string }): void {
  const { pubs, seqOf, personalSeq, outcomes } = r;
  const lines = pubs.map((x) => `Published ${app} configuration #${x.seq}${x.devices.length > 0 ? ` for ${x.devices.map((d) => d.name).join(', ')}` : ''}.`);
  if (planned.length === 0) lines.push('  no devices run it yet: devices you claim later receive it when you claim them');
  if (personalSeq !== undefined) lines.push(`  ${app} added to your personal profile (#${personalSeq})`);
  if (p.waitMs > 0) {
    for (const o of outcomes) lines.push(outcomeLine(o, { applied: 'applied', notReached: `it gets #${seqOf.get(o.device.id) ?? '?'} when it next reaches the portal; see mesh device list` }));
    if (outcomes.some((o) => o.result === 'refused')) lines.push(`  a device that refused it keeps what it had; your next change for it starts from what it had, not from the refused values`);
  }
  const code = exitFor(outcomes, p.waitMs > 0);
  ctx.io.out(lines.join('\n'), {
    app,
    action: p.verb,
    seq: Math.max(...pubs.map((x) => x.seq)),
    publications: pubs.map((x) => ({ seq: x.seq, devices: x.devices.map((d) => ({ id: d.id, name: d.name })) })),
    devices: planned.map((x) => ({ id: x.device.id, name: x.device.name, seq: seqOf.get(x.device.id) })),
    ...(personalSeq !== undefined ? { personalSeq } : {}),
    results: p.waitMs > 0 ? outcomes.map(outcomeJson) : [],
    exit: code,
  });
  if (code !== 0) process.exitCode = code;
}

/** --device NAME (repeatable), --devices A,B,C, or --all (every device that runs the application: the default). */
export function targetNames(v: Values): string[] {
  const names = [...listOpt(v, 'device'), ...listOpt(v, 'devices').flatMap((x) => x.split(',').map((n) => n.trim()).filter((n) => n.length > 0))];
  if (v.all === true && names.length > 0) throw new MeshError('usage', '--all means every device that runs the application: give it without --device or --devices');
  return names;
}

function summarize(ch: Change): string {
  if (ch.kind === 'replace') return `the whole document (${Object.keys(ch.doc).join(', ') || 'empty'})`;
  return [...Object.entries(ch.set).map(([k, x]) => `${k}=${JSON.stringify(x)}`), ...ch.remove.map((k) => `${k} removed`)].join(' ');
}

async function change(ctx: Ctx, app: string, v: Values, ch: Change, verb: string, base: (old: ConfigDoc) => ConfigDoc): Promise<void> {
  const confirm = strOpt(v, 'confirm-within');
  const confirmS = confirm === undefined ? undefined : parseDuration(confirm, '--confirm-within');
  if (confirmS !== undefined && (confirmS < 1 || confirmS > MAX_CONFIRM_S)) throw new MeshError('usage', `--confirm-within must be between 1 s and ${MAX_CONFIRM_S / 3600} h`);
  const waitMs = waitMsOpt(v);
  const devices = targetNames(v);
  const staged = rolloutOpts(v);
  if (staged !== undefined) {
    if (waitMs === 0) throw new MeshError('usage', '--wait 0 cannot go with --canary: a rollout waits for each wave before the next');
    const { synced, planned } = await planChange(ctx, app, ch, devices);
    const old = ctx.state.apps[app];
    const allBase = devices.length === 0 ? base(old === undefined || old.removed === true ? {} : (old.doc ?? {})) : undefined;
    const after = await startRollout(ctx, synced, { app, summary: summarize(ch), planned, opts: staged, waitMs, ...(allBase !== undefined ? { base: allBase } : {}), ...(confirmS !== undefined ? { confirmS } : {}) });
    reportRollout(ctx, after.rec, after.seq, 'start');
    return;
  }
  const r = await changeConfig(ctx, app, ch, { devices, waitMs, base, ...(confirmS !== undefined ? { confirmS } : {}) });
  report(ctx, app, r.planned, r, { waitMs, verb });
}

const CONFIRM_HELP = `  --confirm-within D  each device must reach the portal with the change in effect (and pass its
                health check) within D (e.g. 60s, 5m), or it goes back to what it had on its
                own and reports REVERTED: for changes that could cut a device off`;

const TARGET_HELP = `  --device NAME only this device (its name, or the start of its fingerprint); repeat it for
                several. Default: every device of yours that runs APP`;

const TARGETS_HELP = `${TARGET_HELP}
  --devices A,B,C  these devices, in this order (a rollout's canaries are the first ones)
  --all         every device of yours that runs APP (the default)`;

export const configSetCommand: Command = {
  name: 'config set',
  summary: "change some settings of an application, on all or some devices, checked before publishing",
  help: `usage: mesh config set APP KEY=VALUE ... [--device NAME]... [--devices A,B,C | --all]
                      [--wait S] [--confirm-within D] [--canary N [--abort-on K] [--wave M]] [--json]

Takes what you last sent each target device for APP, changes the given keys, checks the result
against the schema each device declared (the same check, and the same message, as on the
device), and only then publishes it, encrypted to those devices (and readable by you, also after
a recovery). A value a device would refuse, an application it does not run, or a setting its
schema does not have is refused here, with the closest name suggested: nothing is published.
Values are read as JSON when they are JSON (21, true, "x", [1,2]), otherwise as text;
"KEY=" removes the key (as mesh config unset does).

${TARGETS_HELP}
${WAIT_HELP}
${CONFIRM_HELP}
${ROLLOUT_HELP}
  --json        print the result as JSON

Then, per device: applied, REFUSED with the device's reason, or not reached yet.
${EXIT_HELP}

examples: mesh config set thermostat setpoint=21 mode=comfort
          mesh config set thermostat setpoint=18 --device bedroom
          mesh config set thermostat setpoint=23 --all --canary 2 --abort-on 1 --wave 4`,
  options: { device: { type: 'string', multiple: true }, devices: { type: 'string', multiple: true }, all: { type: 'boolean' }, 'confirm-within': { type: 'string' }, ...ROLLOUT_OPTIONS, ...WAIT_OPTIONS },
  async run(v, pos, env) {
    const app = checkAppName(pos[0]);
    if (pos.length < 2) throw new MeshError('usage', 'give at least one KEY=VALUE');
    const { set, remove } = parseAssignments(pos.slice(1));
    await withOwner(env, async (ctx) => {
      await change(ctx, app, v, { kind: 'assign', set, remove }, 'set', (old) => applyChange(old, { kind: 'assign', set, remove }));
    });
  },
};

export const configUnsetCommand: Command = {
  name: 'config unset',
  summary: 'remove some settings of an application, on all or some devices',
  help: `usage: mesh config unset APP KEY ... [--device NAME]... [--wait S] [--json]

Takes what you last sent each target device for APP, removes the given keys (the device then
uses another owner's value or its default), checks and publishes it as mesh config set does.

${TARGET_HELP}
${WAIT_HELP}
  --json        print the result as JSON

${EXIT_HELP}

example: mesh config unset thermostat schedule`,
  options: { device: { type: 'string', multiple: true }, ...WAIT_OPTIONS },
  async run(v, pos, env) {
    const app = checkAppName(pos[0]);
    if (pos.length < 2) throw new MeshError('usage', 'name at least one KEY to remove');
    const keys = pos.slice(1);
    for (const k of keys) if (k.includes('=')) throw new MeshError('usage', `"${k}": give only the key's name (mesh config set ${app} KEY=VALUE changes a value)`);
    await withOwner(env, async (ctx) => {
      await change(ctx, app, v, { kind: 'assign', set: {}, remove: keys }, 'unset', (old) => applyChange(old, { kind: 'assign', set: {}, remove: keys }));
    });
  },
};

export const configApplyCommand: Command = {
  name: 'config apply',
  summary: 'publish a whole configuration document for an application, checked before publishing',
  help: `usage: mesh config apply APP FILE.json [--device NAME]... [--devices A,B,C | --all]
                         [--wait S] [--confirm-within D] [--canary N [--abort-on K] [--wave M]] [--json]

Publishes FILE.json (a JSON object, at most ${MAX_CONFIG_BYTES / 1024} KiB) as the next configuration of APP
for the target devices, after checking it against the schema each declared.

${TARGETS_HELP}
${WAIT_HELP}
${CONFIRM_HELP}
${ROLLOUT_HELP}
  --json        print the result as JSON

${EXIT_HELP}`,
  options: { device: { type: 'string', multiple: true }, devices: { type: 'string', multiple: true }, all: { type: 'boolean' }, 'confirm-within': { type: 'string' }, ...ROLLOUT_OPTIONS, ...WAIT_OPTIONS },
  async run(v, pos, env) {
    const app = checkAppName(pos[0]);
    if (pos.length !== 2) throw new MeshError('usage', 'give the application and one JSON file');
    const file = pos[1] as string;
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new MeshError('not-found', `cannot read ${file}: ${(e as Error).message}`);
    }
    const doc = checkJsonValue(parseJson(text, MAX_CONFIG_BYTES, file), file);
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new MeshError('malformed', `${file} must hold a JSON object ({...})`);
    await withOwner(env, async (ctx) => {
      await change(ctx, app, v, { kind: 'replace', doc }, 'apply', () => ({ ...doc }));
    });
  },
};

export const configRemoveCommand: Command = {
  name: 'config remove',
  summary: 'stop configuring an application (all devices, or some with --device)',
  help: `usage: mesh config remove APP [--device NAME]... [--wait S] [--json]

Sends the target devices an empty ${'{}'} configuration for APP (your values are withdrawn; other
owners' values stay), and, without --device, drops APP from your personal profile and from
mesh device list. An application that was published by mistake (and that no device runs) is
simply dropped. Setting it again later starts from an empty document.

${TARGET_HELP.replace('that runs APP', 'you sent APP to')}
${WAIT_HELP}
  --json        print the result as JSON

${EXIT_HELP}`,
  options: { device: { type: 'string', multiple: true }, ...WAIT_OPTIONS },
  async run(v, pos, env) {
    const app = checkAppName(pos[0]);
    if (pos.length !== 1) throw new MeshError('usage', 'name one application');
    await withOwner(env, async (ctx) => {
      await sync(ctx);
      save(ctx);
      const r = ctx.state.apps[app];
      if (r === undefined || r.removed === true) {
        throw new MeshError('not-found', `you publish no configuration for "${app}"${didYouMean(app, Object.keys(ctx.state.apps).filter((a) => ctx.state.apps[a]?.removed !== true), (c) => `"${c}"`)}; see mesh status`);
      }
      const names = listOpt(v, 'device');
      const chosen = names.length > 0 ? names.map((n) => findDevice(ctx.state.devices, n)) : ctx.state.devices;
      // only devices it was sent to and that run it: the others have nothing of it to withdraw
      const targets = chosen.filter((d, i) => chosen.findIndex((x) => x.id === d.id) === i && docFor(r, d.id) !== undefined && (d.schemas === undefined || Object.hasOwn(d.schemas, app)));
      const planned: Planned[] = targets.map((d) => ({ device: d, from: docFor(r, d.id)?.doc ?? {}, doc: {} }));
      if (planned.length > 0) {
        const waitMs = waitMsOpt(v);
        report(ctx, app, planned, await publishPlanned(ctx, app, planned, { all: names.length === 0, base: () => ({}), waitMs }), { waitMs, verb: 'remove' });
      } else if (names.length > 0) {
        throw new MeshError('not-found', `nothing of ${app} was sent to ${chosen.map((d) => d.name).join(', ')}: there is nothing to withdraw`);
      }
      if (names.length === 0) {
        const cur = ctx.state.apps[app] ?? r;
        ctx.state.apps[app] = { ...cur, doc: {}, removed: true };
        save(ctx);
        const personalSeq = await publishPersonal(ctx);
        save(ctx);
        ctx.io.out(`Removed ${app} from your personal profile (#${personalSeq})${planned.length === 0 ? '; no device runs it, so nothing was sent' : ''}.`, { app, removed: true, personalSeq });
      }
    });
  },
};

export const configShowCommand: Command = {
  name: 'config show',
  summary: 'show the configuration last published for an application, per device where they differ',
  help: `usage: mesh config show APP [--device NAME] [--json]

Prints the configuration document last published for APP, as this computer knows it: the one
for all devices, and each device's own where it differs (mesh config set --device).

  --device NAME only this device's document`,
  options: { device: { type: 'string' } },
  async run(v, pos, env) {
    const app = checkAppName(pos[0]);
    const s = loadState(env.home);
    const r = s.apps[app];
    if (r === undefined || r.removed === true) throw new MeshError('not-found', `nothing is published for ${app}${didYouMean(app, Object.keys(s.apps), (c) => `"${c}"`)}; see mesh profile show`);
    const one = typeof v.device === 'string' ? findDevice(s.devices, v.device) : undefined;
    if (one !== undefined) {
      const t = docFor(r, one.id);
      if (t === undefined) throw new MeshError('not-found', `nothing of ${app} was sent to ${one.name}`);
      if (t.doc === null) throw new MeshError('not-a-recipient', `this computer cannot read ${app} configuration #${t.seq} of ${one.name}`);
      env.io.out(`${app} for ${one.name}: #${t.seq} (published ${t.publishedAt})\n${JSON.stringify(t.doc, null, 2)}`, { app, device: one.name, seq: t.seq, publishedAt: t.publishedAt, doc: t.doc });
      return;
    }
    if (r.doc === null) throw new MeshError('not-a-recipient', `this computer cannot read ${app} configuration #${r.seq}: it was published before this administration device joined`);
    const differ = s.devices.flatMap((d) => {
      const t = docFor(r, d.id);
      return t !== undefined && JSON.stringify(t.doc) !== JSON.stringify(r.doc) ? [{ device: d.name, seq: t.seq, doc: t.doc }] : [];
    });
    const lines = [`${app} for all your devices (latest number #${r.seq}, published ${r.publishedAt})`, JSON.stringify(r.doc, null, 2)];
    for (const x of differ) lines.push(`${x.device} has its own (#${x.seq}):`, JSON.stringify(x.doc, null, 2));
    env.io.out(lines.join('\n'), { app, seq: r.seq, publishedAt: r.publishedAt, doc: r.doc, devices: differ });
  },
};

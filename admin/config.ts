/**
 * mesh config set / apply / show: publish an application profile (the configuration encrypted
 * to every connected device and to the owner's own keys) and optionally wait for the devices'
 * signed reports that they applied it, or why not.
 */
import * as fs from 'node:fs';
import { MeshError } from '../mesh/errors.js';
import { checkJsonValue, parseJson, type Json } from '../mesh/json.js';
import { MAX_CONFIG_BYTES } from '../mesh/profiles.js';
import { checkAppName, intOpt, withOwner, type Command } from './command.js';
import { errorsFor } from './device.js';
import { deviceStatuses, ownerEntry, pollUntil, publishApp, publishPersonal, save, sync, type Ctx } from './portal.js';
import { loadState, type ConfigDoc, type DeviceRecord } from './state.js';

const SKEW_MS = 5000;

/** "key=value": the value as JSON when it parses, else the string; "key=" removes the key. */
export function parseAssignments(args: readonly string[]): { set: Record<string, Json>; remove: string[] } {
  const set: Record<string, Json> = {};
  const remove: string[] = [];
  for (const a of args) {
    const i = a.indexOf('=');
    if (i <= 0) throw new MeshError('usage', `"${a}" is not key=value (use key= to remove a key)`);
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

interface Outcome {
  readonly device: DeviceRecord;
  readonly result: 'applied' | 'error' | 'waiting';
  readonly seq?: number;
  readonly error?: { code: string; message: string; at: string };
}

async function waitApplied(ctx: Ctx, app: string, seq: number, publishedAt: string, devices: readonly DeviceRecord[], waitMs: number): Promise<Outcome[]> {
  const done = new Map<string, Outcome>();
  await pollUntil(waitMs, 500, async () => {
    const views = await deviceStatuses(ctx);
    for (const d of devices) {
      if (done.has(d.id)) continue;
      const st = views.get(d.id)?.status ?? null;
      const a = ownerEntry(st, ctx.state.master)?.apps.find((x) => x.app === app);
      if (a !== undefined && a.seq >= seq) {
        done.set(d.id, { device: d, result: 'applied', seq: a.seq });
        continue;
      }
      const err = errorsFor(st, ctx.state.master).find(
        (e) => e.app === app && (e.seq !== undefined ? e.seq === seq : Date.parse(e.at) >= Date.parse(publishedAt) - SKEW_MS),
      );
      if (err !== undefined) done.set(d.id, { device: d, result: 'error', error: { code: err.code, message: err.message, at: err.at } });
    }
    return done.size === devices.length ? true : undefined;
  });
  return devices.map((d) => done.get(d.id) ?? { device: d, result: 'waiting' });
}

async function publishAndReport(ctx: Ctx, app: string, doc: ConfigDoc, waitMs: number): Promise<void> {
  const isNew = ctx.state.apps[app] === undefined;
  const p = await publishApp(ctx, app, doc);
  save(ctx);
  let personalSeq: number | undefined;
  if (isNew) {
    personalSeq = await publishPersonal(ctx);
    save(ctx);
  }
  const lines = [`Published ${app} configuration #${p.seq}, encrypted to ${p.devices.length} device${p.devices.length === 1 ? '' : 's'}${p.devices.length > 0 ? ` (${p.devices.map((d) => d.name).join(', ')})` : ''}.`];
  if (p.devices.length === 0) lines.push('  no devices yet: devices you claim later receive it when you claim them');
  if (personalSeq !== undefined) lines.push(`  ${app} added to your personal profile (#${personalSeq})`);
  let outcomes: Outcome[] = [];
  if (waitMs > 0 && p.devices.length > 0) {
    ctx.io.progress(`waiting up to ${Math.round(waitMs / 1000)} s for the devices to apply it...\n`);
    outcomes = await waitApplied(ctx, app, p.seq, p.publishedAt, p.devices, waitMs);
    for (const o of outcomes) {
      if (o.result === 'applied') lines.push(`  ${o.device.name}: applied #${o.seq ?? p.seq}`);
      else if (o.result === 'error') lines.push(`  ${o.device.name}: REFUSED it: [${o.error?.code ?? '?'}] ${o.error?.message ?? ''}`);
      else lines.push(`  ${o.device.name}: not applied yet (it will when it next reaches the portal; see mesh device list)`);
    }
    if (outcomes.some((o) => o.result === 'error')) {
      lines.push(`  #${p.seq} stays your published ${app} configuration; fix it with mesh config set ${app} KEY=VALUE (KEY= removes a setting), and the corrected version is sent again`);
    }
  }
  ctx.io.out(lines.join('\n'), {
    app,
    seq: p.seq,
    devices: p.devices.map((d) => ({ id: d.id, name: d.name })),
    ...(personalSeq !== undefined ? { personalSeq } : {}),
    results: outcomes.map((o) => ({ device: o.device.name, id: o.device.id, result: o.result, ...(o.seq !== undefined ? { seq: o.seq } : {}), ...(o.error !== undefined ? { error: o.error } : {}) })),
  });
  if (outcomes.some((o) => o.result === 'error')) process.exitCode = 1;
}

const WAIT_HELP = '  --wait-ms N   wait up to N ms for every device to report it applied (or refused) it (default 0: don\'t wait)';

export const configSetCommand: Command = {
  name: 'config set',
  summary: "change some settings of an application's configuration",
  help: `usage: mesh config set APP key=value ... [--wait-ms N]

Takes the configuration last published for APP, changes the given keys, and publishes it
as the next version, encrypted to each of your devices (and readable by you, also after a
recovery). Values are read as JSON when they are JSON (21, true, "x", [1,2]), otherwise as
text; "key=" removes the key.

${WAIT_HELP}
  --json        print the result as JSON

example: mesh config set thermostat target=21 mode=heat`,
  options: { 'wait-ms': { type: 'string' } },
  async run(v, pos, env) {
    const app = checkAppName(pos[0]);
    if (pos.length < 2) throw new MeshError('usage', 'give at least one key=value');
    const { set, remove } = parseAssignments(pos.slice(1));
    const waitMs = intOpt(v, 'wait-ms', 0, 0, 3_600_000);
    await withOwner(env, async (ctx) => {
      await sync(ctx);
      save(ctx);
      const cur = ctx.state.apps[app];
      if (cur !== undefined && cur.doc === null && cur.seq > 0) {
        throw new MeshError('state', `this computer cannot read the current ${app} configuration (#${cur.seq}; it was published before this administration device joined). Write the whole document with: mesh config apply ${app} FILE.json`);
      }
      const unverified = ctx.ahead.get(`app:${app}`);
      if (cur?.doc == null && unverified !== undefined) {
        throw new MeshError('state', `the current ${app} configuration at the portal (#${unverified}) is signed by an administration key revoked since, and this computer holds no earlier one to start from. Write the whole document with: mesh config apply ${app} FILE.json`);
      }
      const doc: ConfigDoc = { ...cur?.doc };
      for (const k of remove) delete doc[k];
      Object.assign(doc, set);
      await publishAndReport(ctx, app, doc, waitMs);
    });
  },
};

export const configApplyCommand: Command = {
  name: 'config apply',
  summary: "publish a whole configuration document for an application",
  help: `usage: mesh config apply APP FILE.json [--wait-ms N]

Publishes FILE.json (a JSON object, at most ${MAX_CONFIG_BYTES / 1024} KiB) as the next configuration of APP,
encrypted to each of your devices (and readable by you, also after a recovery).

${WAIT_HELP}
  --json        print the result as JSON`,
  options: { 'wait-ms': { type: 'string' } },
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
    const waitMs = intOpt(v, 'wait-ms', 0, 0, 3_600_000);
    await withOwner(env, async (ctx) => {
      await sync(ctx);
      save(ctx);
      await publishAndReport(ctx, app, doc, waitMs);
    });
  },
};

export const configShowCommand: Command = {
  name: 'config show',
  summary: 'show the configuration last published for an application',
  help: `usage: mesh config show APP [--json]

Prints the configuration document last published for APP, as this computer knows it.`,
  options: {},
  async run(_v, pos, env) {
    const app = checkAppName(pos[0]);
    const s = loadState(env.home);
    const r = s.apps[app];
    if (r === undefined) throw new MeshError('not-found', `nothing has been published for ${app}; see mesh profile show`);
    if (r.doc === null) throw new MeshError('not-a-recipient', `this computer cannot read ${app} configuration #${r.seq}: it was published before this administration device joined`);
    env.io.out(`${app} #${r.seq} (published ${r.publishedAt})\n${JSON.stringify(r.doc, null, 2)}`, { app, seq: r.seq, publishedAt: r.publishedAt, doc: r.doc });
  },
};

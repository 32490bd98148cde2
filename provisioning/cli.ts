#!/usr/bin/env node
/**
 * mesh-provision: factory provisioning of headless devices (see docs/provisioning.md).
 *
 *   mesh-provision batch --count N --model NAME --out DIR --portal URL [...]
 *   mesh-provision label DIR/<serial> [...]
 *   mesh-provision keygen FILE
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MeshError } from '../mesh/errors.js';
import { parseJson } from '../mesh/json.js';
import { intFlag, makeIo, parse, runMain, unknownCommand, usage } from '../runtime/cli.js';
import { DEFAULT_MANUFACTURER, MANIFEST_FILE, MANUFACTURER_KEY_FILE, PARTIAL_FILE, provisionBatch, type BatchResult } from './batch.js';
import { progressReporter } from './progress.js';
import { createManufacturerKey } from './manufacturer-key.js';
import { ioError } from './device-job.js';

const NAME = 'mesh-provision';

const HELP = `${NAME}: factory provisioning for Mathematical Mesh devices

Usage:
  ${NAME} batch --count N --model NAME --out DIR --portal URL [options]
      make N device identities, one directory per device ready for a board image,
      each with a systemd unit and a printable claim label, and DIR/${MANIFEST_FILE}
  ${NAME} label DIR/<serial> [DIR/<serial> ...]
      render a device's label again (label.svg, label.png) from its files
  ${NAME} keygen FILE
      make a manufacturer key (0600) to pass to every batch with --manufacturer-key

Run '${NAME} <command> --help' (or '${NAME} help <command>') for a command's options.
Every command takes --json (machine-readable output on stdout) and --help; --version prints the version.
Failures print 'error [code]: message' and exit non-zero (64 for usage errors).
`;

const BATCH_HELP = `Usage: ${NAME} batch --count N --model NAME --out DIR --portal URL [options]

Required:
  --count N                  devices to make (1 to 1000000)
  --model NAME               model name (lowercase letters, digits, . _ -)
  --out DIR                  output directory; must be new or empty (see --resume)
  --portal URL               the portal's base URL, written to each agent.json; its
                             host[:port] is printed in every label's claim URI

Options:
  --manufacturer NAME        manufacturer name on labels and endorsements (default "${DEFAULT_MANUFACTURER}")
  --manufacturer-key FILE    the manufacturer's endorsement key, JSON {"sign": "<base64url
                             32-byte Ed25519 seed>"}, mode 0600. Without it a NEW key is made
                             at DIR/${MANUFACTURER_KEY_FILE}: keep it, and pass it to later batches
  --schema APP=FILE          a JSON Schema the device accepts for application APP
                             (repeatable); copied to each device's schemas/APP.json and
                             declared, by fingerprint, in its signed device profile.
                             Without --schema, the model's applications are used when the
                             model is one of examples/models/ (e.g. --model thermostat);
                             a model with none makes devices that accept no settings (said so)
  --serial-prefix P          serial = P + zero-padded number (default "<model>-")
  --serial-start N           first serial number (default 1)
  --poll-interval-ms N       the agent's poll interval (default 30000)
  --resume                   finish a batch that was interrupted in DIR (same options)
  --json                     print the summary as JSON
  -h, --help                 this help

Writes, per device, DIR/<serial>/: device.json, keys.json (0600), claim.json (0600),
agent.json, schemas/, mesh-agent.service, mesh-agent.sysusers.conf, label.svg (0600),
label.png (0600);
and DIR/${MANIFEST_FILE} (public data only) when the batch is complete. While it runs,
DIR/${PARTIAL_FILE} records finished devices; if it is still there, the batch was
interrupted: rerun with --resume, or delete DIR.
`;

const LABEL_HELP = `Usage: ${NAME} label DIR/<serial> [DIR/<serial> ...]

Render label.svg (QR code, model, serial, manufacturer, device fingerprint, claim code) and
label.png (the QR code alone) again from a provisioned device directory, after checking
that its claim.json matches its device.json. A directory made before labels carried
140-bit fingerprints (mcu://...?fp= with 100 bits, which no longer claims) is brought to
the current https:// URI and fingerprint first (claim.json, device.json): print it again.

Options:
  --json      print the files written as JSON
  -h, --help  this help
`;

const KEYGEN_HELP = `Usage: ${NAME} keygen FILE

Make a new manufacturer endorsement key, JSON {"sign": "<base64url 32-byte Ed25519 seed>"},
at FILE with mode 0600 (an existing FILE is never replaced), and print its fingerprint: the
UDF that owners and portals pin. Keep the file offline; see docs/provisioning.md.

Options:
  --json      print the result as JSON
  -h, --help  this help
`;

function readSchemaArgs(specs: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    if (eq <= 0 || eq === spec.length - 1) usage(`--schema ${JSON.stringify(spec)}: write it as APP=FILE`);
    const app = spec.slice(0, eq);
    const file = spec.slice(eq + 1);
    if (app in out) usage(`--schema ${app} is given twice`);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new MeshError('state', `cannot read the schema file ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`, { file });
    }
    out[app] = parseJson(text, 65_536, `schema file ${file}`);
  }
  return out;
}

/** examples/models/ in this package: a model's applications and their schemas. */
export const MODELS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'models');

/** The schemas of a known model (examples/models/MODEL.json), or undefined when the model is not one of them. */
export function modelSchemas(model: string, dir = MODELS_DIR): { file: string; schemas: Record<string, unknown> } | undefined {
  const file = path.join(dir, `${model}.json`);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const m = parseJson(text, 65_536, `model file ${file}`) as { apps?: Record<string, string> };
  const schemas: Record<string, unknown> = {};
  for (const [app, rel] of Object.entries(m.apps ?? {})) {
    const f = path.resolve(dir, rel);
    schemas[app] = parseJson(fs.readFileSync(f, 'utf8'), 65_536, `schema file ${f}`);
  }
  return { file, schemas };
}

function summary(r: BatchResult & { schemaNote: string }): string {
  const rel = (f: string): string => {
    const x = path.relative(process.cwd(), f);
    return x === '' ? '.' : x.startsWith('..') ? f : x;
  };
  const lines = [
    `provisioned ${r.count} devices (${r.firstSerial} .. ${r.lastSerial}) in ${rel(r.dir)}` + (r.kept > 0 ? `: ${r.made} made now, ${r.kept} kept from the interrupted run` : ''),
    `  ${r.seconds.toFixed(2)} s, ${r.devicesPerSecond.toFixed(1)} devices/s`,
    `  manifest (public): ${rel(r.manifest)}`,
    `  manufacturer key: ${r.manufacturerKeyId}`,
    `  ${r.schemaNote}`,
  ];
  if (r.manufacturerKeyGenerated) {
    lines.push(
      `  NOTE: no --manufacturer-key was given, so a NEW manufacturer key was made at ${rel(r.manufacturerKeyFile)} (0600).`,
      `        Move it to safe offline storage and pass it with --manufacturer-key to every later batch,`,
      `        so that all your devices carry endorsements by the same key.`,
    );
  }
  if (r.manufacturerKeyLooseMode) lines.push(`  WARNING: ${r.manufacturerKeyFile} is readable by other users: chmod 600 it`);
  return lines.join('\n');
}

async function batch(args: string[]): Promise<void> {
  const { values: v, positionals } = parse(args, {
    count: { type: 'string' },
    model: { type: 'string' },
    out: { type: 'string' },
    portal: { type: 'string' },
    manufacturer: { type: 'string' },
    'manufacturer-key': { type: 'string' },
    schema: { type: 'string', multiple: true },
    'serial-prefix': { type: 'string' },
    'serial-start': { type: 'string' },
    'poll-interval-ms': { type: 'string' },
    resume: { type: 'boolean' },
  });
  const io = makeIo(v.json === true);
  if (v.help === true) {
    process.stdout.write(BATCH_HELP);
    return;
  }
  if (positionals.length > 0) usage(`batch takes no arguments besides options; unexpected ${JSON.stringify(positionals[0])}`);
  const missing = (['count', 'model', 'out', 'portal'] as const).filter((k) => v[k] === undefined);
  if (missing.length > 0) usage(`batch needs ${missing.map((k) => `--${k}`).join(', ')} (see ${NAME} batch --help)`);
  const count = intFlag(v.count, '--count', { min: 1, max: 1_000_000 }) as number;
  const given = readSchemaArgs(v.schema ?? []);
  const fromModel = Object.keys(given).length === 0 ? modelSchemas(v.model as string) : undefined;
  const schemas = fromModel?.schemas ?? given;
  const apps = Object.keys(schemas).sort();
  const schemaNote =
    apps.length === 0
      ? `NOTE: model ${v.model as string} has no schema (it is not one of examples/models/ and no --schema was given): these devices run no application and refuse every setting. Give --schema APP=FILE`
      : `applications: ${apps.join(', ')}${fromModel !== undefined ? ` (the schemas of model ${v.model as string}, ${path.relative(process.cwd(), fromModel.file) || fromModel.file})` : ''}; declared in each device's signed profile`;

  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const reporter = progressReporter({ total: count, tty: !io.json && process.stderr.isTTY === true, write: (s) => process.stderr.write(s) });
  let r: BatchResult;
  try {
    r = await provisionBatch(
      {
        count,
        model: v.model as string,
        out: v.out as string,
        portal: v.portal as string,
        manufacturer: v.manufacturer,
        manufacturerKeyFile: v['manufacturer-key'],
        schemas,
        serialPrefix: v['serial-prefix'],
        serialStart: intFlag(v['serial-start'], '--serial-start'),
        pollIntervalMs: intFlag(v['poll-interval-ms'], '--poll-interval-ms'),
        resume: v.resume === true,
        signal: ac.signal,
      },
      reporter.onProgress,
    );
  } finally {
    reporter.finish();
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
  }
  io.out(summary({ ...r, schemaNote }), { ...r, apps, schemasFrom: fromModel !== undefined ? 'model' : Object.keys(given).length > 0 ? 'schema' : null });
}

async function label(args: string[]): Promise<void> {
  const { values: v, positionals } = parse(args, {});
  const io = makeIo(v.json === true);
  if (v.help === true) {
    process.stdout.write(LABEL_HELP);
    return;
  }
  if (positionals.length === 0) usage(`label needs a device directory, e.g. ${NAME} label out/thermo-000001`);
  const { relabel } = await import('./label.js');
  const done = [];
  for (const dir of positionals) done.push(await relabel(dir));
  io.out(done.map((d) => `wrote ${d.files.join(' and ')}${d.upgraded === true ? ' (the label was in the older mcu:// form with a 100-bit fingerprint, which no longer claims: claim.json and device.json now hold the https:// URI and a 140-bit fingerprint; print this label again)' : ''}`).join('\n'), { labels: done });
}

async function keygen(args: string[]): Promise<void> {
  const { values: v, positionals } = parse(args, {});
  const io = makeIo(v.json === true);
  if (v.help === true) {
    process.stdout.write(KEYGEN_HELP);
    return;
  }
  const [file, extra] = positionals;
  if (file === undefined || extra !== undefined) usage(`keygen takes one file name, e.g. ${NAME} keygen acme-manufacturer-key.json`);
  let k;
  try {
    k = createManufacturerKey(file);
  } catch (e) {
    throw ioError(e, 'write', file);
  }
  io.out(`made manufacturer key ${k.id} in ${file} (0600)\nkeep it offline; pass it to every batch with --manufacturer-key`, { manufacturerKeyId: k.id, file });
}

async function main(argv: string[]): Promise<void> {
  const i = argv.findIndex((a) => !a.startsWith('-'));
  const cmd = i < 0 ? undefined : argv[i];
  const rest = i < 0 ? argv : [...argv.slice(0, i), ...argv.slice(i + 1)];
  switch (cmd) {
    case undefined:
      if (argv.includes('--help') || argv.includes('-h')) {
        process.stdout.write(HELP);
        return;
      }
      return usage(`give a command: batch, label or keygen (see ${NAME} --help)`);
    case 'help': {
      const topic = rest.find((a) => !a.startsWith('-'));
      if (topic !== undefined && !['batch', 'label', 'keygen'].includes(topic)) unknownCommand(NAME, topic, ['batch', 'label', 'keygen']);
      process.stdout.write(topic === 'batch' ? BATCH_HELP : topic === 'label' ? LABEL_HELP : topic === 'keygen' ? KEYGEN_HELP : HELP);
      return;
    }
    case 'batch':
      return batch(rest);
    case 'label':
      return label(rest);
    case 'keygen':
      return keygen(rest);
    default:
      return unknownCommand(NAME, cmd, ['batch', 'label', 'keygen', 'help']);
  }
}

runMain(NAME, main);

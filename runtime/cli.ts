/**
 * What every command line of the project (mesh, mesh-portal, mesh-agent, mesh-provision) shares:
 *
 * - argument parsing (node:util parseArgs, strict): an unknown option is a `usage` error that
 *   names the closest known option ("did you mean --data?");
 * - one parser for whole-number flags (`intFlag`), with the range in its message;
 * - `--help` on every command, `--json` for machine-readable output, `--version` everywhere;
 * - an unknown command gets the closest known one suggested;
 * - environment variables for options (`envOptions`: one variable per flag, flags win);
 * - failures as `NAME: error [code]: message` (or `{"error":...}` with --json) and a non-zero exit
 *   (64 for usage errors, as sysexits.h's EX_USAGE).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { MeshError, type MeshErrorCode } from '../mesh/errors.js';
import { VERSION, versionLine } from './version.js';
import { didYouMean } from '../mesh/suggest.js';

export { closest, didYouMean, editDistance } from '../mesh/suggest.js';

export interface CommandIo {
  readonly json: boolean;
  out(human: string, json?: unknown): void;
  progress(line: string): void;
}

export function makeIo(json: boolean): CommandIo {
  return {
    json,
    out(human, data) {
      if (json) process.stdout.write(JSON.stringify(data ?? { message: human }) + '\n');
      else process.stdout.write(human.endsWith('\n') ? human : human + '\n');
    },
    progress(line) {
      if (!json) process.stderr.write(line);
    },
  };
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** Options every command takes. */
const COMMON = { help: { type: 'boolean', short: 'h' }, json: { type: 'boolean' } } as const;

/** What `parse` returns: parseArgs's own typed result for these options. */
export type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: O & typeof COMMON; allowPositionals: boolean; strict: true }>>;

/** A `usage` error for an unknown command, naming the closest known one and where to look. */
export function unknownCommand(program: string, word: string, commands: readonly string[]): never {
  throw new MeshError('usage', `unknown command "${word}"${didYouMean(word, commands, (c) => `"${c}"`)}; see ${program} --help`);
}

/** Strict parse: an unknown option or a missing value is a `usage` error, not a crash. */
export function parse<O extends Options>(args: string[], options: O, allowPositionals = true): Parsed<O> {
  const all = { ...options, ...COMMON };
  try {
    return parseArgs({ args, options: all, allowPositionals, strict: true }) as Parsed<O>;
  } catch (e) {
    const err = e as Error & { code?: string };
    const m = /Unknown option '(-{1,2}[^'=]+)/.exec(err.message);
    if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && m?.[1] !== undefined) {
      const names = [...Object.keys(all), 'version'];
      const hint = didYouMean(m[1].replace(/^-+/, ''), names, (c) => `--${c}`);
      throw new MeshError('usage', `unknown option ${m[1]}${hint}`);
    }
    throw new MeshError('usage', err.message.replace(/\. To specify a positional argument.*$/s, ''));
  }
}

export function usage(message: string): never {
  throw new MeshError('usage', message);
}

export interface IntRange {
  readonly min?: number;
  readonly max?: number;
}

/**
 * The one whole-number parser of every flag and environment variable: decimal digits only
 * (no sign, no exponent, no hex), within [min, max] (default 0 .. 2^53-1). `undefined` stays
 * undefined; anything else that is not a whole number in range is a `usage` error naming `flag`.
 */
export function intFlag(value: string | undefined, flag: string, range: IntRange = {}): number | undefined {
  if (value === undefined) return undefined;
  const min = range.min ?? 0;
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  const v = value.trim();
  const n = /^\d{1,16}$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    const span = max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`;
    throw new MeshError('usage', `${flag} must be a whole number ${span}, not ${JSON.stringify(value)}`);
  }
  return n;
}

/** intFlag with a default. */
export function intOr(value: string | undefined, flag: string, dflt: number, range: IntRange = {}): number {
  return intFlag(value, flag, range) ?? dflt;
}

/** The environment variable of a flag: `--http-port` with prefix MESH_PORTAL -> MESH_PORTAL_HTTP_PORT. */
export function envName(prefix: string, flag: string): string {
  return `${prefix}_${flag.replace(/^-+/, '').replace(/-/g, '_').toUpperCase()}`;
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['', '0', 'false', 'no', 'off']);

/**
 * Fill the options not given on the command line from the environment, one variable per flag
 * (`envName(prefix, flag)`); a boolean variable takes 1/true/yes/on or 0/false/no/off. Returns
 * the merged values and, per option, where its value came from (for messages).
 */
export function envOptions<V extends Record<string, unknown>>(
  values: V,
  options: Options,
  prefix: string,
  env: NodeJS.ProcessEnv = process.env,
): { values: V; from: Record<string, 'flag' | 'env'> } {
  const out: Record<string, unknown> = { ...values };
  const from: Record<string, 'flag' | 'env'> = {};
  for (const [name, spec] of Object.entries(options)) {
    if (out[name] !== undefined) {
      from[name] = 'flag';
      continue;
    }
    const key = envName(prefix, name);
    const raw = env[key];
    if (raw === undefined) continue;
    if (spec.type === 'boolean') {
      const r = raw.trim().toLowerCase();
      if (TRUE.has(r)) out[name] = true;
      else if (!FALSE.has(r)) throw new MeshError('usage', `${key} must be 1 or 0 (true or false), not ${JSON.stringify(raw)}`);
    } else if (raw !== '') out[name] = spec.multiple === true ? [raw] : raw;
    if (out[name] !== undefined) from[name] = 'env';
  }
  return { values: out as V, from };
}

const EXIT: Partial<Record<MeshErrorCode, number>> = { usage: 64 };

/**
 * Run a CLI's main: `--version` prints the version line and exits 0; failures print
 * `NAME: error [code]: message` (or JSON with --json) and exit non-zero.
 */
export function runMain(name: string, main: (argv: string[]) => Promise<void>): void {
  const argv = process.argv.slice(2);
  const json = argv.includes('--json');
  const end = argv.indexOf('--');
  if ((end < 0 ? argv : argv.slice(0, end)).includes('--version')) {
    const line = versionLine(name);
    process.stdout.write(json ? JSON.stringify({ program: name, version: VERSION, node: process.version }) + '\n' : line + '\n');
    return;
  }
  main(argv).then(
    () => {
      process.exitCode = process.exitCode ?? 0;
    },
    (e: unknown) => {
      const err = e instanceof MeshError ? e : new MeshError('internal', e instanceof Error ? e.message : String(e));
      if (json) process.stdout.write(JSON.stringify({ error: err.toJSON() }) + '\n');
      else process.stderr.write(`${name}: error [${err.code}]: ${err.message}\n`);
      if (!(e instanceof MeshError) && process.env.MESH_DEBUG) process.stderr.write(String((e as Error).stack) + '\n');
      process.exitCode = EXIT[err.code] ?? 1;
    },
  );
}

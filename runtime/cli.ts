/**
 * What every command line of the project shares: argument parsing (node:util parseArgs, strict),
 * --help, --json, and failures as a clear message with a stable code and a non-zero exit.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { MeshError, type MeshErrorCode } from '../mesh/errors.js';

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

/** Strict parse: an unknown option or a missing value is a `usage` error, not a crash. */
export function parse<O extends Options>(args: string[], options: O, allowPositionals = true) {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' }, json: { type: 'boolean' } }, allowPositionals, strict: true });
  } catch (e) {
    throw new MeshError('usage', (e as Error).message);
  }
}

export function usage(message: string): never {
  throw new MeshError('usage', message);
}

const EXIT: Partial<Record<MeshErrorCode, number>> = { usage: 64 };

/** Run a CLI's main; print failures as `error [code]: message` (or JSON with --json) and exit non-zero. */
export function runMain(name: string, main: (argv: string[]) => Promise<void>): void {
  const argv = process.argv.slice(2);
  const json = argv.includes('--json');
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

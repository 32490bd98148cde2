/**
 * One log format for every process of the project (portal, agent, and whatever comes next):
 *
 *   {"time":"2026-11-26T01:02:03.456Z","level":"info","event":"portal started","http":"http://..."}
 *
 * one JSON object per line on stderr: `time` (ISO 8601, UTC), `level`, `event` (a short, stable
 * phrase to filter on), then the event's fields (fingerprints, codes, counts; never key bytes).
 *
 * - Under systemd (stderr is the journal: $JOURNAL_STREAM names it) each line starts with the
 *   syslog priority, `<3>` .. `<7>`, which journald strips and records, so `journalctl -p warning`
 *   filters by level (sd-daemon(3), "SyslogLevelPrefix=").
 * - On a terminal the same events are printed for people: `01:02:03.456 INFO  portal started http=...`.
 * - MESH_LOG_FORMAT=json|human overrides the choice.
 */
import * as fs from 'node:fs';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** syslog / journald priority of each level (RFC 5424 §6.2.1: 3 error, 4 warning, 6 informational, 7 debug). */
export const JOURNAL_PRIORITY: Readonly<Record<LogLevel, number>> = { debug: 7, info: 6, warn: 4, error: 3 };

export type LogFields = Readonly<Record<string, unknown>>;
export type LogFormat = 'json' | 'human';

export interface Logger {
  enabled(level: LogLevel): boolean;
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

export interface LoggerOptions {
  /** the least severe level written (default info) */
  readonly level?: LogLevel;
  /** default: from MESH_LOG_FORMAT, else human on a terminal, else json */
  readonly format?: LogFormat;
  /** prefix each JSON line with its journald priority `<N>` (default: when stderr is the journal) */
  readonly journal?: boolean;
  /** fields added to every line (e.g. the device's fingerprint) */
  readonly fields?: LogFields;
  readonly write?: (line: string) => void;
  readonly now?: () => Date;
}

export function isLogLevel(s: string): s is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(s);
}

/** stderr is connected to the journal: $JOURNAL_STREAM is "<device>:<inode>" of that stream (systemd.exec(5)). */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  const js = env.JOURNAL_STREAM;
  if (js === undefined || js === '') return false;
  try {
    const st = fs.fstatSync(2);
    return js === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}

/** The format for stderr: MESH_LOG_FORMAT if set, else human on a terminal, else JSON. */
export function defaultLogFormat(env: NodeJS.ProcessEnv = process.env, tty: boolean = process.stderr.isTTY === true): LogFormat {
  const f = env.MESH_LOG_FORMAT;
  if (f === 'json' || f === 'human') return f;
  return tty ? 'human' : 'json';
}

const RESERVED = new Set(['time', 'level', 'event']);

function jsonLine(time: string, level: LogLevel, event: string, fields: LogFields): string {
  // the three fixed keys come first and cannot be overwritten by a field of the same name
  const rest: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) rest[RESERVED.has(k) ? `field_${k}` : k] = v;
  try {
    return JSON.stringify({ time, level, event, ...rest });
  } catch {
    return JSON.stringify({ time, level, event, note: 'fields could not be serialized' });
  }
}

function humanValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

function humanLine(time: Date, level: LogLevel, event: string, fields: LogFields): string {
  const hms = time.toISOString().slice(11, 23);
  const kv = Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${humanValue(v)}`)
    .join(' ');
  return `${hms} ${level.toUpperCase().padEnd(5)} ${event}${kv === '' ? '' : ' ' + kv}`;
}

/** A logger writing one line per event to stderr (or `write`). */
export function createLogger(o: LoggerOptions = {}): Logger {
  const min = o.level ?? 'info';
  const format = o.format ?? defaultLogFormat();
  const journal = format === 'json' && (o.journal ?? stderrIsJournal());
  // a closed stderr (`... | head -1` gone) is not written to again: writing to it would raise EPIPE
  const write = o.write ?? ((l: string): void => {
    if (process.stderr.writable) process.stderr.write(l);
  });
  const now = o.now ?? (() => new Date());
  const base = o.fields ?? {};
  const at =
    (level: LogLevel) =>
    (event: string, fields?: LogFields): void => {
      if (ORDER[level] < ORDER[min]) return;
      const all = fields === undefined ? base : { ...base, ...fields };
      const t = now();
      const line = format === 'human' ? humanLine(t, level, event, all) : (journal ? `<${JOURNAL_PRIORITY[level]}>` : '') + jsonLine(t.toISOString(), level, event, all);
      write(line + '\n');
    };
  return { enabled: (level) => ORDER[level] >= ORDER[min], debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** JSON lines at `min` and above (the portal's historical constructor). */
export function jsonLogger(min: LogLevel = 'info', write?: (line: string) => void): Logger {
  return createLogger({ level: min, format: 'json', ...(write !== undefined ? { write, journal: false } : {}) });
}

export const silentLogger: Logger = { enabled: () => false, debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** An error as log fields: code and message; the stack only for unexpected errors. */
export function errorFields(e: unknown): LogFields {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return typeof code === 'string' && e.name === 'MeshError' ? { code, err: e.message } : { err: e.message, stack: e.stack };
  }
  return { err: String(e) };
}

/**
 * The level of an event reported as a bare name (the agent's `log(event, data)` callback): names in
 * `table` first, then by their ending (`...-failed`, `...-error`: warn), else info.
 */
export function levelOfEvent(event: string, table: Readonly<Record<string, LogLevel>> = {}): LogLevel {
  const l = table[event];
  if (l !== undefined) return l;
  if (event.endsWith('-failed') || event.endsWith('-error')) return 'warn';
  return 'info';
}

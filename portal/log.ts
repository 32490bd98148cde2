/**
 * Structured logs: one JSON object per line on stderr. Fingerprints (UDFs) in fields, never key bytes.
 */
import { isoNow, systemClock, type Clock } from '../runtime/clock.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

export type LogFields = Readonly<Record<string, unknown>>;

export interface Logger {
  enabled(level: LogLevel): boolean;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

export function jsonLogger(min: LogLevel = 'info', write: (line: string) => void = writeStderr, clock: Clock = systemClock): Logger {
  const at = (level: LogLevel) => (msg: string, fields?: LogFields): void => {
    if (ORDER[level] < ORDER[min]) return;
    let line: string;
    try {
      line = JSON.stringify({ t: isoNow(clock), level, msg, ...fields });
    } catch {
      line = JSON.stringify({ t: isoNow(clock), level, msg, note: 'fields could not be serialized' });
    }
    write(line + '\n');
  };
  return {
    enabled: (level) => ORDER[level] >= ORDER[min],
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  };
}

/** stderr, while it can be written (a closed pipe is not written to again). */
function writeStderr(line: string): void {
  if (process.stderr.writable) process.stderr.write(line);
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

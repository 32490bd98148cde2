/**
 * The portal's logs: the one format of every process (runtime/log.ts). Fingerprints (UDFs) in
 * fields, never key bytes.
 */
export { LOG_LEVELS, createLogger, errorFields, jsonLogger, silentLogger, type LogFields, type LogLevel, type Logger } from '../runtime/log.js';

/**
 * The operator-facing parts of runtime/, as units: the one log format, the CLI conventions (integer
 * flags, did-you-mean, environment variables), the default paths, the systemd notifier (driven by a
 * FakeClock) and the process metrics' names.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { codeOf } from './helpers/code-of.js';
import { FakeClock } from '../runtime/clock.js';
import { closest, envName, envOptions, intFlag, parse, unknownCommand } from '../runtime/cli.js';
import { createLogger, defaultLogFormat, JOURNAL_PRIORITY, levelOfEvent } from '../runtime/log.js';
import { ownerHome, portalDataDir, xdgDataHome } from '../runtime/paths.js';
import { ProcessMetrics } from '../runtime/process-metrics.js';
import { sdNotifier } from '../runtime/sd-notify.js';
import { keysElsewhere } from '../portal/data-dir.js';

const tmp = (name: string): string => fs.mkdtempSync(path.join(os.tmpdir(), `mesh-ops-${name}-`));

// ---------------------------------------------------------------- logs

test('log lines: time, level, event first, then the fields; a field cannot overwrite them', (t) => {
  const lines: string[] = [];
  const log = createLogger({ level: 'info', format: 'json', journal: false, write: (l) => lines.push(l), now: () => new Date(Date.UTC(2026, 10, 26, 1, 2, 3, 456)), fields: { device: 'MB2G' } });
  log.info('portal started', { http: 'http://x', level: 'forged', event: 'forged' });
  log.debug('not written', {});
  log.error('boom', { code: 'internal' });
  t.is(lines.length, 2);
  t.true(lines.every((l) => l.endsWith('\n')));
  const a = JSON.parse(lines[0] as string) as Record<string, unknown>;
  t.deepEqual(Object.keys(a).slice(0, 3), ['time', 'level', 'event']);
  t.is(a.time, '2026-11-26T01:02:03.456Z');
  t.is(a.level, 'info');
  t.is(a.event, 'portal started');
  t.is(a.device, 'MB2G');
  t.is(a.field_level, 'forged');
  t.is(a.field_event, 'forged');
  t.is((JSON.parse(lines[1] as string) as Record<string, unknown>).level, 'error');
});

test('under the journal each line starts with its syslog priority; journalctl -p warning then keeps warn and error', (t) => {
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', format: 'json', journal: true, write: (l) => lines.push(l) });
  log.debug('d');
  log.info('i');
  log.warn('w');
  log.error('e');
  t.deepEqual(
    lines.map((l) => l.slice(0, 3)),
    ['<7>', '<6>', '<4>', '<3>'],
  );
  t.deepEqual(JOURNAL_PRIORITY, { debug: 7, info: 6, warn: 4, error: 3 });
  t.is((JSON.parse((lines[2] as string).slice(3)) as { event: string }).event, 'w');
  const warningOrWorse = lines.filter((l) => Number(l.slice(1, 2)) <= 4);
  t.is(warningOrWorse.length, 2);
});

test('for people on a terminal: one readable line; MESH_LOG_FORMAT overrides the choice', (t) => {
  const lines: string[] = [];
  const log = createLogger({ format: 'human', write: (l) => lines.push(l), now: () => new Date(Date.UTC(2026, 0, 1, 9, 8, 7, 6)) });
  log.warn('poll-failed', { code: 'unavailable', message: 'connect ECONNREFUSED 127.0.0.1:1', retryMs: 500 });
  t.is(lines[0], '09:08:07.006 WARN  poll-failed code=unavailable message="connect ECONNREFUSED 127.0.0.1:1" retryMs=500\n');
  t.is(defaultLogFormat({}, true), 'human');
  t.is(defaultLogFormat({}, false), 'json');
  t.is(defaultLogFormat({ MESH_LOG_FORMAT: 'json' }, true), 'json');
  t.is(defaultLogFormat({ MESH_LOG_FORMAT: 'human' }, false), 'human');
});

test("the agent's event names map to levels", (t) => {
  const table = { 'internal-error': 'error', refused: 'warn' } as const;
  t.is(levelOfEvent('internal-error', table), 'error');
  t.is(levelOfEvent('refused', table), 'warn');
  t.is(levelOfEvent('poll-failed', table), 'warn');
  t.is(levelOfEvent('push-error', table), 'warn');
  t.is(levelOfEvent('registered', table), 'info');
});

// ---------------------------------------------------------------- CLI conventions

test('intFlag: whole numbers in range only, with the range and the flag in the message', (t) => {
  t.is(intFlag(undefined, '--n'), undefined);
  t.is(intFlag('0', '--n'), 0);
  t.is(intFlag(' 42 ', '--n'), 42);
  t.is(intFlag('65535', '--port', { max: 65_535 }), 65_535);
  for (const bad of ['', '-1', '1.5', '1e3', '0x10', 'abc', '99999999999999999', '65536']) {
    t.is(codeOf(() => intFlag(bad, '--port', { max: 65_535 })), 'usage', bad);
    const e = t.throws(() => intFlag(bad, '--port', { max: 65_535 }));
    t.regex(e?.message ?? '', /--port must be a whole number from 0 to 65535/);
  }
  t.regex(t.throws(() => intFlag('10', '--poll-interval-ms', { min: 50 }))?.message ?? '', /of at least 50/);
});

test('did you mean: the closest command or option, nothing for something unrelated', (t) => {
  t.is(closest('rn', ['run', 'status', 'reset']), 'run');
  t.is(closest('stat', ['run', 'status', 'reset']), 'status');
  t.is(closest('bach', ['batch', 'label', 'keygen']), 'batch');
  t.is(closest('bacth', ['batch', 'label', 'keygen']), 'batch', 'a transposition is one edit');
  t.is(closest('rnu', ['run', 'status', 'reset']), 'run');
  t.is(closest('frobnicate', ['batch', 'label', 'keygen']), undefined);
  t.is(codeOf(() => unknownCommand('mesh-agent', 'rest', ['run', 'status', 'reset'])), 'usage');
  const e = t.throws(() => unknownCommand('mesh-agent', 'rest', ['run', 'status', 'reset']));
  t.regex(e?.message ?? '', /did you mean "reset"\?/);
  t.is(codeOf(() => parse(['--dat', 'x'], { data: { type: 'string' } })), 'usage');
  const o = t.throws(() => parse(['--dat', 'x'], { data: { type: 'string' } }));
  t.is(o?.message, 'unknown option --dat (did you mean --data?)');
  t.is(t.throws(() => parse(['--zzz'], { data: { type: 'string' } }))?.message, 'unknown option --zzz');
});

test('environment variables: one per flag, the flag wins, booleans checked', (t) => {
  const options = { 'http-port': { type: 'string' as const }, 'no-mqtt': { type: 'boolean' as const }, name: { type: 'string' as const } };
  t.is(envName('MESH_PORTAL', 'http-port'), 'MESH_PORTAL_HTTP_PORT');
  const r = envOptions({ name: 'flag.example' } as Record<string, unknown>, options, 'MESH_PORTAL', { MESH_PORTAL_HTTP_PORT: '8081', MESH_PORTAL_NO_MQTT: 'yes', MESH_PORTAL_NAME: 'env.example' });
  t.deepEqual(r.values, { name: 'flag.example', 'http-port': '8081', 'no-mqtt': true });
  t.deepEqual(r.from, { name: 'flag', 'http-port': 'env', 'no-mqtt': 'env' });
  t.is(envOptions({} as Record<string, unknown>, options, 'MESH_PORTAL', { MESH_PORTAL_NO_MQTT: '0' }).values['no-mqtt'], undefined);
  t.is(codeOf(() => envOptions({}, options, 'MESH_PORTAL', { MESH_PORTAL_NO_MQTT: 'maybe' })), 'usage');
});

// ---------------------------------------------------------------- paths

test('the owner home: --home, MESH_HOME, XDG_DATA_HOME/mesh, an existing ~/.mesh kept', (t) => {
  const home = tmp('home');
  t.is(ownerHome('/x/y', { HOME: home }), '/x/y');
  t.is(ownerHome(undefined, { HOME: home, MESH_HOME: '/m' }), '/m');
  t.is(ownerHome(undefined, { HOME: home }), path.join(home, '.local', 'share', 'mesh'));
  t.is(ownerHome(undefined, { HOME: home, XDG_DATA_HOME: '/xdg' }), '/xdg/mesh');
  // a relative XDG_DATA_HOME is ignored, as the specification says
  t.is(xdgDataHome({ HOME: home, XDG_DATA_HOME: 'rel' }), path.join(home, '.local', 'share'));
  fs.mkdirSync(path.join(home, '.mesh'));
  fs.writeFileSync(path.join(home, '.mesh', 'profile.json'), '{}');
  t.is(ownerHome(undefined, { HOME: home }), path.join(home, '.mesh'));
  fs.mkdirSync(path.join(home, '.local', 'share', 'mesh'), { recursive: true });
  t.is(ownerHome(undefined, { HOME: home }), path.join(home, '.local', 'share', 'mesh'));
});

test("the portal's data directory: never the current directory", (t) => {
  t.is(portalDataDir({ STATE_DIRECTORY: '/var/lib/mesh-portal:/var/lib/other' }, 1000), '/var/lib/mesh-portal');
  t.is(portalDataDir({ HOME: '/home/p' }, 0), '/var/lib/mesh-portal');
  t.is(portalDataDir({ HOME: '/home/p' }, 1000), '/home/p/.local/share/mesh-portal');
  t.is(portalDataDir({ HOME: '/home/p', XDG_DATA_HOME: '/data' }, 1000), '/data/mesh-portal');
});

test('a portal key in another default place is found', (t) => {
  const cwd = tmp('cwd');
  const xdg = tmp('xdg');
  const chosen = path.join(tmp('chosen'), 'portal-key.json');
  t.deepEqual(keysElsewhere(chosen, { HOME: cwd, XDG_DATA_HOME: xdg, STATE_DIRECTORY: path.join(cwd, 'state') }, cwd, path.join(cwd, 'var-lib')), []);
  fs.mkdirSync(path.join(cwd, '.mesh-data', 'portal'), { recursive: true });
  fs.writeFileSync(path.join(cwd, '.mesh-data', 'portal', 'portal-key.json'), '{}');
  fs.mkdirSync(path.join(xdg, 'mesh-portal'));
  fs.writeFileSync(path.join(xdg, 'mesh-portal', 'portal-key.json'), '{}');
  t.deepEqual(keysElsewhere(chosen, { HOME: cwd, XDG_DATA_HOME: xdg, STATE_DIRECTORY: path.join(cwd, 'state') }, cwd, path.join(cwd, 'var-lib')).sort(), [path.join(cwd, '.mesh-data', 'portal', 'portal-key.json'), path.join(xdg, 'mesh-portal', 'portal-key.json')].sort());
  // once the chosen key exists, it is the portal's identity: nothing to say
  fs.writeFileSync(chosen, '{}');
  t.deepEqual(keysElsewhere(chosen, { HOME: cwd, XDG_DATA_HOME: xdg, STATE_DIRECTORY: path.join(cwd, 'state') }, cwd, path.join(cwd, 'var-lib')), []);
});

// ---------------------------------------------------------------- systemd notifications

function recorder(): { sent: string[][]; send: (socket: string, a: readonly string[]) => Promise<void> } {
  const sent: string[][] = [];
  return { sent, send: (_s, a) => (sent.push([...a]), Promise.resolve()) };
}

test('sd_notify: nothing without NOTIFY_SOCKET', async (t) => {
  const r = recorder();
  const n = sdNotifier({ env: { WATCHDOG_USEC: '1000000' }, send: r.send, clock: new FakeClock() });
  t.false(n.enabled);
  t.is(n.watchdogMs, null);
  n.ready();
  n.startWatchdog();
  await n.flush();
  t.deepEqual(r.sent, []);
});

test('sd_notify: READY, STATUS and a watchdog ping every WATCHDOG_USEC/2 on the clock; the variables leave the environment', async (t) => {
  const clock = new FakeClock();
  const r = recorder();
  const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '10000000', WATCHDOG_PID: String(process.pid) };
  const n = sdNotifier({ env, send: r.send, clock });
  t.deepEqual(env, {}, 'children do not inherit NOTIFY_SOCKET');
  t.true(n.enabled);
  t.is(n.watchdogMs, 10_000);
  n.ready('starting\nnow');
  await n.flush();
  t.deepEqual(r.sent, [['READY=1', 'STATUS=starting now']]);
  const stop = n.startWatchdog();
  await n.flush();
  t.is(r.sent.length, 2);
  await clock.advance(4_999);
  await n.flush();
  t.is(r.sent.length, 2, 'not before half the interval');
  await clock.advance(1);
  await n.flush();
  t.deepEqual(r.sent[2], ['WATCHDOG=1']);
  await clock.advance(50_000);
  await n.flush();
  t.is(r.sent.length, 3 + 10);
  stop();
  await clock.advance(50_000);
  await n.flush();
  t.is(r.sent.length, 13, 'stopped');
  n.stopping();
  await n.flush();
  t.deepEqual(r.sent.at(-1), ['STOPPING=1']);
});

test('sd_notify: a watchdog meant for another process is not ours; messages sent while one is in flight are merged', async (t) => {
  const other = sdNotifier({ env: { NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '1000000', WATCHDOG_PID: '1' }, send: recorder().send });
  t.is(other.watchdogMs, null);
  const sent: string[][] = [];
  let release: () => void = () => undefined;
  const n = sdNotifier({
    env: { NOTIFY_SOCKET: '/run/x' },
    send: (_s, a) => {
      sent.push([...a]);
      return new Promise<void>((res) => (release = res));
    },
  });
  n.ready();
  n.status('a');
  n.status('b');
  n.watchdog();
  t.is(sent.length, 1);
  release();
  await new Promise((r) => setImmediate(r));
  t.deepEqual(sent[1], ['STATUS=b', 'WATCHDOG=1']);
  release();
  await n.flush();
});

test('sd_notify: a failing sender is reported once, and the notifier keeps going', async (t) => {
  const errors: string[] = [];
  let calls = 0;
  const n = sdNotifier({ env: { NOTIFY_SOCKET: '/run/x' }, send: () => (calls++, Promise.reject(new Error('no systemd-notify'))), onError: (e) => errors.push(e.message) });
  n.ready();
  await n.flush();
  n.watchdog();
  await n.flush();
  t.is(calls, 2);
  t.deepEqual(errors, ['no systemd-notify']);
});

// ---------------------------------------------------------------- metrics

test('process metrics: Prometheus names, one HELP and TYPE per series, the build info', (t) => {
  const m = new ProcessMetrics('mesh-test');
  const text = m.render();
  m.close();
  for (const name of [
    'process_cpu_seconds_total',
    'process_cpu_user_seconds_total',
    'process_start_time_seconds',
    'process_resident_memory_bytes',
    'process_open_fds',
    'nodejs_heap_size_used_bytes',
    'nodejs_eventloop_lag_p99_seconds',
    'nodejs_version_info',
    'mesh_build_info',
  ]) {
    t.regex(text, new RegExp(`^# TYPE ${name} (counter|gauge)$`, 'm'), name);
    t.regex(text, new RegExp(`^${name}(\\{[^}]*\\})? [0-9.e+-]+$`, 'm'), name);
  }
  t.regex(text, /^mesh_build_info\{program="mesh-test",version="\d+\.\d+\.\d+[^"]*",nodejs="v\d+[^"]*",arch="[a-z0-9]+"\} 1$/m);
  const rss = Number(/^process_resident_memory_bytes (\d+)$/m.exec(text)?.[1]);
  t.true(rss > 1_000_000, 'a real resident size');
  // counters only go up, and every sample line is a number
  for (const line of text.split('\n').filter((l) => l !== '' && !l.startsWith('#'))) t.regex(line, / -?[0-9.e+-]+$/, line);
});

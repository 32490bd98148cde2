/**
 * The portal process's life: a listener that cannot bind ends the start with exit 1 and a message
 * naming it; closed stdout and stderr pipes (`mesh-portal | head -1`) neither wedge the process nor
 * keep it from stopping; SIGINT stops it (exit 0); a second signal during a stop that waits for a
 * request exits at once (exit 1). Real processes; the times are logged, not asserted, except where
 * a bound says which mechanism acted.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { PATHS } from '../mesh/protocol.js';
import { PORTAL_CLI } from '../harness/portal-process.js';
import { rawHttp } from './helpers/raw-http.js';

interface Run {
  readonly proc: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
  readonly dataDir: string;
}

const running = new Set<ChildProcess>();
test.after.always(() => {
  for (const p of running) p.kill('SIGKILL');
});

function run(args: string[], stdio: 'pipe' | 'ignore' = 'pipe'): Run {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-portal-life-'));
  const env = { ...process.env };
  delete env.DATABASE_URL;
  const proc = spawn(process.execPath, [PORTAL_CLI, '--data', dataDir, '--http-port', '0', ...args], { env, stdio: ['ignore', stdio, 'pipe'] });
  running.add(proc);
  let err = '';
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => {
      running.delete(proc);
      fs.rmSync(dataDir, { recursive: true, force: true });
      resolve({ code, signal });
    }),
  );
  return { proc, exited, stderr: () => err, dataDir };
}

/** The first line the process writes on stdout. */
function firstLine(p: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    p.stdout?.setEncoding('utf8');
    p.stdout?.on('data', (d: string) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    p.once('exit', () => reject(new Error(`exited before a line on stdout: ${out}`)));
  });
}

const readyUrl = (line: string): string => (JSON.parse(line.replace(/^mesh-portal ready /, '')) as { http: string }).http;

/** A port some other socket holds. */
async function takenPort(): Promise<{ port: number; close: () => void }> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return { port: (s.address() as net.AddressInfo).port, close: () => s.close() };
}

test('the MQTT port in use: exit 1, and the message names the MQTT listener and its address', async (t) => {
  const busy = await takenPort();
  try {
    const r = run(['--mqtt-port', String(busy.port), '--rate-limit', '0']);
    const { code } = await r.exited;
    t.is(code, 1, r.stderr());
    t.regex(r.stderr(), new RegExp(`mesh-portal: error \\[unavailable\\]: cannot listen for MQTT on (?:127\\.0\\.0\\.1|0\\.0\\.0\\.0):${busy.port}: the address is in use`));
  } finally {
    busy.close();
  }
});

test('the HTTP port in use: exit 1, and the message names the HTTP listener', async (t) => {
  const busy = await takenPort();
  try {
    const r = run(['--no-mqtt', '--rate-limit', '0', '--http-port', String(busy.port)]);
    const { code } = await r.exited;
    t.is(code, 1, r.stderr());
    t.regex(r.stderr(), new RegExp(`cannot listen for HTTP on (?:127\\.0\\.0\\.1|0\\.0\\.0\\.0):${busy.port}: the address is in use`));
  } finally {
    busy.close();
  }
});

test('stdout and stderr closed after the ready line (mesh-portal | head -1): requests still served, SIGINT exits 0', async (t) => {
  // every request logs a line at debug level: each one meets the closed stderr (EPIPE)
  const r = run(['--no-mqtt', '--rate-limit', '0', '--log-level', 'debug']);
  const url = readyUrl(await firstLine(r.proc));
  r.proc.stdout?.destroy();
  r.proc.stderr?.destroy();
  for (let i = 0; i < 50; i++) t.is((await rawHttp(url, 'GET', i % 2 === 0 ? PATHS.hello : '/nowhere', { timeoutMs: 10_000 })).status, i % 2 === 0 ? 200 : 404);
  const t0 = performance.now();
  r.proc.kill('SIGINT');
  const { code, signal } = await r.exited;
  // a wedged process would be killed by the signal, or exit 1 when its stop overran the grace
  t.is(signal, null);
  t.is(code, 0);
  t.log(`exited ${(performance.now() - t0).toFixed(0)} ms after SIGINT, its output pipes closed`);
});

test('a shell pipeline: mesh-portal | head -1 prints the ready line; SIGINT to the portal exits 0', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-portal-life-'));
  // bash reports the portal's own status (PIPESTATUS[0]) once the pipeline is over
  const sh = spawn('bash', ['-c', `"$NODE" "$CLI" --data "$DIR" --http-port 0 --no-mqtt --rate-limit 0 --log-level debug | head -1; echo "portal exit \${PIPESTATUS[0]}" >&2`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DATABASE_URL: '', NODE: process.execPath, CLI: PORTAL_CLI, DIR: dataDir },
  });
  running.add(sh);
  let err = '';
  sh.stderr?.setEncoding('utf8');
  sh.stderr?.on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => sh.once('exit', (code) => resolve(code)));
  try {
    const line = await firstLine(sh);
    t.regex(line, /^mesh-portal ready \{/);
    const url = readyUrl(line);
    // head has exited: the portal's stdout is a pipe nobody reads. Its debug log goes on to stderr.
    t.is((await rawHttp(url, 'GET', PATHS.hello, { timeoutMs: 10_000 })).status, 200);
    // the portal: the process whose command line names this test's data directory
    const pid = Number(
      fs
        .readdirSync('/proc')
        .filter((d) => /^\d+$/.test(d) && Number(d) !== sh.pid)
        .find((d) => {
          try {
            const argv = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
            return argv.includes(dataDir) && argv.includes(PORTAL_CLI);
          } catch {
            return false;
          }
        }),
    );
    t.true(pid > 0, 'found the portal process');
    process.kill(pid, 'SIGINT');
    t.is(await exited, 0);
    t.regex(err, /portal exit 0\n/);
    await t.throwsAsync(rawHttp(url, 'GET', PATHS.hello, { timeoutMs: 10_000 }));
  } finally {
    sh.kill('SIGKILL');
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});

test('SIGINT while a request is in flight waits for it; a second SIGINT exits at once with 1', async (t) => {
  const r = run(['--no-mqtt', '--rate-limit', '0']);
  const url = new URL(readyUrl(await firstLine(r.proc)));
  // a request whose body never comes: in flight until the request timeout (30 s) or the stop's grace (10 s)
  const s = net.connect({ port: Number(url.port), host: url.hostname });
  s.on('error', () => undefined);
  await new Promise<void>((resolve) => s.once('connect', () => resolve()));
  s.write(`POST ${PATHS.register} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"device":`);
  // the portal has the request when it has begun reading the body: give it that, by asking for something else on another connection
  t.is((await rawHttp(url.toString(), 'GET', PATHS.hello, { timeoutMs: 10_000 })).status, 200);
  r.proc.kill('SIGINT');
  await new Promise<void>((resolve) => {
    const check = (): void => (r.stderr().includes('"event":"stopping"') ? resolve() : void setTimeout(check, 10));
    check();
  });
  // still running: it waits for the request
  t.is(r.proc.exitCode, null);
  const t0 = performance.now();
  r.proc.kill('SIGINT');
  const { code } = await r.exited;
  t.is(code, 1);
  t.regex(r.stderr(), /second signal: exiting now/);
  t.log(`exited ${(performance.now() - t0).toFixed(0)} ms after the second SIGINT (the stop's grace is 10 s)`);
  s.destroy();
});

test('SIGTERM and SIGINT each stop an idle portal with exit 0', async (t) => {
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    const r = run(['--no-mqtt', '--rate-limit', '0']);
    await firstLine(r.proc);
    r.proc.kill(sig);
    const { code, signal } = await r.exited;
    t.is(signal, null, sig);
    t.is(code, 0, `${sig}: ${r.stderr()}`);
    t.regex(r.stderr(), new RegExp(`"event":"stopping","signal":"${sig}"`));
  }
});

/**
 * Runs the commands that documentation quotes, so that a page cannot promise what the code does not
 * do. The commands are the lines of the page's ```sh blocks (continuation lines joined, comments
 * dropped), run in order with bash, in a fresh directory whose node_modules/.bin holds `mesh`,
 * `mesh-portal`, `mesh-agent` and `mesh-provision` (so `npx mesh ...` works as after `npm install`).
 * What cannot be the same here is changed by declared substitutions (each with its reason, each
 * required to be used), commands that cannot run here are skipped by declared rules (each with its
 * reason, listed in the test's log), services are started in the background and stopped at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import pg from 'pg';
import { REPO } from '../../harness/agent-process.js';

export interface DocCommand {
  readonly file: string;
  /** 1-based line of the command's first line */
  readonly line: number;
  /** the heading the block is under */
  readonly section: string;
  readonly text: string;
}

/** Drop a `#` comment that is outside quotes and follows a space. */
function stripComment(line: string): string {
  let q: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (q !== null) {
      if (c === q) q = null;
      else if (c === '\\' && q === '"') i++;
    } else if (c === "'" || c === '"') q = c;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1] as string))) return line.slice(0, i).trimEnd();
  }
  return line.trimEnd();
}

/** The commands of every ```sh block of a markdown file, with the section each is in. */
export function extractCommands(file: string): DocCommand[] {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const out: DocCommand[] = [];
  let section = '';
  let inSh = false;
  let fence = false;
  let pending: { line: number; text: string } | null = null;
  lines.forEach((raw, i) => {
    if (raw.startsWith('```')) {
      if (!fence) {
        fence = true;
        inSh = /^```(sh|bash|shell|console)\s*$/.test(raw);
      } else {
        fence = false;
        inSh = false;
      }
      return;
    }
    if (!fence && /^#{1,6} /.test(raw)) section = raw.replace(/^#+ /, '');
    if (!inSh) return;
    const l = stripComment(raw);
    const cont = l.endsWith('\\');
    const part = cont ? l.slice(0, -1).trim() : l.trim();
    if (pending === null) pending = { line: i + 1, text: part };
    else pending.text += ' ' + part;
    if (!cont) {
      if (pending.text !== '') out.push({ file: path.relative(REPO, file), line: pending.line, section, text: pending.text.replace(/\s+/g, ' ') });
      pending = null;
    }
  });
  return out;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address() as net.AddressInfo;
      s.close(() => resolve(a.port));
    });
  });
}

export interface Substitution {
  /** the text in the documentation */
  readonly from: string;
  /** what runs here instead (a function: it may use values captured from earlier commands) */
  readonly to: () => string;
  readonly why: string;
  /** only in commands that match */
  readonly when?: RegExp;
}

export interface Skip {
  readonly match: RegExp;
  readonly why: string;
}

export interface Service {
  /** commands that start a long-running process */
  readonly match: RegExp;
  /** its stdout line that says it is ready */
  readonly ready: RegExp;
  /** its stderr after SIGTERM, proving an orderly stop */
  readonly stopped: RegExp;
  /** stop it right after it is ready (an alternative way to run something already running) */
  readonly stopWhenReady?: boolean;
  /** it ends by itself (exit 0, `stopped` on stdout) once a later command has done its part: no SIGTERM */
  readonly exits?: boolean;
}

export interface AfterContext {
  /** wait for the running service whose command matches to end by itself (a service with `exits`) */
  settle(match: RegExp): Promise<void>;
}

export interface After {
  readonly match: RegExp;
  /** checks and captures, with the command's output */
  readonly run: (r: { stdout: string; stderr: string }, ctx: AfterContext) => void | Promise<void>;
}

export interface ExpectError {
  readonly match: RegExp;
  /** the MeshError code the command must fail with (`NAME: error [code]: ...`) */
  readonly code: string;
  readonly why: string;
}

export interface DocRules {
  readonly substitutions: readonly Substitution[];
  readonly skips: readonly Skip[];
  readonly services: readonly Service[];
  readonly after?: readonly After[];
  /** commands that must fail, and how */
  readonly expectErrors?: readonly ExpectError[];
  /** environment of every command (the runner adds PATH and the working directory's bins) */
  readonly env: NodeJS.ProcessEnv;
  /** bounds a command that hangs; not a speed target */
  readonly commandTimeoutMs?: number;
}

export interface DocRun {
  readonly cwd: string;
  readonly ran: string[];
  readonly skipped: { command: string; why: string }[];
  /** substitutions never used: the documentation changed, the rules did not */
  readonly unused: string[];
}

const BINS: Record<string, string> = { mesh: 'admin', 'mesh-portal': 'portal', 'mesh-agent': 'agent', 'mesh-provision': 'provisioning' };

/** A fresh working directory with the four commands in node_modules/.bin, and examples/, deploy/ and dist/ beside it. */
export function docWorkspace(name: string): string {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), `mesh-doc-${name}-`));
  const bin = path.join(cwd, 'node_modules', '.bin');
  fs.mkdirSync(bin, { recursive: true });
  for (const [b, dir] of Object.entries(BINS)) {
    fs.writeFileSync(path.join(bin, b), `#!/bin/sh\nexec "${process.execPath}" "${path.join(REPO, 'dist', dir, 'cli.js')}" "$@"\n`, { mode: 0o755 });
  }
  // the pages run from the repository: its examples/, deploy/ and the compiled dist/
  for (const d of ['examples', 'deploy', 'dist']) fs.symlinkSync(path.join(REPO, d), path.join(cwd, d));
  return cwd;
}

interface Running {
  readonly command: string;
  readonly proc: ChildProcess;
  readonly service: Service;
  stdout: string;
  stderr: string;
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stopService(r: Running): Promise<void> {
  const pid = r.proc.pid as number;
  if (r.service.exits === true) {
    const code = r.proc.exitCode ?? (await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), 120_000);
      r.proc.once('exit', (c) => (clearTimeout(timer), resolve(c)));
    }));
    if (code !== 0 || !r.service.stopped.test(r.stdout)) throw new Error(`"${r.command}" ended with ${String(code)}, without ${String(r.service.stopped)}\n${r.stdout}\n${r.stderr.slice(-3000)}`);
    return;
  }
  // the whole process group: npx does not pass SIGTERM on to the program it runs
  if (groupAlive(pid)) process.kill(-pid, 'SIGTERM');
  for (let i = 0; i < 300 && groupAlive(pid); i++) await new Promise((res) => setTimeout(res, 100));
  if (groupAlive(pid)) {
    process.kill(-pid, 'SIGKILL');
    throw new Error(`"${r.command}" did not stop within 30 s of SIGTERM\n${r.stderr.slice(-3000)}`);
  }
  if (!r.service.stopped.test(r.stderr)) throw new Error(`"${r.command}" stopped without ${String(r.service.stopped)} in its log\n${r.stderr.slice(-3000)}`);
}

/** Run the commands in order under the rules; throws on the first failure, with the output. */
export async function runDoc(commands: readonly DocCommand[], rules: DocRules, cwd: string, log: (s: string) => void): Promise<DocRun> {
  const ran: string[] = [];
  const skipped: { command: string; why: string }[] = [];
  const used = new Set<Substitution>();
  const services: Running[] = [];
  const env: NodeJS.ProcessEnv = { ...rules.env, PATH: `${path.join(cwd, 'node_modules', '.bin')}:${path.dirname(process.execPath)}:${rules.env.PATH ?? process.env.PATH ?? '/usr/bin:/bin'}` };
  const timeoutMs = rules.commandTimeoutMs ?? 120_000;
  const ctx: AfterContext = {
    settle: async (match) => {
      const r = services.find((x) => match.test(x.command));
      if (r === undefined) throw new Error(`no running command matches ${String(match)}`);
      services.splice(services.indexOf(r), 1);
      await stopService(r);
    },
  };
  try {
    for (const c of commands) {
      const where = `${c.file}:${c.line}`;
      const skip = rules.skips.find((s) => s.match.test(c.text));
      if (skip !== undefined) {
        skipped.push({ command: `${where} ${c.text}`, why: skip.why });
        continue;
      }
      let cmd = c.text;
      for (const s of rules.substitutions) {
        if (s.when !== undefined && !s.when.test(c.text)) continue;
        if (cmd.includes(s.from)) {
          cmd = cmd.split(s.from).join(s.to());
          used.add(s);
        }
      }
      log(`$ ${c.text}${cmd !== c.text ? `\n    ran as: ${cmd}` : ''}`);
      ran.push(c.text);
      const service = rules.services.find((s) => s.match.test(c.text));
      if (service !== undefined) {
        const proc = spawn('bash', ['-c', cmd], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
        const r: Running = { command: cmd, proc, service, stdout: '', stderr: '' };
        services.push(r);
        proc.stderr?.setEncoding('utf8').on('data', (d: string) => (r.stderr = (r.stderr + d).slice(-200_000)));
        await new Promise<void>((resolve, reject) => {
          let ready = false;
          const timer = setTimeout(() => reject(new Error(`${where}: not ready within ${timeoutMs} ms: ${cmd}\n${r.stdout}\n${r.stderr.slice(-3000)}`)), timeoutMs);
          proc.stdout?.setEncoding('utf8').on('data', (d: string) => {
            r.stdout += d;
            if (!ready && service.ready.test(r.stdout)) {
              ready = true;
              clearTimeout(timer);
              resolve();
            }
          });
          proc.once('exit', (code) => {
            clearTimeout(timer);
            if (!ready) reject(new Error(`${where}: exited with ${String(code)} before it was ready: ${cmd}\n${r.stdout}\n${r.stderr.slice(-3000)}`));
          });
        });
        if (service.stopWhenReady === true) {
          services.splice(services.indexOf(r), 1);
          await stopService(r);
        }
        await runAfter(rules, c, { stdout: r.stdout, stderr: r.stderr }, ctx);
        continue;
      }
      const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const p = spawn('bash', ['-o', 'pipefail', '-c', cmd], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
        p.once('close', (code) => {
          clearTimeout(timer);
          resolve({ code, stdout, stderr });
        });
      });
      const expected = rules.expectErrors?.find((e) => e.match.test(c.text));
      if (expected !== undefined) {
        if (result.code === 0 || !result.stderr.includes(`error [${expected.code}]`)) throw new Error(`${where}: should fail with [${expected.code}] (${expected.why}): ${cmd}\n${result.stdout}\n${result.stderr}`);
        log(`    failed as it should: ${result.stderr.trim().split('\n')[0] ?? ''} (${expected.why})`);
        await runAfter(rules, c, result, ctx);
        continue;
      }
      if (result.code !== 0) throw new Error(`${where}: exit ${String(result.code)}: ${cmd}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}\n--- services\n${services.map((s) => s.stderr.slice(-2000)).join('\n')}`);
      await runAfter(rules, c, result, ctx);
    }
    for (const s of services.splice(0).reverse()) await stopService(s);
  } finally {
    for (const s of services) if (s.proc.pid !== undefined && groupAlive(s.proc.pid)) process.kill(-s.proc.pid, 'SIGKILL');
  }
  const unused = rules.substitutions.filter((s) => !used.has(s)).map((s) => s.from);
  return { cwd, ran, skipped, unused };
}

async function runAfter(rules: DocRules, c: DocCommand, r: { stdout: string; stderr: string }, ctx: AfterContext): Promise<void> {
  for (const a of rules.after ?? []) if (a.match.test(c.text)) await a.run(r, ctx);
}

/** Resolves when `pred` holds, checking every 200 ms; rejects after `ms` (a bound on a hang, not a speed target). */
export async function eventually(what: string, pred: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The environment a new user has: this HOME, no MESH_HOME, no XDG directories, no portal settings. */
export function newUserEnv(home: string, drop: readonly string[] = []): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home };
  for (const k of ['MESH_HOME', 'XDG_DATA_HOME', 'XDG_CONFIG_HOME', 'DATABASE_URL', 'MESH_LOG_FORMAT', 'STATE_DIRECTORY', ...drop]) delete env[k];
  for (const k of Object.keys(env)) if (k.startsWith('MESH_PORTAL_')) delete env[k];
  return env;
}

/** Drop a PostgreSQL schema a test made (nothing if the server is not there). */
export async function dropSchema(url: string, schema: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  try {
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } catch {
    // nothing to drop when the server is away
  } finally {
    await c.end().catch(() => undefined);
  }
}

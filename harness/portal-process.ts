/**
 * Run the portal as a real process for integration tests: `node dist/portal/cli.js` on a fresh
 * temporary data directory, free ports (`--http-port 0 --mqtt-port 0`), `--rate-limit 0` unless
 * `args` sets it, and the ready line parsed. stderr (JSON logs) is kept
 * for failure messages.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface PortalProcess {
  readonly http: string;
  readonly mqtt: string | null;
  readonly name: string;
  /** UDF of the portal key */
  readonly portal: string;
  readonly dataDir: string;
  readonly proc: ChildProcess;
  /** stderr so far (JSON log lines) */
  logs(): string;
  /** SIGTERM and wait for exit; resolves with the exit code. Removes the data directory it made. */
  stop(): Promise<number | null>;
}

/** dist/harness/ -> dist/portal/cli.js */
export const PORTAL_CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'portal', 'cli.js');

/** Portals still running when the test process exits are killed, so a failed test leaves none behind. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

export async function startPortalProcess(opts: { args?: string[]; env?: Record<string, string>; dataDir?: string; timeoutMs?: number } = {}): Promise<PortalProcess> {
  const made = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-portal-test-'));
  const args = [PORTAL_CLI, '--data', dataDir, '--http-port', '0'];
  const extra = opts.args ?? [];
  if (!extra.includes('--mqtt-url') && !extra.includes('--no-mqtt') && !extra.includes('--mqtt-port')) args.push('--mqtt-port', '0');
  // tests fire requests in bursts from one address: no rate limit unless the test asks for one
  if (!extra.includes('--rate-limit')) args.push('--rate-limit', '0');
  // the portal listens on every interface by default; a test portal stays on this machine
  if (!extra.includes('--host')) args.push('--host', '127.0.0.1');
  args.push(...extra);
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  if (opts.env?.DATABASE_URL === undefined) delete env.DATABASE_URL;
  const proc = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (d: string) => {
    stderr += d;
    if (stderr.length > 2_000_000) stderr = stderr.slice(-1_000_000);
  });
  running.add(proc);
  const exited = new Promise<number | null>((resolve) =>
    proc.once('exit', (code) => {
      running.delete(proc);
      resolve(code);
    }),
  );

  const ready = await new Promise<{ http: string; mqtt: string | null; name: string; portal: string }>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`the portal did not start within ${opts.timeoutMs ?? 20_000} ms\n${stderr}`));
    }, opts.timeoutMs ?? 20_000);
    proc.stdout?.setEncoding('utf8');
    proc.stdout?.on('data', (d: string) => {
      out += d;
      const line = /^mesh-portal ready (\{.*\})$/m.exec(out);
      if (line?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(JSON.parse(line[1]) as { http: string; mqtt: string | null; name: string; portal: string });
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the portal exited with ${String(code)} before it was ready\n${out}\n${stderr}`));
    });
  });

  let stopped: Promise<number | null> | undefined;
  return {
    ...ready,
    dataDir,
    proc,
    logs: () => stderr,
    stop: () => {
      stopped ??= (async () => {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
        const code = await exited;
        clearTimeout(t);
        if (made) fs.rmSync(dataDir, { recursive: true, force: true });
        return code;
      })();
      return stopped;
    },
  };
}

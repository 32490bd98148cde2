/**
 * The container images and the compose file, where no Docker engine runs:
 *   - both Dockerfiles pass dockerfile-utils' validator (hadolint is not in Debian; see
 *     docs/operations.md), and hold what an operator expects: a pinned LTS base, several stages,
 *     a numeric non-root user, a HEALTHCHECK; .dockerignore keeps node_modules and dist out;
 *   - the HEALTHCHECK commands, taken from the Dockerfiles, work against real processes;
 *   - compose.yaml is valid for `docker-compose config` (when a compose tool is installed) and
 *     runs portal, PostgreSQL, broker and three agents.
 */
import test from 'ava';
import { execFile, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { validate } from 'dockerfile-utils';
import { AGENT_CLI, REPO, provisionDevice } from '../harness/agent-process.js';
import { startPortalProcess } from '../harness/portal-process.js';
import { AGENT_NODE_FLAGS, agentUnit } from '../provisioning/systemd.js';

const run = promisify(execFile);
const read = (f: string): string => fs.readFileSync(path.join(REPO, f), 'utf8');

interface Stage {
  readonly from: string;
  readonly lines: string[];
}

/** Instructions with their continuation lines joined, comments dropped, split into stages. */
function stages(text: string): { args: Map<string, string>; stages: Stage[] } {
  const joined = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  const args = new Map<string, string>();
  const out: Stage[] = [];
  for (const l of joined) {
    const m = /^ARG (\w+)=(\S+)$/.exec(l);
    if (m !== null && out.length === 0) args.set(m[1] as string, m[2] as string);
    if (l.startsWith('FROM ')) out.push({ from: l, lines: [] });
    else out.at(-1)?.lines.push(l);
  }
  return { args, stages: out };
}

function healthcheck(text: string): string[] {
  const s = stages(text).stages.at(-1) as Stage;
  const h = s.lines.find((l) => l.startsWith('HEALTHCHECK '));
  const m = /CMD (\[.*\])$/.exec(h ?? '');
  return JSON.parse(m?.[1] ?? 'null') as string[];
}

for (const [file, major] of [
  ['Dockerfile.arm', 22],
  ['Dockerfile.portal', 24],
] as const) {
  test(`${file}: valid, pinned Node.js ${major} LTS, multi-stage, non-root, with a HEALTHCHECK`, (t) => {
    const text = read(file);
    t.deepEqual(
      validate(text).map((d) => `line ${d.range.start.line + 1}: ${typeof d.message === 'string' ? d.message : d.message.value}`),
      [],
    );
    const { args, stages: st } = stages(text);
    t.regex(args.get('NODE_VERSION') ?? '', new RegExp(`^${major}\\.\\d+\\.\\d+$`), 'an exact Node.js version');
    t.true(st.length >= 2, 'multi-stage');
    for (const s of st) t.regex(s.from, /^FROM (--platform=\$BUILDPLATFORM )?node:\$\{NODE_VERSION\}-bookworm(-slim)?( AS \w+)?$/, s.from);
    const final = st.at(-1) as Stage;
    t.regex(final.from, /-slim$/, 'the final image is the slim one');
    const user = final.lines.filter((l) => l.startsWith('USER ')).at(-1);
    t.regex(user ?? '', /^USER [1-9]\d{3,}:[1-9]\d{3,}$/, 'a numeric non-root user');
    t.true(final.lines.some((l) => l.startsWith('HEALTHCHECK ')));
    t.false(/:latest\b/.test(text.replace(/^#.*$/gm, '')), 'no latest tag');
  });
}

test("the agent image runs node with the systemd unit's options (AGENT_NODE_FLAGS)", (t) => {
  const entry = /^ENTRYPOINT (\[.*\])$/m.exec(read('Dockerfile.arm'))?.[1];
  t.truthy(entry, 'an exec-form ENTRYPOINT');
  t.deepEqual(JSON.parse(entry ?? '[]') as unknown, ['node', ...AGENT_NODE_FLAGS, '/opt/mesh/mesh-agent.mjs']);
  t.true(agentUnit().includes(`ExecStart=/usr/bin/node ${AGENT_NODE_FLAGS.join(' ')} /opt/mesh/mesh-agent.mjs run`));
});

test('.dockerignore keeps node_modules, dist and .git out of the build context', (t) => {
  const lines = read('.dockerignore').split('\n').map((l) => l.trim());
  for (const x of ['node_modules', 'dist', '.git']) t.true(lines.includes(x), x);
});

test("the agent image's HEALTHCHECK passes while the agent's loop runs and fails once the file is stale", async (t) => {
  const cmd = healthcheck(read('Dockerfile.arm'));
  t.is(cmd[0], 'node');
  const portal = await startPortalProcess({ args: ['--no-mqtt'] });
  const { dir } = provisionDevice(portal.http, { push: false });
  const file = path.join(dir, 'alive');
  const agent = spawn(process.execPath, [AGENT_CLI, 'run', '--data', dir], { env: { ...process.env, MESH_AGENT_HEALTH_FILE: file }, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      agent.stdout.setEncoding('utf8').on('data', (d: string) => ((out += d), out.includes('mesh-agent ready') && resolve()));
      agent.once('exit', (c) => reject(new Error(`the agent exited with ${String(c)}`)));
    });
    const env = { ...process.env, MESH_AGENT_HEALTH_FILE: file };
    const check = (): number | null => spawnSync(process.execPath, cmd.slice(1), { env }).status;
    t.is(check(), 0, 'healthy');
    const old = new Date(Date.now() - 10 * 60_000);
    fs.utimesSync(file, old, old);
    t.is(check(), 1, 'a health file ten minutes old is unhealthy');
  } finally {
    agent.kill('SIGTERM');
    await portal.stop();
  }
});

test("the portal image's HEALTHCHECK asks /readyz on MESH_PORTAL_HTTP_PORT", async (t) => {
  const cmd = healthcheck(read('Dockerfile.portal'));
  const portal = await startPortalProcess({ args: ['--no-mqtt'] });
  const port = new URL(portal.http).port;
  const check = (p: string): number | null => spawnSync(process.execPath, cmd.slice(1), { env: { ...process.env, MESH_PORTAL_HTTP_PORT: p } }).status;
  t.is(check(port), 0);
  await portal.stop();
  t.is(check(port), 1, 'no portal, not healthy');
});

test('compose.yaml: portal, PostgreSQL, broker and three agents; valid for docker-compose config', async (t) => {
  const text = read('compose.yaml');
  for (const s of ['db', 'broker', 'portal', 'provision', 'agent-1', 'agent-2', 'agent-3']) t.regex(text, new RegExp(`^  ${s}:$`, 'm'), s);
  t.regex(text, /DATABASE_URL: postgres:\/\/mesh:mesh@db:5432\/mesh/);
  t.regex(text, /MESH_PORTAL_MQTT_URL: mqtt:\/\/broker:1883/);
  const tool = ['docker-compose', 'docker compose'].find((c) => spawnSync('sh', ['-c', `${c} version`], { stdio: 'ignore' }).status === 0);
  if (tool === undefined) {
    t.log('SKIPPED the compose check: neither docker-compose nor the docker compose plugin is installed (apt-get install docker-compose)');
    return;
  }
  const [bin, ...pre] = tool.split(' ') as [string, ...string[]];
  const r = await run(bin, [...pre, '-f', path.join(REPO, 'compose.yaml'), 'config', '--services'], { cwd: REPO });
  t.deepEqual(r.stdout.trim().split('\n').sort(), ['agent-1', 'agent-2', 'agent-3', 'broker', 'db', 'owner', 'portal', 'provision']);
});

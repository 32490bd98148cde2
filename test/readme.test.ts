/**
 * The README's commands, run as written (test/helpers/doc-runner.ts): the portal embedded and on
 * PostgreSQL (with no user in DATABASE_URL and no $USER), a factory batch with the thermostat
 * schema, the agent on the first board's directory, an owner who makes a profile, claims the board
 * from its label and sets the setpoint, which the board then applies. Only ports, directories,
 * host names and the label's text are replaced, each for a reason the test logs.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO } from '../harness/agent-process.js';
import { docWorkspace, dropSchema, eventually, extractCommands, freePort, newUserEnv, runDoc } from './helpers/doc-runner.js';

const PG = process.env.MESH_TEST_PG ?? 'postgres://127.0.0.1:5432/test';
const MQTT = process.env.MESH_TEST_MQTT ?? 'mqtt://127.0.0.1:1883';

test('README: every command of "Running it for real" works as written; the others are listed with why they are skipped', async (t) => {
  t.timeout(600_000);
  const commands = extractCommands(path.join(REPO, 'README.md'));
  const cwd = docWorkspace('readme');
  const home = path.join(cwd, 'home');
  fs.mkdirSync(home);
  const http = await freePort();
  const mqtt = await freePort();
  const httpPg = await freePort();
  const schema = `mesh_readme_${process.pid}_${Date.now() % 100_000}`;
  const pgUrl = new URL(PG);
  pgUrl.username = '';
  pgUrl.password = '';
  pgUrl.searchParams.set('schema', schema);
  const board = path.join(cwd, 'batch', 'thermostat-000001');
  const label = (): string => (JSON.parse(fs.readFileSync(path.join(board, 'claim.json'), 'utf8')) as { uri: string }).uri;
  // no MESH_HOME, no XDG directories, no $USER: the defaults are what a new user gets
  const env = newUserEnv(home, ['USER', 'PGUSER', 'LOGNAME']);
  // the PostgreSQL portal line gives no --data: its key goes to the default directory, which for
  // root is /var/lib/mesh-portal, not a place for a test; the variable for --data points here
  env.MESH_PORTAL_DATA = path.join(cwd, 'portal-default-data');
  t.log(`MESH_PORTAL_DATA=${env.MESH_PORTAL_DATA} (for the command without --data)`);

  try {
    const r = await runDoc(
      commands,
      {
        env,
        substitutions: [
          { from: '/var/lib/mesh-portal', to: () => path.join(cwd, 'portal-data'), why: 'a directory this test may write' },
          { from: '--http-port 8080', to: () => `--http-port ${httpPg}`, when: /DATABASE_URL/, why: 'a free port, beside the embedded portal' },
          { from: '--http-port 8080', to: () => `--http-port ${http}`, why: 'a free port' },
          { from: '--mqtt-port 1883', to: () => `--mqtt-port ${mqtt}`, why: 'a free port (1883 is the local Mosquitto)' },
          { from: 'postgres://db.example/mesh', to: () => pgUrl.toString(), why: "this machine's PostgreSQL, a fresh schema; still without a user name" },
          { from: 'mqtt://broker.example:1883', to: () => MQTT, why: "this machine's Mosquitto" },
          { from: "'https://portal.example/claim#code=EB3X-...&fp=MB2G-...&m=acme'", to: () => `'${label()}'`, why: "the first board's label, as its QR code reads" },
          { from: 'https://portal.example', to: () => `http://127.0.0.1:${http}`, why: 'the embedded portal on this machine, without the TLS proxy' },
        ],
        skips: [
          { match: /^npm install && npm run demo$/, why: 'npm install needs the registry; the demo scenario itself runs in test/e2e' },
          { match: /^npm test$/, why: 'this is npm test' },
          { match: /^npm run build$|^npm run build:agent$/, why: 'would rebuild dist/ under the tests that are running (npm test built it first: pretest)' },
          { match: /^bash scripts\/arm-test\.sh/, why: 'ARM emulation under qemu takes minutes; CI runs it after npm test' },
          { match: /^npm run bench/, why: 'benchmarks are never part of npm test' },
          { match: /^npm run lint$/, why: 'npm test ran it first (pretest)' },
          { match: /^docker /, why: 'no Docker engine runs here; test/images.test.ts checks the Dockerfiles and compose.yaml instead' },
        ],
        services: [
          // the alternative way to run the portal: started, ready, stopped
          { match: /DATABASE_URL=.*mesh-portal/, ready: /^mesh-portal ready /m, stopped: /"event":"portal stopped"/, stopWhenReady: true },
          { match: /mesh-portal/, ready: /^mesh-portal ready /m, stopped: /"event":"portal stopped"/ },
          { match: /mesh-agent run/, ready: /^mesh-agent ready /m, stopped: /"event":"connection","device":"[^"]+","state":"stopped"/ },
        ],
        after: [
          {
            match: /DATABASE_URL=/,
            run: () => t.log('   the portal on PostgreSQL was ready with no user in DATABASE_URL and no $USER'),
          },
          {
            match: /^npx mesh config set thermostat setpoint=21$/,
            run: async () => {
              // the point of it all: the board applies the owner's setting
              const config = path.join(board, 'config.json');
              await eventually('the board applies setpoint=21', () => fs.existsSync(config) && (JSON.parse(fs.readFileSync(config, 'utf8')) as { thermostat?: { setpoint?: number } }).thermostat?.setpoint === 21);
            },
          },
        ],
      },
      cwd,
      (s) => t.log(s),
    );
    for (const s of r.skipped) t.log(`skipped ${s.command}\n    because ${s.why}`);
    t.deepEqual(r.unused, [], 'every substitution is still needed');
    t.true(r.ran.some((c) => c.startsWith('npx mesh config set')), 'the whole path ran');
    // the owner's home is the XDG default, not ~/.mesh
    t.true(fs.existsSync(path.join(home, '.local', 'share', 'mesh', 'profile.json')));
  } finally {
    await dropSchema(PG, schema);
    fs.rmSync(cwd, { recursive: true, force: true });
  }
});

/**
 * Power loss on the device, simulated by SIGKILL at random points while the agent's writers are
 * busy: config.json and state.json are always exactly some complete version, never empty or torn.
 * (A few kills here; scripts/powerloss-long.sh runs hundreds.)
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { version } from './fixtures/versions.js';

const writer = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'config-writer.js');
const KILLS = Number(process.env.POWERLOSS_KILLS ?? 8);

function once(dir: string, delayMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [writer, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    p.stdout.once('data', () => setTimeout(() => p.kill('SIGKILL'), delayMs));
    p.on('exit', (code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`writer exited ${code} ${signal}`))));
  });
}

test(`config.json and state.json survive ${KILLS} kill -9 during writes`, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-powerloss-'));
  try {
    for (let k = 0; k < KILLS; k++) {
      await once(dir, 20 + Math.floor(Math.random() * 200));
      const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { thermostat: { schedule: string } };
      const i = Number(config.thermostat.schedule.slice(1));
      t.true(i >= 1, 'a version number');
      t.deepEqual(config, version(i).config, `config.json is exactly version ${i}`);
      const state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')) as { n: number };
      t.true(Number.isInteger(state.n) && state.n >= 1);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

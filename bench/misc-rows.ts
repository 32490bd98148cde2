/**
 * In-process rows: Ed25519 verify/s through mesh/crypto.ts against raw node:crypto and
 * @noble/curves, and devices provisioned per second by provisionBatch.
 */
import * as nc from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { ed25519 } from '@noble/curves/ed25519.js';
import * as c from '../mesh/crypto.js';
import { provisionBatch } from '../provisioning/batch.js';
import { fmt, log, REPO, tempDir, type Line, type Options } from './util.js';

/**
 * Operations per second of each function, measured in short alternating slices (so other load on
 * the machine falls on all of them alike), about `ms` milliseconds each in total.
 */
function interleaved(fns: readonly (() => unknown)[], ms: number, sliceMs = 10): number[] {
  const n = fns.map(() => 0);
  const t = fns.map(() => 0);
  for (let round = 0; round * sliceMs < ms; round++) {
    fns.forEach((fn, i) => {
      const start = performance.now();
      const end = start + sliceMs;
      let now = start;
      let k = 0;
      while (now < end) {
        for (let j = 0; j < 16; j++) fn();
        k += 16;
        now = performance.now();
      }
      n[i] = (n[i] as number) + k;
      t[i] = (t[i] as number) + (now - start);
    });
  }
  return n.map((c, i) => c / ((t[i] as number) / 1000));
}

export async function verifyRow(o: Options): Promise<Line[]> {
  const ms = o.quick ? 1000 : 4000;
  const kp = c.ed25519KeyPair();
  const msg = c.randomBytes(256);
  const sig = c.ed25519Sign(kp.privateKey, msg);
  const keyObj = nc.createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), kp.publicKey]), format: 'der', type: 'spki' });
  const msgBuf = Buffer.from(msg);
  const sigBuf = Buffer.from(sig);
  if (!c.ed25519Verify(kp.publicKey, msg, sig) || !nc.verify(null, msgBuf, keyObj, sigBuf) || !ed25519.verify(sig, msg, kp.publicKey)) throw new Error('verify self-check failed');
  interleaved([() => nc.verify(null, msgBuf, keyObj, sigBuf), () => c.ed25519Verify(kp.publicKey, msg, sig)], 200); // warm-up
  const [n = NaN, v = NaN] = interleaved([() => nc.verify(null, msgBuf, keyObj, sigBuf), () => c.ed25519Verify(kp.publicKey, msg, sig)], ms);
  const [nb = NaN] = interleaved([() => ed25519.verify(sig, msg, kp.publicKey)], ms / 8);
  const ratio = v / n;
  return [
    {
      figure: 'Ed25519 verify/s through our crypto module (256 B message)',
      value: `${fmt.int(v)}/s (${fmt.x(ratio)})`,
      baseline: `${fmt.int(n)}/s node:crypto; ${fmt.int(nb)}/s @noble/curves`,
      target: '>= 0.9x native',
      pass: ratio >= 0.9,
      data: { ours: v, native: n, noble: nb, ratio, ms },
    },
  ];
}

export async function provisionRow(o: Options): Promise<Line[]> {
  const count = o.quick ? 64 : 1000;
  const base = tempDir('provision');
  const out = path.join(base, 'batch');
  const schema = JSON.parse(fs.readFileSync(path.join(REPO, 'examples', 'thermostat.schema.json'), 'utf8')) as unknown;
  try {
    const r = await provisionBatch({ count, model: 'thermostat', out, portal: 'https://portal.example', schemas: { thermostat: schema } });
    log(`provision: ${r.count} devices in ${r.seconds.toFixed(2)} s`);
    return [
      {
        figure: 'devices provisioned per second in a batch',
        value: `${r.devicesPerSecond.toFixed(1)}/s (${r.count} devices)`,
        baseline: '-',
        target: 'report',
        pass: null,
        data: { count: r.count, seconds: r.seconds, devicesPerSecond: r.devicesPerSecond },
      },
    ];
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
}

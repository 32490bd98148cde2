/**
 * The owner app: its JavaScript gzipped (dist/web/app.js, built by scripts/build-web.mjs) against
 * 250 KB, and the time to interactive of its first screen in Debian's Chromium (playwright-core)
 * served by a real portal: from navigation start until the app has rendered its first screen
 * (its mark mesh-interactive; the page then answers input), median of several cold loads (a new browser
 * context each time: no cache), against 1 s.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { startPortalProcess } from '../harness/portal-process.js';
import { DIST, fmt, type Line, type Options } from './util.js';

const LIMIT_GZ = 250 * 1000;
const LIMIT_MS = 1000;

export async function webRow(o: Options): Promise<Line[]> {
  const js = fs.readFileSync(path.join(DIST, 'web', 'app.js'));
  const gz = gzipSync(js, { level: 9 }).length;
  const runs = o.quick ? 5 : 15;
  const portal = await startPortalProcess({ args: ['--no-mqtt'] });
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  const times: number[] = [];
  try {
    for (let i = 0; i < runs + 1; i++) {
      const ctx = await browser.newContext({ viewport: { width: 360, height: 740 } });
      const page = await ctx.newPage();
      await page.goto(`${portal.http}/`);
      await page.getByRole('heading', { name: 'Your devices, your keys' }).waitFor();
      // the app marks the moment its first screen is up (web/main.ts)
      const ms = (await page.evaluate("performance.getEntriesByName('mesh-interactive')[0]?.startTime ?? NaN")) as number;
      if (!Number.isFinite(ms)) throw new Error('the app did not mark mesh-interactive');
      if (i > 0) times.push(ms); // the first load warms the portal and the browser process
      await ctx.close();
    }
  } finally {
    await browser.close();
    await portal.stop();
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)] as number;
  const worst = times[times.length - 1] as number;
  return [
    {
      figure: 'owner app JavaScript, gzipped (dist/web/app.js)',
      value: `${fmt.int(gz / 1000)} KB (${fmt.int(js.length / 1000)} KB raw)`,
      baseline: '-',
      target: `<= ${LIMIT_GZ / 1000} KB`,
      pass: gz <= LIMIT_GZ,
      data: { gzipBytes: gz, rawBytes: js.length },
    },
    {
      figure: `owner app time to interactive (first screen rendered), median of ${runs} cold loads, Chromium`,
      value: `${fmt.int(median)} ms (worst ${fmt.int(worst)} ms)`,
      baseline: '-',
      target: `< ${LIMIT_MS} ms`,
      pass: median < LIMIT_MS,
      data: { medianMs: median, worstMs: worst, runs: times },
    },
  ];
}

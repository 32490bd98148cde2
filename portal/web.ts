/**
 * The owner app (web/, built into dist/web by scripts/build-web.mjs), served by the portal at `/`:
 * a few static files read once at start, each answered with a strict Content-Security-Policy (its
 * own scripts and styles only, no inline script, no other origin, no frames). The claim and
 * invitation addresses (/claim#..., /invite#...) open the app too: the secret stays in the
 * fragment, which the browser never sends, and the app reads it there. Without the app (--web
 * none, or no build) those two addresses answer the static pages of claim-page.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MeshError } from '../mesh/errors.js';

export const WEB_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "media-src 'self' blob:",
  "connect-src 'self'",
  "worker-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.txt': 'text/plain; charset=utf-8',
};

export interface Page {
  readonly status: number;
  readonly type: string;
  readonly body: string;
  readonly headers?: Readonly<Record<string, string>>;
}

const HEADERS = {
  'content-security-policy': WEB_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'permissions-policy': 'camera=(self), microphone=(), geolocation=()',
};

/** The app's files (a flat directory with index.html), as routes for the portal's HTTP front. */
export function loadWebApp(dir: string): Record<string, () => Promise<Page>> {
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => Object.hasOwn(TYPES, path.extname(n)));
  } catch (e) {
    throw new MeshError('not-found', `the owner app's directory ${dir} cannot be read (${(e as Error).message}); build it with node scripts/build-web.mjs, or start with --web none`);
  }
  if (!names.includes('index.html')) throw new MeshError('not-found', `${dir} holds no index.html: it is not the owner app (node scripts/build-web.mjs builds it into dist/web)`);
  const routes: Record<string, () => Promise<Page>> = {};
  for (const n of names) {
    const page: Page = { status: 200, type: TYPES[path.extname(n)] as string, body: fs.readFileSync(path.join(dir, n), 'utf8'), headers: HEADERS };
    routes[`/${n}`] = async () => page;
  }
  const index = routes['/index.html'] as () => Promise<Page>;
  routes['/'] = index;
  routes['/claim'] = index;
  routes['/invite'] = index;
  return routes;
}

/** Where the built app is when no --web is given: dist/web beside dist/portal (undefined when it is not built). */
export function defaultWebDir(): string | undefined {
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'web');
  return fs.existsSync(path.join(dir, 'index.html')) ? dir : undefined;
}

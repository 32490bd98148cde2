/**
 * The project's version, for `--version` and the `mesh_build_info` metric: from package.json next
 * to dist/, or, in the single-file agent (scripts/build-agent.mjs), the value esbuild wrote in.
 */
import { readFileSync } from 'node:fs';

declare const __MESH_VERSION__: string | undefined;

function fromPackageJson(): string {
  try {
    // dist/runtime/version.js -> ../../package.json (the repository, or the installed package)
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

export const VERSION: string = typeof __MESH_VERSION__ === 'string' ? __MESH_VERSION__ : fromPackageJson();

/** e.g. "mesh-portal 0.1.0 (Node.js v20.20.2, linux-x64)" */
export function versionLine(program: string): string {
  return `${program} ${VERSION} (Node.js ${process.version}, ${process.platform}-${process.arch})`;
}

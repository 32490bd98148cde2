/**
 * Where things live by default, following the XDG Base Directory Specification (0.8) for people
 * and the FHS for services:
 *
 *   owner (mesh)          --home, else $MESH_HOME, else $XDG_DATA_HOME/mesh (~/.local/share/mesh);
 *                         an existing ~/.mesh (the old default) is still used while the new one does not exist
 *   portal (mesh-portal)  --data, else $MESH_PORTAL_DATA, else $STATE_DIRECTORY (systemd's StateDirectory=),
 *                         else /var/lib/mesh-portal when run as root, else $XDG_DATA_HOME/mesh-portal
 *
 * Never the current directory: the same command run from another folder must find the same files.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** $XDG_DATA_HOME if it is an absolute path (the spec says relative ones are to be ignored), else ~/.local/share. */
export function xdgDataHome(env: NodeJS.ProcessEnv = process.env): string {
  const x = env.XDG_DATA_HOME;
  return x !== undefined && path.isAbsolute(x) ? x : path.join(homeOf(env), '.local', 'share');
}

function homeOf(env: NodeJS.ProcessEnv): string {
  const h = env.HOME;
  return h !== undefined && path.isAbsolute(h) ? h : os.homedir();
}

/** The owner's home directory (see above), resolved to an absolute path. */
export function ownerHome(option: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (option !== undefined) return path.resolve(option);
  const m = env.MESH_HOME;
  if (m !== undefined && m.length > 0) return path.resolve(m);
  const xdg = path.join(xdgDataHome(env), 'mesh');
  const legacy = path.join(homeOf(env), '.mesh');
  if (!fs.existsSync(xdg) && fs.existsSync(path.join(legacy, 'profile.json'))) return legacy;
  return xdg;
}

/** The portal's default data directory when --data is not given (see above). */
export function portalDataDir(env: NodeJS.ProcessEnv = process.env, uid: number = process.getuid?.() ?? -1): string {
  const sd = env.STATE_DIRECTORY;
  // systemd may list several directories separated by ':'; the first is ours
  const first = sd?.split(':')[0];
  if (first !== undefined && path.isAbsolute(first)) return first;
  if (uid === 0) return '/var/lib/mesh-portal';
  return path.join(xdgDataHome(env), 'mesh-portal');
}

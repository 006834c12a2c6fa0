import { homedir, platform } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * Everything Latchkey writes for a user lives under one directory, `LATCHKEY_HOME`, so that
 * `LATCHKEY_HOME=/tmp/x` is a separate profile. Default: the per-user config directory.
 */
export function latchkeyHome(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.LATCHKEY_HOME?.trim();
  // A leading `~` is the home directory: a quoted "~/x" in a systemd unit, an .env file or a
  // crontab reaches us unexpanded, and would otherwise be a directory named "~" under the cwd.
  // A relative path is taken from the current directory (messages always name the absolute path).
  if (explicit) return resolve(expandTilde(explicit));
  if (platform() === 'darwin') return join(homedir(), 'Library', 'Application Support', 'latchkey');
  if (platform() === 'win32') return join(env.APPDATA ?? join(homedir(), 'AppData', 'Roaming'), 'latchkey');
  const xdg = env.XDG_CONFIG_HOME;
  return join(xdg && xdg.trim() !== '' ? xdg : join(homedir(), '.config'), 'latchkey');
}

/**
 * How messages name a profile directory: `LATCHKEY_HOME=/x` when the variable chose it (what the
 * operator typed), otherwise `the latchkey home /x`.
 */
export function homeLabel(home: string, env: NodeJS.ProcessEnv = process.env): string {
  return env.LATCHKEY_HOME?.trim() && latchkeyHome(env) === home ? `LATCHKEY_HOME=${home}` : `the latchkey home ${home}`;
}

export interface HomePaths {
  home: string;
  config: string;
  store: string;
  locks: string;
  health: string;
  keeperState: string;
  keeperLock: string;
}

/** The files of a profile directory (config, store, health report, locks). */
export function homePaths(home: string): HomePaths {
  return {
    home,
    config: join(home, 'config.json'),
    store: join(home, 'store.json'),
    locks: join(home, 'locks'),
    health: join(home, 'health.json'),
    keeperState: join(home, 'keeper-state.json'),
    keeperLock: join(home, 'locks', 'keeper.lock'),
  };
}

/** `~` and `~/…` (and `~\\…` on Windows) as the user's home directory; anything else unchanged. */
export function expandTilde(path: string): string {
  if (path === '~') return homedir();
  if (path.startsWith('~/') || (platform() === 'win32' && path.startsWith('~\\'))) return join(homedir(), path.slice(2));
  return path;
}

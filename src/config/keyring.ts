/**
 * `keyring:service/account` secret references, through `@napi-rs/keyring` (loaded lazily, so a
 * config without keyring references never loads the native module): the Secret Service on
 * Linux (GNOME Keyring, KeePassXC), the Keychain on macOS, the Credential Manager on Windows.
 *
 * On Linux the Secret Service is required by default. The library would otherwise fall back
 * silently to the kernel keyring (keyutils), whose entries vanish at logout or reboot and are
 * invisible to a daemon in another session: a `latchkey secrets set` that "worked" and a keeper
 * that cannot read it. `LATCHKEY_KEYRING=keyutils` (or `auto`) opts into that on purpose.
 *
 * Every call is bounded (a keyring waiting on an unlock prompt nobody sees must not hang a
 * job); messages name the reference and never the value.
 */
import type { AsyncEntry, EntryOptions } from '@napi-rs/keyring';
import { LatchkeyError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { sanitizeRemoteText } from '../core/sanitize.js';

/** How long one keyring call may take (default 15 s; `LATCHKEY_KEYRING_TIMEOUT_MS`). */
export const DEFAULT_KEYRING_TIMEOUT_MS = 15_000;

export const KEYRING_FIX =
  'run a Secret Service and unlock it (GNOME Keyring or KeePassXC; on a headless box: `dbus-run-session -- sh -c \'echo <password> | gnome-keyring-daemon --unlock --components=secrets; latchkey ...\'`), or use an env: or file: reference instead';

/** Which Linux credential store to use (`LATCHKEY_KEYRING`). */
export type LinuxKeyringChoice = 'secret-service' | 'keyutils' | 'auto';

interface KeyringOptions {
  env?: NodeJS.ProcessEnv;
}

/** Reads `keyring:service/account` from the OS keyring. */
export async function readKeyringSecret(ref: string, options: KeyringOptions = {}): Promise<Secret> {
  const value = await withEntry(ref, options, 'read', (entry, signal) => entry.getPassword(signal));
  if (value === null || value === undefined || value === '') {
    throw new LatchkeyError('LK_SECRET_UNRESOLVED', `secret reference ${ref}: no entry in the keyring`, {
      operatorAction: 'replace_token',
      fix: `latchkey secrets set ${ref}`,
    });
  }
  return new Secret(value);
}

/** Stores `value` under `keyring:service/account` (replacing what was there). */
export async function writeKeyringSecret(ref: string, value: Secret, options: KeyringOptions = {}): Promise<void> {
  await withEntry(ref, options, 'write', (entry, signal) => entry.setPassword(value.reveal(), signal));
}

/** Deletes the entry; resolves false when there was none. */
export async function deleteKeyringSecret(ref: string, options: KeyringOptions = {}): Promise<boolean> {
  return withEntry(ref, options, 'delete', (entry, signal) => entry.deleteCredential(signal));
}

/** The Linux store named by `LATCHKEY_KEYRING` (default: the Secret Service, no fallback). */
export function linuxKeyringChoice(env: NodeJS.ProcessEnv = process.env): LinuxKeyringChoice {
  const v = env.LATCHKEY_KEYRING?.trim();
  if (v === 'keyutils' || v === 'auto') return v;
  return 'secret-service';
}

function entryOptions(env: NodeJS.ProcessEnv): EntryOptions | undefined {
  if (process.platform !== 'linux') return undefined;
  const choice = linuxKeyringChoice(env);
  return choice === 'auto' ? undefined : { linux: { store: choice } };
}

async function withEntry<T>(ref: string, options: KeyringOptions, verb: 'read' | 'write' | 'delete', op: (entry: AsyncEntry, signal: AbortSignal) => Promise<T>): Promise<T> {
  const env = options.env ?? process.env;
  const { service, account } = parseKeyringRef(ref);
  const timeoutMs = keyringTimeout(env);
  let mod: typeof import('@napi-rs/keyring');
  try {
    mod = await import('@napi-rs/keyring');
  } catch (err) {
    throw new LatchkeyError('LK_KEYRING', `secret reference ${ref}: the keyring module could not be loaded on this platform (${(err as Error).message}); use an env: or file: reference instead`, {
      operatorAction: 'replace_token',
      cause: err,
    });
  }
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(
        new LatchkeyError('LK_KEYRING', `secret reference ${ref}: the keyring did not answer within ${timeoutMs} ms (is it locked and waiting for an unlock prompt?)`, {
          operatorAction: 'replace_token',
          fix: KEYRING_FIX,
        }),
      );
    }, timeoutMs);
  });
  try {
    const entry = new mod.AsyncEntry(service, account, entryOptions(env));
    return await Promise.race([op(entry, controller.signal), timeout]);
  } catch (err) {
    if (err instanceof LatchkeyError) throw err;
    throw keyringError(ref, verb, err);
  } finally {
    clearTimeout(timer);
  }
}

function keyringTimeout(env: NodeJS.ProcessEnv): number {
  const n = Number(env.LATCHKEY_KEYRING_TIMEOUT_MS);
  return Number.isInteger(n) && n > 0 ? n : DEFAULT_KEYRING_TIMEOUT_MS;
}

/** Turns the library's platform error into one line that says what is wrong and the fix. */
export function keyringError(ref: string, verb: 'read' | 'write' | 'delete', err: unknown): LatchkeyError {
  const detail = sanitizeRemoteText((err as Error)?.message ?? String(err), 300);
  let what: string;
  if (/prompt was dismissed|locked/i.test(detail)) {
    what = 'the keyring is locked (unlock it: log in to the desktop session, or `gnome-keyring-daemon --unlock`)';
  } else if (/no result found/i.test(detail)) {
    what = 'the Secret Service has no default keyring (create or unlock one: `gnome-keyring-daemon --unlock`)';
  } else if (/dbus|org\.freedesktop|autolaunch|DBUS_SESSION_BUS_ADDRESS|platform storage|no such (file|interface)|service unknown/i.test(detail)) {
    what = 'no Secret Service is reachable on the session D-Bus';
  } else {
    what = 'the OS keyring refused the request';
  }
  return new LatchkeyError('LK_KEYRING', `secret reference ${ref}: cannot ${verb} the keyring entry: ${what} (${detail})`, {
    operatorAction: 'replace_token',
    fix: KEYRING_FIX,
    cause: err,
  });
}

/** `keyring:service/account` → its two parts (the one place this reference form is parsed). */
export function parseKeyringRef(ref: string): { service: string; account: string } {
  const body = ref.slice('keyring:'.length);
  const slash = body.indexOf('/');
  if (slash <= 0 || slash === body.length - 1) {
    throw new LatchkeyError('LK_SECRET_UNRESOLVED', `secret reference ${ref}: expected keyring:service/account`);
  }
  return { service: body.slice(0, slash), account: body.slice(slash + 1) };
}

import { LatchkeyError } from '../errors.js';
import { Secret } from '../secret.js';
import { parseKeyringRef } from './secret-ref.js';

/** Reads `keyring:service/account` from the OS keyring (Secret Service, Keychain, Credential Manager). */
export async function readKeyringSecret(ref: string): Promise<Secret> {
  const { service, account } = parseKeyringRef(ref);
  const { Entry } = await import('@napi-rs/keyring');
  let value: string | null | undefined;
  try {
    value = new Entry(service, account).getPassword();
  } catch (err) {
    throw new LatchkeyError('LK_KEYRING', `secret reference ${ref}: the OS keyring is not available (${(err as Error).message}). ${KEYRING_FIX}`, {
      operatorAction: 'replace_token',
    });
  }
  if (value === null || value === undefined || value === '') {
    throw new LatchkeyError('LK_SECRET_UNRESOLVED', `secret reference ${ref}: no entry in the keyring. Fix: latchkey secrets set ${ref}`, {
      operatorAction: 'replace_token',
    });
  }
  return new Secret(value);
}

export const KEYRING_FIX =
  'On Linux a Secret Service must be running (GNOME Keyring or KeePassXC); on a headless box: `dbus-run-session -- sh -c "echo pw | gnome-keyring-daemon --unlock && latchkey ..."`, or use an env: or file: reference instead';

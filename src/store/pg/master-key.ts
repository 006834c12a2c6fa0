import { LatchkeyError } from '../../core/errors.js';
import { Secret } from '../../core/secret.js';
import { parseMasterKey, type MasterKey } from './envelope.js';

/** Where a secret reference may point (the value behind it is the base64 key). */
const REFERENCE = /^(env|file|keyring):/;

/**
 * The store's master key from `LATCHKEY_MASTER_KEY`: 32 random bytes in base64 (as
 * `openssl rand -base64 32` prints them), or a secret reference to them (`env:NAME`,
 * `file:/path`, `keyring:service/account`). Missing or malformed: LK_STORE_KEY, naming the
 * variable (never the value).
 */
export async function masterKeyFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<MasterKey> {
  const raw = env.LATCHKEY_MASTER_KEY;
  if (raw === undefined || raw.trim() === '') {
    throw new LatchkeyError(
      'LK_STORE_KEY',
      'the PostgreSQL store seals its secrets with a master key, and LATCHKEY_MASTER_KEY is not set: set it to 32 random bytes in base64 (openssl rand -base64 32), or to a reference (env:NAME, file:/path, keyring:service/account); the same key on every machine of the store',
      { fix: 'export LATCHKEY_MASTER_KEY="$(openssl rand -base64 32)"' },
    );
  }
  const value = raw.trim();
  if (REFERENCE.test(value)) {
    const { resolveSecretRef } = await import('../../config/secret-ref.js');
    return parseMasterKey(await resolveSecretRef(value, env), `LATCHKEY_MASTER_KEY (${value})`);
  }
  return parseMasterKey(new Secret(value), 'LATCHKEY_MASTER_KEY');
}

import { LatchkeyError } from '../../core/errors.js';
import { Secret } from '../../core/secret.js';
import { parseMasterKey, type MasterKey, type MasterKeyring } from './envelope.js';
import { masterKeyFromEnv } from './master-key.js';

/** Where a secret reference may point (the value behind it is the base64 key). */
const REFERENCE = /^(env|file|keyring):/;

/**
 * The keyring a PostgreSQL store opens values with: `LATCHKEY_MASTER_KEY` seals every new value;
 * `LATCHKEY_MASTER_KEY_OTHER` (one or more keys, comma-separated, each a base64 key or a secret
 * reference) only opens values, never seals. During a key rotation it holds the other key of the
 * two: first the new one (every process can open what `latchkey rotate-key` re-wraps while still
 * sealing with the old), then the old one (once processes seal with the new). See "Key rotation"
 * in docs/DESIGN.md. Without it the ring is `LATCHKEY_MASTER_KEY` alone. Errors name the
 * variable and the position, never a value.
 */
export async function masterKeyringFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<MasterKeyring> {
  const current = await masterKeyFromEnv(env);
  const raw = env.LATCHKEY_MASTER_KEY_OTHER?.trim();
  if (raw === undefined || raw === '') return { current };
  const previous = new Map<string, MasterKey>();
  const parts = raw.split(',').map((p) => p.trim());
  for (const [i, part] of parts.entries()) {
    const from = `LATCHKEY_MASTER_KEY_OTHER (key ${i + 1} of ${parts.length}${REFERENCE.test(part) ? `, ${part}` : ''})`;
    if (part === '') throw new LatchkeyError('LK_STORE_KEY', `${from} is empty: list the old keys separated by commas, nothing else`);
    let key: MasterKey;
    if (REFERENCE.test(part)) {
      const { resolveSecretRef } = await import('../../config/secret-ref.js');
      key = parseMasterKey(await resolveSecretRef(part, env), from);
    } else {
      key = parseMasterKey(new Secret(part), from);
    }
    if (key.id !== current.id) previous.set(key.id, key);
  }
  return { current, previous };
}

/** The shared store of a fleet bench: migrated once, the grant installed through one machine's home. */
import { openLatchkey, type GrantInput } from '../../src/index.js';

/**
 * Prepares the store `storeEnv.LATCHKEY_STORE` names for a run and installs `grant` for `source`
 * through `home` (the same path as `latchkey import`).
 */
export async function prepareFleetStore(home: string, storeEnv: Record<string, string>, source: string, grant: GrantInput): Promise<void> {
  const lk = await openLatchkey({ home, env: storeEnv });
  try {
    await lk.installGrant(source, grant);
  } finally {
    await lk.close();
  }
}

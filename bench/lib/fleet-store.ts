/** The shared store of a fleet bench: PostgreSQL from LATCHKEY_STORE, migrated once, the grant installed through one machine's home. */
import { openLatchkey, type GrantInput, type Latchkey } from '../../src/index.js';
import { PgStore } from '../../src/store/pg/pg-store.js';

/** Opens Latchkey on `home` as a user does: the store is the one `env.LATCHKEY_STORE` names (sealed with `env.LATCHKEY_MASTER_KEY`). */
export async function openFleetLatchkey(home: string, env: NodeJS.ProcessEnv, options: Omit<Parameters<typeof openLatchkey>[0] & object, 'home' | 'env' | 'store'> = {}): Promise<Latchkey> {
  if (env.LATCHKEY_STORE === undefined) throw new Error('LATCHKEY_STORE is not set');
  return openLatchkey({ ...options, home, env });
}

/** Migrates the store `storeEnv.LATCHKEY_STORE` names and installs `grant` for `source` through `home` (as `latchkey import` does). */
export async function prepareFleetStore(home: string, storeEnv: Record<string, string>, source: string, grant: GrantInput): Promise<void> {
  const url = storeEnv.LATCHKEY_STORE;
  if (url === undefined) throw new Error('LATCHKEY_STORE is not set');
  const store = new PgStore({ url, env: storeEnv });
  try {
    await store.migrate();
  } finally {
    await store.close();
  }
  const lk = await openFleetLatchkey(home, storeEnv);
  try {
    await lk.installGrant(source, grant);
  } finally {
    await lk.close();
  }
}

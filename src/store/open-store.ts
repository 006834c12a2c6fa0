import { LatchkeyError } from '../core/errors.js';
import { FileStore } from './file-store.js';
import type { Store } from './store.js';
import type { StoreUrl } from './pg/url.js';
import type { PgStore, PgStoreOptions } from './pg/pg-store.js';

/** Where the store is chosen from: the environment, the config's `store` section, the profile's paths. */
export interface StoreChoice {
  env: NodeJS.ProcessEnv;
  /** The config's `store` section (`{ "url": "env:LATCHKEY_PG_URL" }`), if any. */
  config?: { url: string };
  /** The file store's paths (the default). */
  paths: { store: string; locks: string };
}

/** True when the environment or the config selects a store other than the profile's file store. */
export function storeConfigured(env: NodeJS.ProcessEnv, config: { url: string } | undefined): boolean {
  return (env.LATCHKEY_STORE !== undefined && env.LATCHKEY_STORE.trim() !== '') || config !== undefined;
}

/**
 * The store every command and `openLatchkey` use: `LATCHKEY_STORE=postgres://…` (this machine's
 * choice, so it wins), else the config's `store.url` (a secret reference to the URL: it carries
 * a password), else the file store under the profile (the default). The PostgreSQL store
 * connects on first use; a URL that does not connect fails then (LK_UNREACHABLE, exit 3, naming
 * host and database, never the password).
 */
export async function openStore(choice: StoreChoice): Promise<Store> {
  const url = await storeUrl(choice);
  if (url === undefined) return new FileStore({ path: choice.paths.store, locksDir: choice.paths.locks });
  const { PgStore } = await import('./pg/pg-store.js');
  return new PgStore({ url, env: choice.env });
}

/**
 * The PostgreSQL URL chosen (unprintable: it may carry a password), or undefined for the file
 * store. Not a `Secret`: the sanitizer would then redact its host and database from every
 * message; its password alone is registered when it is parsed.
 */
export async function storeUrl(choice: Pick<StoreChoice, 'env' | 'config'>): Promise<StoreUrl | undefined> {
  const fromEnv = choice.env.LATCHKEY_STORE?.trim();
  const { isPostgresUrl, StoreUrl } = await import('./pg/url.js');
  if (fromEnv !== undefined && fromEnv !== '') {
    if (!isPostgresUrl(fromEnv)) {
      // Not echoed: a mistyped URL may still carry a password.
      throw new LatchkeyError('LK_CONFIG_INVALID', 'LATCHKEY_STORE must be a PostgreSQL URL (postgres://user:password@host:port/database); unset it to use the file store under LATCHKEY_HOME');
    }
    return new StoreUrl(fromEnv);
  }
  if (choice.config === undefined) return undefined;
  const url = new StoreUrl(await referencedUrl(choice.config.url, choice.env));
  if (!isPostgresUrl(url.reveal())) {
    throw new LatchkeyError('LK_CONFIG_INVALID', `store.url (${choice.config.url}) must hold a PostgreSQL URL (postgres://user:password@host:port/database)`);
  }
  return url;
}

/** The text behind `store.url`'s reference: env: and file: read plainly; keyring: through the resolver. */
async function referencedUrl(ref: string, env: NodeJS.ProcessEnv): Promise<string> {
  const { plainSecretValue } = await import('../config/secret-value.js');
  const { readRegularFileSync } = await import('./read-file-sync.js');
  const { MAX_SECRET_FILE_BYTES } = await import('./regular-file.js');
  let plain: string | undefined;
  try {
    plain = plainSecretValue(ref, env, (path) => readRegularFileSync(path, { maxBytes: MAX_SECRET_FILE_BYTES }).text);
  } catch {
    plain = undefined; // the resolver below says what is wrong with the file
  }
  if (plain !== undefined) return plain;
  // keyring:, or an env:/file: reference without a value: the resolver's value or its error.
  const { resolveSecretRef } = await import('../config/secret-ref.js');
  return (await resolveSecretRef(ref, env)).reveal();
}

/**
 * Opens the PostgreSQL store at `options.url` (`postgres://user:password@host:port/database[?schema=name]`),
 * loading the driver only now. Experimental (fleet mode). Run `store.migrate()` (or
 * `latchkey migrate`) once per store; pass the store to `openLatchkey({ store })`.
 */
export async function openPostgresStore(options: PgStoreOptions): Promise<PgStore> {
  const { PgStore: Pg } = await import('./pg/pg-store.js');
  return new Pg(options);
}

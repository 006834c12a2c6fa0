import { LatchkeyError } from '../../core/errors.js';
import { Redacted } from '../../core/redacted.js';
import { Secret } from '../../core/secret.js';

/**
 * A connection URL held without being printable (`[redacted]` in any string, JSON or inspect),
 * like a {@link Secret}, but not registered with the sanitizer as a whole: its host and database
 * must stay readable in messages. Its password alone is registered (see {@link parsePgUrl}).
 */
export class StoreUrl extends Redacted {
  readonly #value: string;
  constructor(value: string) {
    super();
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
}

/** A PostgreSQL store URL taken apart: what to connect with (secret) and what to name in messages. */
export interface PgTarget {
  /** The URL given to `pg` (credentials included, `schema` taken out). */
  connectionString: StoreUrl;
  host: string;
  port: number;
  database: string;
  /** The PostgreSQL schema holding the store's tables (`?schema=`, default `latchkey`). */
  schema: string;
  /** For messages and `store.location`: `postgres://host:port/database?schema=…`, never a user or password. */
  location: string;
  /** The password alone, held so that the sanitizer redacts it from any text (a driver's message). */
  password?: Secret;
}

export const DEFAULT_SCHEMA = 'latchkey';
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** True for a `postgres://` or `postgresql://` URL (how `LATCHKEY_STORE` tells a database from a path). */
export function isPostgresUrl(value: string): boolean {
  return /^postgres(ql)?:\/\//i.test(value.trim());
}

/**
 * Parses a store URL. Errors name the part that is wrong and never echo the URL (it may carry a
 * password).
 */
export function parsePgUrl(url: { reveal(): string } | string): PgTarget {
  const text = (typeof url === 'string' ? url : url.reveal()).trim();
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new LatchkeyError('LK_CONFIG_INVALID', 'the PostgreSQL store URL is not a URL (expected postgres://user:password@host:port/database)');
  }
  if (!/^postgres(ql)?:$/i.test(u.protocol)) throw new LatchkeyError('LK_CONFIG_INVALID', `the store URL must start with postgres:// (it starts with ${u.protocol}//)`);
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (database === '') throw new LatchkeyError('LK_CONFIG_INVALID', 'the PostgreSQL store URL names no database (expected postgres://user:password@host:port/database)');
  const host = u.hostname === '' ? 'localhost' : u.hostname;
  const port = u.port === '' ? 5432 : Number(u.port);
  const schema = u.searchParams.get('schema') ?? DEFAULT_SCHEMA;
  if (!SCHEMA_NAME.test(schema)) throw new LatchkeyError('LK_CONFIG_INVALID', `the store URL's schema "${schema.slice(0, 70)}" is not a plain lower-case PostgreSQL name (letters, digits, _)`);
  u.searchParams.delete('schema');
  const location = `postgres://${host}:${port}/${encodeURIComponent(database)}${schema === DEFAULT_SCHEMA ? '' : `?schema=${schema}`}`;
  const password = u.password === '' ? undefined : new Secret(decodeURIComponent(u.password));
  return { connectionString: new StoreUrl(u.toString()), host, port, database, schema, location, ...(password ? { password } : {}) };
}

/** `"x"`: a schema name quoted as an SQL identifier (the name is already restricted to [a-z0-9_]). */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

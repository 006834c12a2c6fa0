import { LatchkeyError } from '../../core/errors.js';
import { quoteIdent } from './url.js';

/**
 * The PostgreSQL store's schema, as numbered migrations applied by `latchkey migrate` (in one
 * transaction, under a transaction-level advisory lock, so two machines migrating at once apply
 * each step once). Append, never edit: a store records the version it reached in
 * `schema_version`, and a store whose version is above {@link SCHEMA_VERSION} is refused.
 *
 * `$S` in the SQL is the quoted schema name.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'sources, entries, claims, leader',
    sql: `
CREATE TABLE $S.sources (
  name text PRIMARY KEY,
  version bigint NOT NULL,
  -- metadata, readable without the master key (listMeta, the keeper's due work)
  has_grant boolean NOT NULL DEFAULT false,
  expires_at double precision,
  obtained_at double precision,
  revoked jsonb,
  grant_meta jsonb,
  last_refresh_at double precision,
  refresh_count bigint,
  last_failure jsonb,
  session_updated_at double precision,
  -- secrets, each sealed (src/store/pg/envelope.ts) for its own row and column
  access_token bytea,
  refresh_token bytea,
  session_cookies bytea,
  key_id text,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sources_expires_at ON $S.sources (expires_at);
CREATE INDEX sources_key_id ON $S.sources (key_id);

CREATE TABLE $S.entries (
  keyspace text NOT NULL,
  id_hash bytea NOT NULL,
  value bytea NOT NULL,
  expires_at double precision NOT NULL,
  key_id text NOT NULL,
  PRIMARY KEY (keyspace, id_hash)
);
CREATE INDEX entries_expires_at ON $S.entries (expires_at);
CREATE INDEX entries_key_id ON $S.entries (key_id);

-- Claim before use (docs/DESIGN.md "Fleet mode: claim before use"): one row per lock key.
CREATE TABLE $S.claims (
  key text PRIMARY KEY,
  claim_id uuid,
  holder text,
  lease_until timestamptz,
  generation bigint NOT NULL DEFAULT 0,
  claimed_at timestamptz,
  -- after a takeover of a key that could not be stamped maybe-consumed: only the lost holder may claim until then
  quarantine_until timestamptz,
  quarantine_holder text
);

CREATE TABLE $S.leader (
  name text PRIMARY KEY,
  epoch bigint NOT NULL DEFAULT 0,
  holder_pid integer,
  holder_host text,
  at timestamptz
);

-- One round trip per claim attempt: claim, or say who holds it and for how long; take over an
-- expired lease, stamping the source maybe-consumed, or quarantining a key that is not a source.
CREATE FUNCTION $S.lk_claim(p_key text, p_claim uuid, p_holder text, p_lease_ms bigint)
RETURNS TABLE (status text, generation bigint, holder text, wait_ms bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
  r $S.claims%ROWTYPE;
  stamped integer;
BEGIN
  INSERT INTO $S.claims (key) VALUES (p_key) ON CONFLICT (key) DO NOTHING;
  SELECT * INTO r FROM $S.claims c WHERE c.key = p_key FOR UPDATE;
  IF r.claim_id IS NOT NULL AND r.lease_until > now() THEN
    RETURN QUERY SELECT 'busy'::text, r.generation, r.holder, ceil(extract(epoch FROM r.lease_until - now()) * 1000)::bigint;
    RETURN;
  END IF;
  IF r.quarantine_until IS NOT NULL AND r.quarantine_until > now() AND r.quarantine_holder IS DISTINCT FROM p_holder THEN
    RETURN QUERY SELECT 'quarantined'::text, r.generation, r.quarantine_holder, ceil(extract(epoch FROM r.quarantine_until - now()) * 1000)::bigint;
    RETURN;
  END IF;
  IF r.claim_id IS NOT NULL THEN
    -- The lease expired with the claim still set: the holder stopped or died, maybe after sending
    -- the refresh token. Its outcome is unknown: the stored refresh token may be consumed.
    UPDATE $S.sources s SET
      version = s.version + 1,
      updated_at = now(),
      last_failure = jsonb_build_object(
        'at', floor(extract(epoch FROM now()) * 1000)::bigint,
        'kind', 'transient',
        'maybeConsumed', true,
        'message', format('the previous holder of the refresh (%s, claim %s) lost its lease mid-refresh; the refresh token may have been consumed, so it is not sent again before the cool-down', r.holder, r.generation))
    WHERE s.name = p_key AND s.refresh_token IS NOT NULL;
    GET DIAGNOSTICS stamped = ROW_COUNT;
    IF stamped = 0 AND r.holder IS DISTINCT FROM p_holder THEN
      UPDATE $S.claims c SET claim_id = NULL, quarantine_until = r.lease_until + p_lease_ms * interval '1 millisecond', quarantine_holder = r.holder WHERE c.key = p_key;
      RETURN QUERY SELECT 'quarantined'::text, r.generation, r.holder, ceil(extract(epoch FROM r.lease_until + p_lease_ms * interval '1 millisecond' - now()) * 1000)::bigint;
      RETURN;
    END IF;
  END IF;
  UPDATE $S.claims c SET claim_id = p_claim, holder = p_holder, lease_until = now() + p_lease_ms * interval '1 millisecond',
    generation = r.generation + 1, claimed_at = now(), quarantine_until = NULL, quarantine_holder = NULL
  WHERE c.key = p_key;
  RETURN QUERY SELECT (CASE WHEN r.claim_id IS NOT NULL THEN 'taken_over' ELSE 'claimed' END)::text, r.generation + 1, r.holder, 0::bigint;
END
$fn$;
`,
  },
  {
    version: 2,
    name: 'master_keys (which master keys may seal)',
    sql: `
-- The master keys this store's values may be sealed with (by id; the key itself is never stored).
-- A writer whose key is not an active one here is refused before it seals anything, so a machine
-- with a wrong key can never leave rows only it can read. The first writer registers its key;
-- \`latchkey rotate-key\` adds the new one, re-wraps every value, then retires the old one.
CREATE TABLE $S.master_keys (
  id text PRIMARY KEY,
  -- a constant sealed with the key for this row: proves whoever registered it held the key
  check_value bytea NOT NULL,
  active boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  retired_at timestamptz
);
-- A store migrated from version 1 has no row here: its first writer registers its key only if no
-- stored value is sealed with another one (src/store/pg/pg-store.ts, sealing keys).
`,
  },
  {
    version: 3,
    name: 'keeper_state, keeper_report, sources.due_at (keeper leadership, due work)',
    sql: `
-- Keeper leadership (docs/DESIGN.md "Fleet mode: keeper leadership"): the leading keeper
-- publishes what health.json holds, one row per source plus one for the rest of the report, each
-- stamped with its leadership's epoch (the leader row's); standbys serve their dashboard from it.
-- A keeper whose epoch is older than the leader row's was deposed: its writes are refused.
CREATE TABLE $S.keeper_state (
  source text PRIMARY KEY,
  health jsonb NOT NULL,
  -- when the leader refreshes it next (ms epoch), as its report says
  due_at double precision,
  epoch bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE $S.keeper_report (
  id integer PRIMARY KEY CHECK (id = 1),
  report jsonb NOT NULL,
  epoch bigint NOT NULL,
  holder_pid integer,
  holder_host text,
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- Due work (src/store/pg/due-work.ts): the refresh-ahead due time (⅔ of the access token's
-- lifetime, or a day after the last exchange), kept by the database on every write, and a
-- partial index in due order over the grants that can be refreshed: a pick reads the due rows
-- from the front of the index and stops at its limit, whatever the number of sources.
ALTER TABLE $S.sources ADD COLUMN due_at double precision GENERATED ALWAYS AS (
  LEAST(CASE WHEN expires_at IS NULL THEN NULL ELSE obtained_at + (expires_at - obtained_at) * (2::float8 / 3::float8) END,
        GREATEST(COALESCE(last_refresh_at, 0::float8), obtained_at) + 86400000::float8)
) STORED;
CREATE INDEX sources_due ON $S.sources (due_at) WHERE has_grant AND refresh_token IS NOT NULL AND revoked IS NULL;
`,
  },
  {
    version: 4,
    name: 'lk_source_row (a claim reads the row it claimed in the same round trip)',
    sql: `
-- The claim statement is \`lk_claim(…) c LEFT JOIN LATERAL lk_source_row(key, c.status)\`: one round
-- trip claims a source and reads its row (a refresh's claim and its first locked read). The row is
-- read here, not by a join in the calling statement, because a volatile function takes a fresh
-- snapshot for each query: it is read after the claim was taken, so it holds every write the
-- previous claim committed (its writes commit before its release, and lk_claim waited for that);
-- the calling statement's own snapshot, taken before lk_claim ran, might not.
CREATE FUNCTION $S.lk_source_row(p_key text, p_status text) RETURNS SETOF $S.sources
LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
  IF p_status IN ('claimed', 'taken_over') THEN
    RETURN QUERY SELECT * FROM $S.sources s WHERE s.name = p_key;
  END IF;
END
$fn$;
`,
  },
];

/** The schema version this code reads and writes. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** A migration's SQL for `schema`. */
export function migrationSql(m: Migration, schema: string): string {
  return m.sql.replaceAll('$S', quoteIdent(schema));
}

/** What `latchkey migrate` did. */
export interface MigrateResult {
  schema: string;
  from: number;
  to: number;
  applied: string[];
}

/** A queryable connection (a pg Client or PoolClient). */
export interface Queryable {
  query<R extends Record<string, unknown> = Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
}

/**
 * Applies the migrations `schema` lacks, in one transaction (idempotent: a second run applies
 * nothing). A schema newer than this code is refused, unchanged.
 */
export async function migrate(client: Queryable, schema: string, location: string, begin = 'BEGIN'): Promise<MigrateResult> {
  const S = quoteIdent(schema);
  await client.query(begin);
  try {
    // Serialises concurrent migrations of the same schema (two machines running `latchkey migrate`).
    await client.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`latchkey migrate ${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${S}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${S}.schema_version (id integer PRIMARY KEY CHECK (id = 1), version integer NOT NULL, migrated_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query<{ version: number }>(`SELECT version FROM ${S}.schema_version WHERE id = 1`);
    const from = rows[0]?.version ?? 0;
    if (from > SCHEMA_VERSION) throw newerSchema(location, from);
    const applied: string[] = [];
    for (const m of MIGRATIONS) {
      if (m.version <= from) continue;
      await client.query(migrationSql(m, schema));
      applied.push(`${m.version}: ${m.name}`);
    }
    await client.query(`INSERT INTO ${S}.schema_version (id, version) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, migrated_at = now()`, [SCHEMA_VERSION]);
    await client.query('COMMIT');
    return { schema, from, to: SCHEMA_VERSION, applied };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

export function newerSchema(location: string, found: number): LatchkeyError {
  return new LatchkeyError(
    'LK_STORE_SCHEMA',
    `the store ${location} has schema version ${found}, newer than this Latchkey understands (${SCHEMA_VERSION}): upgrade Latchkey on this machine; nothing was changed`,
  );
}

/** Checks that `schema` is at this code's version (the check every store open makes once). */
export async function checkSchema(client: Queryable, schema: string, location: string): Promise<void> {
  let found: number | undefined;
  try {
    const { rows } = await client.query<{ version: number }>(`SELECT version FROM ${quoteIdent(schema)}.schema_version WHERE id = 1`);
    found = rows[0]?.version;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code !== '42P01' && code !== '3F000') throw err; // undefined table / schema
  }
  if (found === undefined || found < SCHEMA_VERSION) {
    throw new LatchkeyError(
      'LK_STORE_SCHEMA',
      found === undefined
        ? `the store ${location} has no Latchkey tables yet: run \`latchkey migrate\` once (with LATCHKEY_STORE set)`
        : `the store ${location} has schema version ${found}, older than this Latchkey's ${SCHEMA_VERSION}: run \`latchkey migrate\``,
      { fix: 'latchkey migrate' },
    );
  }
  if (found > SCHEMA_VERSION) throw newerSchema(location, found);
}

/**
 * Versioned schema migrations, applied on open in one transaction that holds a transaction-level
 * advisory lock for the schema, so instances starting together apply each migration once and the
 * losers then see it recorded in `schema_migrations`.
 */

import type { Logger } from 'pino';
import type { PgTables } from './pg-context.js';
import type { Queryable } from './pg-runner.js';

interface Migration {
  version: number;
  name: string;
  /** Runs with search_path set to the backend's schema. */
  sql: string;
}

/**
 * Key columns use the "C" collation: byte order is code point order, as SQLite compares keys, so
 * KEY_ASC and key-prefix ranges (key-prefix.ts) do not depend on the database's locale.
 * `messages.tsv` is filled by the backend (tsvector-literal.ts explains why it is not generated).
 * Message ids come from `message_seq`, never reused, drawn while the session row is locked.
 * The GIN pending list is capped at 512 kB: every search scans it, and at the 4 MB default a
 * rare-word search took 8 ms right after a burst of appends instead of 0.3 ms; appends/s did not
 * measurably change.
 */
const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'sessions, messages with a full-text index, idempotency records',
    sql: `
CREATE TABLE sessions (
  key           text COLLATE "C" PRIMARY KEY,
  name          text,
  created_at    timestamptz NOT NULL,
  last_activity timestamptz NOT NULL,
  message_count bigint NOT NULL DEFAULT 0
);
CREATE INDEX sessions_last_activity ON sessions (last_activity, key);

CREATE TABLE messages (
  id          bigint GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME message_seq) PRIMARY KEY,
  session_key text COLLATE "C" NOT NULL,
  role        text NOT NULL,
  content     text NOT NULL,
  created_at  timestamptz NOT NULL,
  tsv         tsvector NOT NULL
);
CREATE INDEX messages_session_id ON messages (session_key, id);
CREATE INDEX messages_tsv ON messages USING gin (tsv) WITH (gin_pending_list_limit = 512);

CREATE TABLE idempotency_records (
  session_key       text COLLATE "C" NOT NULL,
  client_message_id text NOT NULL,
  request_hash      text NOT NULL,
  seqs              bigint[] NOT NULL,
  created_at        timestamptz NOT NULL,
  PRIMARY KEY (session_key, client_message_id)
);
`,
  },
  {
    version: 2,
    name: 'change marks for instances that listen to each other',
    // change-notify.ts: the transaction that last changed a session, and the ones that deleted one,
    // so that a listener whose connection dropped finds what changed after a snapshot.
    sql: `
ALTER TABLE sessions ADD COLUMN change_xid xid8;
CREATE INDEX sessions_change_xid ON sessions (change_xid);

CREATE TABLE deleted_sessions (
  key        text COLLATE "C" PRIMARY KEY,
  change_xid xid8 NOT NULL,
  deleted_at timestamptz NOT NULL
);
CREATE INDEX deleted_sessions_change_xid ON deleted_sessions (change_xid);
CREATE INDEX deleted_sessions_deleted_at ON deleted_sessions (deleted_at);
`,
  },
];

/** pg_advisory_xact_lock's first key: ours; the second is the schema name's hash. */
const LOCK_CLASS = 0x5347_5047;

/** Applies what is missing; returns the versions applied now. */
export async function migrateSchema(client: Queryable, t: PgTables, logger?: Logger): Promise<number[]> {
  const schemaName = t.schema.slice(1, -1);
  await client.query('BEGIN');
  try {
    // Another instance may be migrating: wait for it longer than for a session row.
    await client.query("SET LOCAL lock_timeout = '300s'");
    await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_CLASS, schemaName]);
    const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schemaName]);
    // Only when missing: a role without CREATE on the database can use a schema made for it.
    if (exists.rowCount === 0) await client.query(`CREATE SCHEMA ${t.schema}`);
    await client.query(`SET LOCAL search_path TO ${t.schema}`);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = await client.query<{ version: number }>('SELECT version FROM schema_migrations');
    const have = new Set(done.rows.map((r) => r.version));
    const applied: number[] = [];
    for (const migration of MIGRATIONS) {
      if (have.has(migration.version)) continue;
      await client.query(migration.sql);
      await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
      applied.push(migration.version);
    }
    const known = Math.max(...MIGRATIONS.map((m) => m.version));
    const newest = Math.max(0, ...have);
    if (newest > known) {
      logger?.warn({ newest, known }, 'the database schema is newer than this sessiongraph build');
    }
    await client.query('COMMIT');
    if (applied.length > 0) logger?.info({ applied }, 'PostgreSQL schema migrated');
    return applied;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}

/**
 * zeroclaw's `sessions.db` schema, verbatim (seed 4607f22933 plus the HEAD additions), created
 * when missing the way zeroclaw does it: `IF NOT EXISTS` and column probing, no user_version.
 * A database zeroclaw made (either generation) opens unchanged apart from what zeroclaw HEAD would
 * itself add; what we write, zeroclaw reads.
 */

import type Database from 'better-sqlite3';

const SEED_SCHEMA = `
CREATE TABLE IF NOT EXISTS sessions (
   id          INTEGER PRIMARY KEY AUTOINCREMENT,
   session_key TEXT NOT NULL,
   role        TEXT NOT NULL,
   content     TEXT NOT NULL,
   created_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_sessions_key ON sessions(session_key);
CREATE INDEX IF NOT EXISTS idx_sessions_key_id ON sessions(session_key, id);

CREATE TABLE IF NOT EXISTS session_metadata (
   session_key  TEXT PRIMARY KEY,
   created_at   TEXT NOT NULL,
   last_activity TEXT NOT NULL,
   message_count INTEGER NOT NULL DEFAULT 0,
   name         TEXT
);

CREATE VIRTUAL TABLE IF NOT EXISTS sessions_fts USING fts5(
   session_key, content, content=sessions, content_rowid=id
);

CREATE TRIGGER IF NOT EXISTS sessions_ai AFTER INSERT ON sessions BEGIN
   INSERT INTO sessions_fts(rowid, session_key, content)
   VALUES (new.id, new.session_key, new.content);
END;
CREATE TRIGGER IF NOT EXISTS sessions_ad AFTER DELETE ON sessions BEGIN
   INSERT INTO sessions_fts(sessions_fts, rowid, session_key, content)
   VALUES ('delete', old.id, old.session_key, old.content);
END;
`;

const HEAD_SCHEMA = `
CREATE TABLE IF NOT EXISTS jsonl_import_receipts (
   source_name  TEXT PRIMARY KEY,
   session_key  TEXT NOT NULL,
   source_hash  TEXT NOT NULL,
   source_len   INTEGER NOT NULL,
   imported_at  TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS sessions_au AFTER UPDATE ON sessions BEGIN
   INSERT INTO sessions_fts(sessions_fts, rowid, session_key, content)
   VALUES ('delete', old.id, old.session_key, old.content);
   INSERT INTO sessions_fts(rowid, session_key, content)
   VALUES (new.id, new.session_key, new.content);
END;
`;

/** zeroclaw HEAD's later session_metadata columns, in the order it adds them. */
const METADATA_COLUMNS: ReadonlyArray<readonly [name: string, ddl: string]> = [
  ['name', 'ALTER TABLE session_metadata ADD COLUMN name TEXT'],
  ['state', "ALTER TABLE session_metadata ADD COLUMN state TEXT NOT NULL DEFAULT 'idle'"],
  ['turn_id', 'ALTER TABLE session_metadata ADD COLUMN turn_id TEXT'],
  ['turn_started_at', 'ALTER TABLE session_metadata ADD COLUMN turn_started_at TEXT'],
  ['agent_alias', 'ALTER TABLE session_metadata ADD COLUMN agent_alias TEXT'],
  ['channel_id', 'ALTER TABLE session_metadata ADD COLUMN channel_id TEXT'],
  ['room_id', 'ALTER TABLE session_metadata ADD COLUMN room_id TEXT'],
  ['sender_id', 'ALTER TABLE session_metadata ADD COLUMN sender_id TEXT'],
];

const METADATA_INDEXES = `
CREATE INDEX IF NOT EXISTS idx_session_metadata_agent_alias ON session_metadata(agent_alias);
CREATE INDEX IF NOT EXISTS idx_session_metadata_channel_id ON session_metadata(channel_id);
CREATE INDEX IF NOT EXISTS idx_session_metadata_room_id ON session_metadata(room_id);
CREATE INDEX IF NOT EXISTS idx_session_metadata_sender_id ON session_metadata(sender_id);
`;

/**
 * Our own tables. zeroclaw ignores tables it does not know, so these live beside its own.
 * Idempotency records: one row per (session, clientMessageId) with a hash of the request and the
 * seqs and timestamp of the first result, so a retry is answered without storing twice.
 */
const SESSIONGRAPH_SCHEMA = `
CREATE TABLE IF NOT EXISTS sessiongraph_idempotency (
   session_key       TEXT NOT NULL,
   client_message_id TEXT NOT NULL,
   request_hash      TEXT NOT NULL,
   seqs              TEXT NOT NULL,
   created_at        TEXT NOT NULL,
   PRIMARY KEY (session_key, client_message_id)
) WITHOUT ROWID;
`;

/** The pragmas zeroclaw sets, plus an explicit busy timeout. */
export function applyPragmas(db: Database.Database, busyTimeoutMs: number): void {
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('temp_store = MEMORY');
  db.pragma('mmap_size = 4194304');
  db.pragma(`busy_timeout = ${Math.max(5_000, Math.trunc(busyTimeoutMs))}`);
}

function columnNames(db: Database.Database, table: string): Set<string> {
  const rows = db.prepare('SELECT name FROM pragma_table_info(?)').all(table) as Array<{ name: string }>;
  return new Set(rows.map((r) => r.name));
}

/** Creates whatever of zeroclaw's schema (and ours) is missing. Idempotent; one transaction. */
export function ensureSchema(db: Database.Database): void {
  db.transaction(() => {
    db.exec(SEED_SCHEMA);
    db.exec(HEAD_SCHEMA);
    const have = columnNames(db, 'session_metadata');
    for (const [name, ddl] of METADATA_COLUMNS) if (!have.has(name)) db.exec(ddl);
    db.exec(METADATA_INDEXES);
    db.exec(SESSIONGRAPH_SCHEMA);
  }).immediate();
}

/**
 * zeroclaw's own SQLite schema and SQL, verbatim from the reference notes
 * (../shared/reference/zeroclaw-sessions.md sections 4.2-4.5), to build fixtures the way zeroclaw
 * builds them and to read back what we wrote the way zeroclaw reads it.
 */

import type Database from 'better-sqlite3';

/** seed 4607f22933 `session_sqlite.rs:39-70`, verbatim: no HEAD columns, no sessions_au. */
export const ZEROCLAW_SEED_DDL = `
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

/** HEAD 15d28660ff `session_sqlite.rs:74-179`: what HEAD adds on top of the seed schema. */
export const ZEROCLAW_HEAD_DDL = `
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
ALTER TABLE session_metadata ADD COLUMN state TEXT NOT NULL DEFAULT 'idle';
ALTER TABLE session_metadata ADD COLUMN turn_id TEXT;
ALTER TABLE session_metadata ADD COLUMN turn_started_at TEXT;
ALTER TABLE session_metadata ADD COLUMN agent_alias TEXT;
ALTER TABLE session_metadata ADD COLUMN channel_id TEXT;
ALTER TABLE session_metadata ADD COLUMN room_id TEXT;
ALTER TABLE session_metadata ADD COLUMN sender_id TEXT;
CREATE INDEX IF NOT EXISTS idx_session_metadata_agent_alias ON session_metadata(agent_alias);
CREATE INDEX IF NOT EXISTS idx_session_metadata_channel_id ON session_metadata(channel_id);
CREATE INDEX IF NOT EXISTS idx_session_metadata_room_id ON session_metadata(room_id);
CREATE INDEX IF NOT EXISTS idx_session_metadata_sender_id ON session_metadata(sender_id);
`;

/** zeroclaw's pragmas (`session_sqlite.rs:32-37`). */
export function zeroclawPragmas(db: Database.Database): void {
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('temp_store = MEMORY');
  db.pragma('mmap_size = 4194304');
}

/** chrono's `Utc::now().to_rfc3339()` for a given instant: 9 fraction digits, `+00:00`. */
export function chronoTimestamp(ms: number, nanos = 0): string {
  const iso = new Date(ms).toISOString();
  const frac = `${iso.slice(20, 23)}${String(nanos).padStart(6, '0')}`;
  return `${iso.slice(0, 19)}.${frac}+00:00`;
}

/** zeroclaw's `append`: two autocommit statements, no transaction (`session_sqlite.rs:168-191`). */
export function zeroclawAppend(
  db: Database.Database,
  key: string,
  role: string,
  content: string,
  now: string,
): void {
  db.prepare('INSERT INTO sessions (session_key, role, content, created_at) VALUES (?1, ?2, ?3, ?4)').run({
    1: key,
    2: role,
    3: content,
    4: now,
  });
  db.prepare(
    `INSERT INTO session_metadata (session_key, created_at, last_activity, message_count)
       VALUES (?1, ?2, ?3, 1)
       ON CONFLICT(session_key) DO UPDATE SET
          last_activity = excluded.last_activity,
          message_count = message_count + 1`,
  ).run({ 1: key, 2: now, 3: now });
}

/** zeroclaw's `set_session_name`: UPDATE only; an empty name stores NULL. */
export function zeroclawSetName(db: Database.Database, key: string, name: string): void {
  db.prepare('UPDATE session_metadata SET name = ?1 WHERE session_key = ?2').run({ 1: name || null, 2: key });
}

/** HEAD's `set_session_agent_alias`: an upsert that creates an empty session (message_count 0). */
export function zeroclawSetAgentAlias(db: Database.Database, key: string, alias: string, now: string): void {
  db.prepare(
    `INSERT INTO session_metadata (session_key, created_at, last_activity, message_count, agent_alias)
       VALUES (?1, ?2, ?3, 0, ?4)
       ON CONFLICT(session_key) DO UPDATE SET agent_alias = excluded.agent_alias`,
  ).run({ 1: key, 2: now, 3: now, 4: alias });
}

/** zeroclaw's `load`. */
export function zeroclawLoad(db: Database.Database, key: string): Array<{ role: string; content: string }> {
  return db
    .prepare('SELECT role, content FROM sessions WHERE session_key = ?1 ORDER BY id ASC')
    .all({ 1: key }) as Array<{
    role: string;
    content: string;
  }>;
}

export interface ZeroclawMetadata {
  session_key: string;
  created_at: string;
  last_activity: string;
  message_count: number;
  name: string | null;
}

/** zeroclaw's `list_sessions_with_metadata` (the seed column list). */
export function zeroclawListSessions(db: Database.Database): ZeroclawMetadata[] {
  return db
    .prepare(
      'SELECT session_key, created_at, last_activity, message_count, name FROM session_metadata ORDER BY last_activity DESC',
    )
    .all() as ZeroclawMetadata[];
}

/** Every session whose message_count differs from its rows (empty when the counter is exact). */
export function countDrift(
  db: Database.Database,
): Array<{ session_key: string; counted: number; rows: number }> {
  return db
    .prepare(
      `SELECT m.session_key, m.message_count AS counted,
         (SELECT COUNT(*) FROM sessions s WHERE s.session_key = m.session_key) AS rows
       FROM session_metadata m WHERE counted != rows`,
    )
    .all() as Array<{ session_key: string; counted: number; rows: number }>;
}

/** `PRAGMA integrity_check` plus FTS5's own check of the index against the sessions table. */
export function checkIntegrity(db: Database.Database): void {
  const result = db.pragma('integrity_check', { simple: true });
  if (result !== 'ok') throw new Error(`integrity_check: ${String(result)}`);
  db.prepare("INSERT INTO sessions_fts(sessions_fts, rank) VALUES ('integrity-check', 1)").run();
}

/**
 * The writes other than append. Each runs inside the group transaction in its own savepoint, so
 * the rows and session_metadata.message_count change together or not at all.
 */

import { isUtf8 } from 'node:buffer';
import Database from 'better-sqlite3';
import { ConflictError, NotFoundError } from '../../errors.js';
import type { CompactResult, RemoveLastResult, SessionInfo } from '../backend.js';
import { nowTimestamp, toTimestamp } from '../timestamps.js';
import { readLastMessage } from './message-reads.js';
import { readMetadata, readSessionInfo, sessionExists, summarizeRows } from './session-reads.js';
import { BY_KEY, type SqliteContext } from './sqlite-context.js';

function notFound(key: string): NotFoundError {
  return new NotFoundError(`no session ${JSON.stringify(key)}`, key);
}

function requireSession(ctx: SqliteContext, key: string): SessionInfo {
  const info = readSessionInfo(ctx, key);
  if (!info) throw notFound(key);
  return info;
}

/** zeroclaw's remove_last, guarded: it never touches last_activity. */
export function removeLastMessage(
  ctx: SqliteContext,
  key: string,
  expectedLastSeq: number | undefined,
): RemoveLastResult {
  const last = readLastMessage(ctx, key);
  if (!last && !sessionExists(ctx, key)) throw notFound(key);
  const actual = last?.seq ?? null;
  if (expectedLastSeq !== undefined && actual !== expectedLastSeq) {
    throw new ConflictError(
      `session ${JSON.stringify(key)} ends at seq ${actual}, not ${expectedLastSeq}`,
      expectedLastSeq,
      actual,
    );
  }
  if (last) {
    ctx.sql('DELETE FROM sessions WHERE id = ?').run(last.seq);
    ctx
      .sql('UPDATE session_metadata SET message_count = MAX(0, message_count - 1) WHERE session_key = ?')
      .run(key);
  }
  return { removed: last, session: requireSession(ctx, key) };
}

interface RawRow {
  id: number;
  role_type: string;
  content_type: string;
  role: Buffer | null;
  content: Buffer | null;
}

/** Ids of rows zeroclaw could not read either: role or content not TEXT, or not valid UTF-8. */
function unreadableIds(ctx: SqliteContext, key: string): number[] {
  const rows = ctx
    .sql(`SELECT id, typeof(role) AS role_type, typeof(content) AS content_type,
        CAST(role AS BLOB) AS role, CAST(content AS BLOB) AS content
      FROM sessions ${BY_KEY} WHERE session_key = ?`)
    .all(key) as RawRow[];
  const isText = (type: string, bytes: Buffer | null) => type === 'text' && bytes !== null && isUtf8(bytes);
  return rows
    .filter((r) => !isText(r.role_type, r.role) || !isText(r.content_type, r.content))
    .map((r) => r.id);
}

/**
 * The FTS index against the sessions table. A database that zeroclaw's seed build updated in place
 * (it had no AFTER UPDATE trigger) holds stale index entries: `rebuild` recreates them from rows.
 */
function repairFullTextIndex(ctx: SqliteContext): void {
  try {
    ctx.sql("INSERT INTO sessions_fts(sessions_fts, rank) VALUES ('integrity-check', 1)").run();
  } catch (error) {
    if (!(error instanceof Database.SqliteError) || !error.code.startsWith('SQLITE_CORRUPT')) throw error;
    if (!ctx.db.inTransaction) throw error;
    ctx.sql("INSERT INTO sessions_fts(sessions_fts) VALUES ('rebuild')").run();
  }
}

export function compactSession(ctx: SqliteContext, key: string): CompactResult {
  if (!sessionExists(ctx, key)) throw notFound(key);
  const ids = unreadableIds(ctx, key);
  const remove = ctx.sql('DELETE FROM sessions WHERE id = ?');
  for (const id of ids) remove.run(id);
  repairFullTextIndex(ctx);
  const rows = summarizeRows(ctx, key);
  if (readMetadata(ctx, key)) {
    ctx.sql('UPDATE session_metadata SET message_count = ? WHERE session_key = ?').run(rows.count, key);
  } else {
    const now = nowTimestamp();
    ctx
      .sql(`INSERT INTO session_metadata (session_key, created_at, last_activity, message_count)
        VALUES (?, ?, ?, ?)`)
      .run(key, rows.first ?? now, rows.last ?? now, rows.count);
  }
  return { dropped: ids.length, session: requireSession(ctx, key) };
}

export function deleteSession(ctx: SqliteContext, key: string): void {
  if (!sessionExists(ctx, key)) throw notFound(key);
  ctx.sql(`DELETE FROM sessions ${BY_KEY} WHERE session_key = ?`).run(key);
  ctx.sql('DELETE FROM session_metadata WHERE session_key = ?').run(key);
  ctx.sql('DELETE FROM sessiongraph_idempotency WHERE session_key = ?').run(key);
}

/** Unlike zeroclaw's UPDATE-only set_session_name, this creates the metadata row when missing. */
export function renameSession(ctx: SqliteContext, key: string, name: string | null): SessionInfo {
  if (readMetadata(ctx, key)) {
    ctx.sql('UPDATE session_metadata SET name = ? WHERE session_key = ?').run(name, key);
  } else {
    const now = nowTimestamp();
    const rows = summarizeRows(ctx, key);
    ctx
      .sql(`INSERT INTO session_metadata (session_key, created_at, last_activity, message_count, name)
        VALUES (?, ?, ?, ?, ?)`)
      .run(key, rows.first ?? now, rows.last ?? now, rows.count, name);
  }
  return requireSession(ctx, key);
}

const STALE = 'SELECT session_key FROM session_metadata WHERE last_activity < @cutoff';

/** zeroclaw's cleanup_stale (a text comparison on last_activity), made atomic. */
export function cleanupStale(ctx: SqliteContext, ttlHours: number): string[] {
  const cutoff = toTimestamp(Date.now() - ttlHours * 3_600_000);
  const keys = ctx.sql(`${STALE} ORDER BY session_key`).pluck().all({ cutoff }) as string[];
  if (keys.length === 0) return keys;
  ctx.sql(`DELETE FROM sessions ${BY_KEY} WHERE session_key IN (${STALE})`).run({ cutoff });
  ctx.sql(`DELETE FROM sessiongraph_idempotency WHERE session_key IN (${STALE})`).run({ cutoff });
  ctx.sql('DELETE FROM session_metadata WHERE last_activity < @cutoff').run({ cutoff });
  return keys;
}

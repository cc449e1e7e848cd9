import type { SessionInfo } from '../backend.js';
import { readLastSeq } from './message-reads.js';
import { BY_KEY, isStorableKey, type SqliteContext } from './sqlite-context.js';

export interface MetadataRow {
  session_key: string;
  name: unknown;
  created_at: unknown;
  last_activity: unknown;
  message_count: number;
}

export const METADATA_COLUMNS = 'session_key, name, created_at, last_activity, message_count';

const text = (value: unknown): string | null => (typeof value === 'string' && value !== '' ? value : null);

export function toSessionInfo(row: MetadataRow, lastSeq: number | null): SessionInfo {
  return {
    key: row.session_key,
    name: text(row.name),
    createdAt: text(row.created_at),
    lastActivityAt: text(row.last_activity),
    messageCount: Number(row.message_count),
    lastSeq,
    unreadableCount: null,
  };
}

export function readMetadata(ctx: SqliteContext, key: string): MetadataRow | undefined {
  return ctx.sql(`SELECT ${METADATA_COLUMNS} FROM session_metadata WHERE session_key = ?`).get(key) as
    | MetadataRow
    | undefined;
}

export interface RowSummary {
  count: number;
  first: string | null;
  last: string | null;
}

/** What the rows alone say about a session (for one zeroclaw left without metadata). */
export function summarizeRows(ctx: SqliteContext, key: string): RowSummary {
  const row = ctx
    .sql(`SELECT COUNT(*) AS count, min(created_at) AS first, max(created_at) AS last
      FROM sessions ${BY_KEY} WHERE session_key = ?`)
    .get(key) as { count: number; first: unknown; last: unknown };
  return { count: row.count, first: text(row.first), last: text(row.last) };
}

/**
 * A session exists if it has a metadata row or messages: zeroclaw's append is two autocommit
 * statements, so a crash between them leaves rows without metadata.
 */
export function readSessionInfo(ctx: SqliteContext, key: string): SessionInfo | null {
  const meta = readMetadata(ctx, key);
  const lastSeq = readLastSeq(ctx, key);
  if (meta) return toSessionInfo(meta, lastSeq);
  const rows = summarizeRows(ctx, key);
  if (rows.count === 0) return null;
  return {
    key,
    name: null,
    createdAt: rows.first,
    lastActivityAt: rows.last,
    messageCount: rows.count,
    lastSeq,
    unreadableCount: null,
  };
}

/** readSessionInfo in one read snapshot; null for a key that could not be stored. */
export function readSession(ctx: SqliteContext, key: string): SessionInfo | null {
  if (!isStorableKey(key, ctx.limits)) return null;
  return ctx.snapshot(() => readSessionInfo(ctx, key));
}

export function sessionExists(ctx: SqliteContext, key: string): boolean {
  return (
    ctx
      .sql(`SELECT EXISTS (SELECT 1 FROM session_metadata WHERE session_key = @key)
        OR EXISTS (SELECT 1 FROM sessions ${BY_KEY} WHERE session_key = @key)`)
      .pluck()
      .get({ key }) === 1
  );
}

/**
 * The writes other than append, each one transaction. Every one first locks the session row (or
 * the stale rows, in key order, so two cleanups cannot deadlock), and reads messages only after
 * that in later statements, which see what the previous lock holder committed.
 */

import { ConflictError, NotFoundError } from '../../errors.js';
import type { CompactResult, RemoveLastResult, SessionInfo } from '../backend.js';
import { readLastMessage } from './message-reads.js';
import type { PgContext, PgTables } from './pg-context.js';
import type { Queryable } from './pg-runner.js';
import { readSessionInfo } from './session-reads.js';

function notFound(key: string): NotFoundError {
  return new NotFoundError(`no session ${JSON.stringify(key)}`, key);
}

async function lockSession(q: Queryable, t: PgTables, key: string): Promise<void> {
  const { rowCount } = await q.query(`SELECT 1 FROM ${t.sessions} WHERE key = $1 FOR UPDATE`, [key]);
  if (rowCount === 0) throw notFound(key);
}

async function requireSession(q: Queryable, t: PgTables, key: string): Promise<SessionInfo> {
  const info = await readSessionInfo(q, t, key);
  if (!info) throw notFound(key);
  return info;
}

/** zeroclaw's remove_last, guarded: it never touches last_activity. */
export function removeLastMessage(
  ctx: PgContext,
  key: string,
  expectedLastSeq: number | undefined,
): Promise<RemoveLastResult> {
  const { t } = ctx;
  return ctx.db.writeSession(key, async (q) => {
    await lockSession(q, t, key);
    const last = await readLastMessage(q, t, key);
    const actual = last?.seq ?? null;
    if (expectedLastSeq !== undefined && actual !== expectedLastSeq) {
      throw new ConflictError(
        `session ${JSON.stringify(key)} ends at seq ${actual}, not ${expectedLastSeq}`,
        expectedLastSeq,
        actual,
      );
    }
    if (last) {
      await q.query(
        `WITH gone AS (DELETE FROM ${t.messages} WHERE id = $2 RETURNING 1)
         UPDATE ${t.sessions} SET message_count = greatest(0, message_count - (SELECT count(*) FROM gone))
         WHERE key = $1`,
        [key, last.seq],
      );
    }
    return { removed: last, session: await requireSession(q, t, key) };
  });
}

/**
 * PostgreSQL refuses invalid UTF-8 and NULs in text, and the columns are NOT NULL, so no stored
 * message can be unreadable: compact drops nothing and makes message_count exact again.
 */
export function compactSession(ctx: PgContext, key: string): Promise<CompactResult> {
  const { t } = ctx;
  return ctx.db.writeSession(key, async (q) => {
    await lockSession(q, t, key);
    await q.query(
      `UPDATE ${t.sessions} SET message_count = (SELECT count(*) FROM ${t.messages} WHERE session_key = $1)
       WHERE key = $1`,
      [key],
    );
    return { dropped: 0, session: await requireSession(q, t, key) };
  });
}

async function deleteContents(q: Queryable, t: PgTables, keys: string[]): Promise<void> {
  await q.query(
    `WITH m AS (DELETE FROM ${t.messages} WHERE session_key = ANY($1::text[]))
     DELETE FROM ${t.idempotency} WHERE session_key = ANY($1::text[])`,
    [keys],
  );
}

export function deleteSession(ctx: PgContext, key: string): Promise<void> {
  const { t } = ctx;
  return ctx.db.writeSession(key, async (q) => {
    const { rowCount } = await q.query(`DELETE FROM ${t.sessions} WHERE key = $1`, [key]);
    if (rowCount === 0) throw notFound(key);
    await deleteContents(q, t, [key]);
  });
}

/** Creates the session, with no message, when absent; never touches last_activity. */
export function renameSession(ctx: PgContext, key: string, name: string | null): Promise<SessionInfo> {
  const { t } = ctx;
  return ctx.db.writeSession(key, async (q) => {
    await q.query(
      `INSERT INTO ${t.sessions} AS s (key, name, created_at, last_activity, message_count)
       SELECT $1, $2, now.at, now.at, 0 FROM (SELECT clock_timestamp() AS at) AS now
       ON CONFLICT (key) DO UPDATE SET name = excluded.name`,
      [key, name],
    );
    return requireSession(q, t, key);
  });
}

/**
 * Sessions idle past the TTL by the database clock. FOR UPDATE re-checks a row an append
 * refreshed meanwhile, and skips it.
 */
export function cleanupStale(ctx: PgContext, ttlHours: number): Promise<string[]> {
  const { t } = ctx;
  return ctx.db.write(async (q) => {
    const { rows } = await q.query<{ key: string }>(
      `SELECT key FROM ${t.sessions}
       WHERE last_activity < clock_timestamp() - $1::float8 * interval '1 hour'
       ORDER BY key FOR UPDATE`,
      [ttlHours],
    );
    const keys = rows.map((r) => r.key);
    if (keys.length === 0) return keys;
    await q.query(`DELETE FROM ${t.sessions} WHERE key = ANY($1::text[])`, [keys]);
    await deleteContents(q, t, keys);
    return keys;
  });
}

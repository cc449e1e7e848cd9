/**
 * The writes other than append, each one transaction. Every one first locks the session row (or
 * the stale rows, in key order, so two cleanups cannot deadlock), and reads messages only after
 * that in later statements, which see what the previous lock holder committed. Each one that
 * changes something stamps the session row (or a tombstone) and announces itself to the other
 * instances before it commits (change-notify.ts).
 */

import { ConflictError, NotFoundError } from '../../errors.js';
import type { CompactResult, RemoveLastResult, SessionInfo } from '../backend.js';
import { CHANGE_XID, notifyChanges } from './change-notify.js';
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
         UPDATE ${t.sessions} SET message_count = greatest(0, message_count - (SELECT count(*) FROM gone)),
           change_xid = ${CHANGE_XID}
         WHERE key = $1`,
        [key, last.seq],
      );
    }
    const session = await requireSession(q, t, key);
    if (last) {
      await notifyChanges(q, ctx.changes, [
        { o: 'r', k: key, s: [last.seq], c: session.messageCount, l: session.lastSeq },
      ]);
    }
    return { removed: last, session };
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
      `UPDATE ${t.sessions} SET message_count = (SELECT count(*) FROM ${t.messages} WHERE session_key = $1),
         change_xid = ${CHANGE_XID}
       WHERE key = $1`,
      [key],
    );
    await notifyChanges(q, ctx.changes, [{ o: 'c', k: key }]);
    return { dropped: 0, session: await requireSession(q, t, key) };
  });
}

/**
 * Tombstones are kept this long for listeners catching up after a dropped connection
 * (pg-watcher.ts), far longer than any reconnect takes; each delete prunes the older ones.
 */
const TOMBSTONE_RETENTION = "interval '1 day'";

/** The messages and records of deleted sessions; a tombstone for each; the announcement. */
async function deleteContents(ctx: PgContext, q: Queryable, keys: string[]): Promise<void> {
  const { t } = ctx;
  await q.query(
    `WITH m AS (DELETE FROM ${t.messages} WHERE session_key = ANY($1::text[])),
       r AS (DELETE FROM ${t.idempotency} WHERE session_key = ANY($1::text[])),
       p AS (DELETE FROM ${t.deleted}
         WHERE deleted_at < clock_timestamp() - ${TOMBSTONE_RETENTION} AND key <> ALL($1::text[]))
     INSERT INTO ${t.deleted} AS d (key, change_xid, deleted_at)
     SELECT k, ${CHANGE_XID}, clock_timestamp() FROM unnest($1::text[]) AS k
     ON CONFLICT (key) DO UPDATE SET change_xid = excluded.change_xid, deleted_at = excluded.deleted_at`,
    [keys],
  );
  await notifyChanges(
    q,
    ctx.changes,
    keys.map((k) => ({ o: 'd', k })),
  );
}

export function deleteSession(ctx: PgContext, key: string): Promise<void> {
  const { t } = ctx;
  return ctx.db.writeSession(key, async (q) => {
    const { rowCount } = await q.query(`DELETE FROM ${t.sessions} WHERE key = $1`, [key]);
    if (rowCount === 0) throw notFound(key);
    await deleteContents(ctx, q, [key]);
  });
}

/** Creates the session, with no message, when absent; never touches last_activity. */
export function renameSession(ctx: PgContext, key: string, name: string | null): Promise<SessionInfo> {
  const { t } = ctx;
  return ctx.db.writeSession(key, async (q) => {
    await q.query(
      `INSERT INTO ${t.sessions} AS s (key, name, created_at, last_activity, message_count, change_xid)
       SELECT $1, $2, now.at, now.at, 0, ${CHANGE_XID} FROM (SELECT clock_timestamp() AS at) AS now
       ON CONFLICT (key) DO UPDATE SET name = excluded.name, change_xid = excluded.change_xid`,
      [key, name],
    );
    const session = await requireSession(q, t, key);
    await notifyChanges(q, ctx.changes, [{ o: 'n', k: key, n: session.name }]);
    return session;
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
    await deleteContents(ctx, q, keys);
    return keys;
  });
}

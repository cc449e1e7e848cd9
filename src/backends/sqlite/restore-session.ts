/**
 * An import's session record (src/backends/copy.ts): the name and times the source recorded, so a
 * copied session keeps its place in zeroclaw's `ORDER BY last_activity`. Runs inside the group
 * transaction in its own savepoint, like every write.
 */

import { NotFoundError } from '../../errors.js';
import type { SessionInfo, SessionRecord } from '../backend.js';
import { nowTimestamp } from '../timestamps.js';
import { readMetadata, readSessionInfo, summarizeRows } from './session-reads.js';
import type { SqliteContext } from './sqlite-context.js';

/** @param record validated: times canonical or null (keep the stored ones, or now when new) */
export function restoreSession(ctx: SqliteContext, key: string, record: SessionRecord): SessionInfo {
  const now = nowTimestamp();
  if (readMetadata(ctx, key)) {
    ctx
      .sql(`UPDATE session_metadata SET name = @name, created_at = coalesce(@createdAt, created_at),
          last_activity = coalesce(@lastActivityAt, last_activity)
        WHERE session_key = @key`)
      .run({ key, ...record });
  } else {
    // Rows without metadata (a zeroclaw crash mid-append) are counted in, as an append does.
    const rows = summarizeRows(ctx, key);
    ctx
      .sql(`INSERT INTO session_metadata (session_key, created_at, last_activity, message_count, name)
        VALUES (?, ?, ?, ?, ?)`)
      .run(
        key,
        record.createdAt ?? rows.first ?? now,
        record.lastActivityAt ?? rows.last ?? now,
        rows.count,
        record.name,
      );
  }
  const info = readSessionInfo(ctx, key);
  if (!info) throw new NotFoundError(`no session ${JSON.stringify(key)}`, key);
  return info;
}

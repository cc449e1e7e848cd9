/**
 * An import's session record (src/backends/copy.ts): the name and times the source recorded, so a
 * copied session keeps its place in the activity order. One statement: it locks the session row
 * like every write, so a concurrent append waits for it.
 */

import { NotFoundError } from '../../errors.js';
import type { SessionInfo, SessionRecord } from '../backend.js';
import { CHANGE_XID, notifyChanges } from './change-notify.js';
import type { PgContext } from './pg-context.js';
import { pgTimestamp } from './pg-timestamps.js';
import { readSessionInfo } from './session-reads.js';

/** @param record validated: times canonical or null (keep the stored ones, or now when new) */
export function restoreSession(ctx: PgContext, key: string, record: SessionRecord): Promise<SessionInfo> {
  const { t } = ctx;
  const time = (value: string | null) => (value === null ? null : pgTimestamp(value));
  return ctx.db.writeSession(key, async (q) => {
    await q.query(
      `INSERT INTO ${t.sessions} AS s (key, name, created_at, last_activity, message_count, change_xid)
       SELECT $1, $2, coalesce($3::timestamptz, now.at), coalesce($4::timestamptz, now.at), 0, ${CHANGE_XID}
       FROM (SELECT clock_timestamp() AS at) AS now
       ON CONFLICT (key) DO UPDATE SET name = excluded.name,
         created_at = coalesce($3::timestamptz, s.created_at),
         last_activity = coalesce($4::timestamptz, s.last_activity),
         change_xid = excluded.change_xid`,
      [key, record.name, time(record.createdAt), time(record.lastActivityAt)],
    );
    const info = await readSessionInfo(q, t, key);
    if (!info) throw new NotFoundError(`no session ${JSON.stringify(key)}`, key);
    // the other instances publish it as a rename, as this one does (publishing-backend.ts)
    await notifyChanges(q, ctx.changes, [{ o: 'n', k: key, n: info.name }]);
    return info;
  });
}

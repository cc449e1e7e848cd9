import type { SessionInfo } from '../backend.js';
import type { PgTables } from './pg-context.js';
import type { Queryable } from './pg-runner.js';
import { tsText } from './pg-timestamps.js';

export interface SessionRow {
  key: string;
  name: string | null;
  created_at: string;
  last_activity: string;
  message_count: number;
  last_seq: number | null;
}

/** The columns of SessionRow for `sessions AS s`; last_seq walks messages_session_id from its end. */
export function sessionColumns(t: PgTables): string {
  return `s.key, s.name, ${tsText('s.created_at')} AS created_at,
    ${tsText('s.last_activity')} AS last_activity, s.message_count,
    (SELECT m.id FROM ${t.messages} AS m WHERE m.session_key = s.key ORDER BY m.id DESC LIMIT 1) AS last_seq`;
}

export function toSessionInfo(row: SessionRow): SessionInfo {
  return {
    key: row.key,
    name: row.name === '' ? null : row.name,
    createdAt: row.created_at,
    lastActivityAt: row.last_activity,
    messageCount: row.message_count,
    lastSeq: row.last_seq,
    unreadableCount: null,
  };
}

export async function readSessionInfo(q: Queryable, t: PgTables, key: string): Promise<SessionInfo | null> {
  const { rows } = await q.query<SessionRow>(
    `SELECT ${sessionColumns(t)} FROM ${t.sessions} AS s WHERE s.key = $1`,
    [key],
  );
  return rows[0] ? toSessionInfo(rows[0]) : null;
}

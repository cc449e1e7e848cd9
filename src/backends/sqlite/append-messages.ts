import { createHash } from 'node:crypto';
import { ConflictError, removedSince } from '../../errors.js';
import type { AppendResult, NewMessage, StoredMessage } from '../backend.js';
import { nowTimestamp } from '../timestamps.js';
import { readLastSeq } from './message-reads.js';
import {
  METADATA_COLUMNS,
  type MetadataRow,
  readSessionInfo,
  summarizeRows,
  toSessionInfo,
} from './session-reads.js';
import { BY_KEY, type SqliteContext } from './sqlite-context.js';

/** An append that passed validation, copied so the caller can no longer change it. */
export interface AppendRequest {
  key: string;
  messages: NewMessage[];
  clientMessageId: string | undefined;
  /** sha256 of the messages, present with clientMessageId. */
  requestHash: string | undefined;
  expectedLastSeq: number | null | undefined;
}

export function hashMessages(messages: readonly NewMessage[]): string {
  const canonical = JSON.stringify(messages.map((m) => [m.role, m.content]));
  return createHash('sha256').update(canonical).digest('base64url');
}

interface IdempotencyRow {
  request_hash: string;
  seqs: string;
  created_at: string;
}

const DELETE_RECORDS = 'DELETE FROM sessiongraph_idempotency WHERE session_key = ?';

const INSERT_MESSAGE = 'INSERT INTO sessions (session_key, role, content, created_at) VALUES (?, ?, ?, ?)';

// zeroclaw's own upsert, generalised from one message to n.
const UPSERT_METADATA = `INSERT INTO session_metadata (session_key, created_at, last_activity, message_count)
     VALUES (@key, @createdAt, @now, @count)
     ON CONFLICT(session_key) DO UPDATE SET
        last_activity = excluded.last_activity,
        message_count = message_count + @added
     RETURNING ${METADATA_COLUMNS}`;

/**
 * Runs inside the group transaction, in its own savepoint: any throw undoes all of it. Order
 * matters: a retried request is answered from its record before the guard is checked, since the
 * first attempt itself moved the last seq.
 */
export function appendMessages(ctx: SqliteContext, request: AppendRequest): AppendResult {
  const { key, messages, clientMessageId } = request;
  if (clientMessageId !== undefined) {
    const record = ctx
      .sql(`SELECT request_hash, seqs, created_at FROM sessiongraph_idempotency
        WHERE session_key = ? AND client_message_id = ?`)
      .get(key, clientMessageId) as IdempotencyRow | undefined;
    if (record && recordHolds(ctx, key, record)) return replay(ctx, request, record);
    // Its messages are gone. Removed from this very session: the retry is refused, never stored
    // twice. Deleted with their session (by anyone): the id went with it, and this request is new.
    if (record && sameSession(ctx, key, record)) throw refusedRetry(request, record);
    if (record) ctx.sql(`${DELETE_RECORDS} AND client_message_id = ?`).run(key, clientMessageId);
  }
  if (request.expectedLastSeq !== undefined) {
    const actual = readLastSeq(ctx, key);
    if (actual !== request.expectedLastSeq) {
      throw new ConflictError(
        `session ${JSON.stringify(key)} ends at seq ${actual}, not ${request.expectedLastSeq}`,
        request.expectedLastSeq,
        actual,
      );
    }
  }

  const now = nowTimestamp();
  const known = ctx.sql('SELECT 1 FROM session_metadata WHERE session_key = ?').pluck().get(key) === 1;
  // Rows without metadata (a zeroclaw crash mid-append) are counted in, so the count stays exact.
  const orphans = known ? null : summarizeRows(ctx, key);
  // A new session: records left by one of the same key that another writer deleted go with it.
  if (orphans?.count === 0) ctx.sql(DELETE_RECORDS).run(key);
  // inside the write transaction, after catching up with other connections: exact
  const previousSeq = readLastSeq(ctx, key) ?? 0;
  const insert = ctx.sql(INSERT_MESSAGE);
  const stored: StoredMessage[] = messages.map((m) => {
    const createdAt = m.createdAt ?? now;
    return {
      sessionKey: key,
      seq: Number(insert.run(key, m.role, m.content, createdAt).lastInsertRowid),
      role: m.role,
      content: m.content,
      createdAt,
    };
  });
  const meta = ctx.sql(UPSERT_METADATA).get({
    key,
    createdAt: orphans?.first ?? now,
    now,
    count: (orphans?.count ?? 0) + messages.length,
    added: messages.length,
  }) as MetadataRow;
  if (clientMessageId !== undefined) {
    ctx
      .sql(`INSERT INTO sessiongraph_idempotency (session_key, client_message_id, request_hash, seqs, created_at)
        VALUES (?, ?, ?, ?, ?)`)
      .run(key, clientMessageId, request.requestHash, JSON.stringify(stored.map((m) => m.seq)), now);
  }
  // AUTOINCREMENT: the row just inserted has the highest id in the table, so it is the last seq.
  return { messages: stored, session: toSessionInfo(meta, stored.at(-1)!.seq), replayed: false, previousSeq };
}

/**
 * Whether the messages a record names are still stored as it stored them: every recorded seq a
 * row of this session, and those rows hashing to the recorded request. zeroclaw's delete_session,
 * cleanup_stale and clear_messages delete rows without knowing our records, and a removal takes
 * the recorded message away: a record that no longer holds answers nothing (seqs are row ids,
 * never reused, so a deleted and recreated session cannot satisfy an old record).
 */
function recordHolds(ctx: SqliteContext, key: string, record: IdempotencyRow): boolean {
  const seqs = JSON.parse(record.seqs) as number[];
  const rows = ctx
    .sql(`SELECT role, content FROM sessions ${BY_KEY}
      WHERE session_key = ? AND id IN (SELECT value FROM json_each(?)) ORDER BY id`)
    .all(key, record.seqs) as NewMessage[];
  return rows.length === seqs.length && hashMessages(rows) === record.request_hash;
}

/**
 * Whether the session holding a stale record is the one its append went into: its metadata is
 * older than the record. zeroclaw's delete_session and cleanup_stale delete the metadata with the
 * rows, so a session deleted and created again since is younger than the record.
 */
function sameSession(ctx: SqliteContext, key: string, record: IdempotencyRow): boolean {
  const createdAt = ctx
    .sql('SELECT created_at FROM session_metadata WHERE session_key = ?')
    .pluck()
    .get(key) as string | undefined;
  return createdAt !== undefined && createdAt <= record.created_at;
}

/** A retry whose recorded messages were removed since: CONFLICT, and nothing stored again. */
function refusedRetry(request: AppendRequest, record: IdempotencyRow): ConflictError {
  if (record.request_hash !== request.requestHash) return usedForOtherMessages(request.clientMessageId!);
  const seqs = JSON.parse(record.seqs) as number[];
  return removedSince(request.clientMessageId!, seqs[0]!, seqs.length);
}

const usedForOtherMessages = (clientMessageId: string) =>
  new ConflictError(
    `clientMessageId ${JSON.stringify(clientMessageId)} was already used with other messages`,
  );

function replay(ctx: SqliteContext, request: AppendRequest, record: IdempotencyRow): AppendResult {
  if (record.request_hash !== request.requestHash) throw usedForOtherMessages(request.clientMessageId!);
  const seqs = JSON.parse(record.seqs) as number[];
  const messages = request.messages.map((m, i) => ({
    sessionKey: request.key,
    seq: seqs[i]!,
    role: m.role,
    content: m.content,
    createdAt: m.createdAt ?? record.created_at,
  }));
  // recordHolds found its rows, so the session exists here.
  return { messages, session: readSessionInfo(ctx, request.key)!, replayed: true };
}

import { createHash } from 'node:crypto';
import { ConflictError } from '../../errors.js';
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
import type { SqliteContext } from './sqlite-context.js';

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
    if (record) return replay(ctx, request, record);
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

function replay(ctx: SqliteContext, request: AppendRequest, record: IdempotencyRow): AppendResult {
  if (record.request_hash !== request.requestHash) {
    throw new ConflictError(
      `clientMessageId ${JSON.stringify(request.clientMessageId)} was already used with other messages`,
    );
  }
  const seqs = JSON.parse(record.seqs) as number[];
  const messages = request.messages.map((m, i) => ({
    sessionKey: request.key,
    seq: seqs[i]!,
    role: m.role,
    content: m.content,
    createdAt: m.createdAt ?? record.created_at,
  }));
  // The record is deleted with its session, so the session still exists here.
  return { messages, session: readSessionInfo(ctx, request.key)!, replayed: true };
}

/**
 * Append in one transaction: the session row is upserted first, which also locks it, so appends
 * to one session serialise across every instance, and the guard, the idempotency lookup and the
 * ids drawn afterwards all see the previous append committed. Ids come from message_seq while
 * the lock is held: within a session, id order is commit order. The transaction ends by
 * announcing the new ids to the other instances (change-notify.ts).
 */

import { createHash } from 'node:crypto';
import { ConflictError, removedSince } from '../../errors.js';
import type { AppendResult, NewMessage, StoredMessage } from '../backend.js';
import { CHANGE_XID, notifyChanges } from './change-notify.js';
import type { PgContext } from './pg-context.js';
import type { Queryable } from './pg-runner.js';
import { pgTimestamp, toMicros, tsText } from './pg-timestamps.js';
import { readSessionInfo } from './session-reads.js';
import { tsvectorLiteral } from './tsvector-literal.js';

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

/** Named, so each connection parses and plans them once: the append path is the hot one. */
const STATEMENT = {
  upsert: 'sg_append_upsert',
  check: 'sg_append_check',
  insert: 'sg_append_insert',
  insertWithRecord: 'sg_append_insert_record',
  insertTimed: 'sg_append_insert_timed',
  insertTimedWithRecord: 'sg_append_insert_timed_record',
};

interface UpsertRow {
  name: string | null;
  created_at: string;
  last_activity: string;
  message_count: number;
}

interface CheckRow {
  last_seq: number | null;
  request_hash: string | null;
  seqs: number[] | null;
  record_at: string | null;
}

/** Thrown inside the transaction to roll it back when a retried request is found. */
class Replay extends Error {
  constructor(readonly check: CheckRow) {
    super('replayed');
  }
}

function upsertSql(ctx: PgContext): string {
  // The database clock, never behind the session's previous activity.
  return `INSERT INTO ${ctx.t.sessions} AS s (key, created_at, last_activity, message_count, change_xid)
    SELECT $1, now.at, now.at, $2, ${CHANGE_XID} FROM (SELECT clock_timestamp() AS at) AS now
    ON CONFLICT (key) DO UPDATE SET
      last_activity = greatest(s.last_activity, clock_timestamp()),
      message_count = s.message_count + $2,
      change_xid = ${CHANGE_XID}
    RETURNING s.name, ${tsText('s.created_at')} AS created_at,
      ${tsText('s.last_activity')} AS last_activity, s.message_count`;
}

function checkSql(ctx: PgContext): string {
  return `SELECT (SELECT id FROM ${ctx.t.messages} WHERE session_key = $1 ORDER BY id DESC LIMIT 1) AS last_seq,
      r.request_hash, to_json(r.seqs) AS seqs, ${tsText('r.created_at')} AS record_at
    FROM (SELECT 1) AS one
    LEFT JOIN ${ctx.t.idempotency} AS r ON r.session_key = $1 AND r.client_message_id = $2`;
}

/**
 * The ids are drawn first and numbered in ascending order, so the batch is stored in its order
 * whatever order the server evaluates rows in. `timed`: an import's own createdAt per message
 * (null: now), in the last parameter.
 */
function insertSql(ctx: PgContext, withRecord: boolean, timed: boolean): string {
  const record = withRecord
    ? `, record AS (
        INSERT INTO ${ctx.t.idempotency} (session_key, client_message_id, request_hash, seqs, created_at)
        SELECT $1, $7, $8, array_agg(id ORDER BY id), $4::timestamptz FROM inserted)`
    : '';
  const times = timed ? `$${withRecord ? 9 : 7}::timestamptz[]` : null;
  const input = times ? `$2::text[], $3::text[], $6::text[], ${times}` : '$2::text[], $3::text[], $6::text[]';
  const columns = times ? 'role, content, tsv, at, n' : 'role, content, tsv, n';
  const at = times ? 'coalesce(input.at, $4::timestamptz)' : '$4::timestamptz';
  return `WITH ids AS (
      SELECT row_number() OVER (ORDER BY drawn.id) AS n, drawn.id
      FROM (SELECT nextval(${ctx.t.messageSeq}) AS id FROM generate_series(1, $5::int)) AS drawn
    ), inserted AS (
      INSERT INTO ${ctx.t.messages} (id, session_key, role, content, created_at, tsv) OVERRIDING SYSTEM VALUE
      SELECT ids.id, $1, input.role, input.content, ${at}, input.tsv::tsvector
      FROM unnest(${input}) WITH ORDINALITY AS input(${columns})
      JOIN ids USING (n)
      RETURNING id
    )${record}
    SELECT id, (SELECT max(m.id) FROM ${ctx.t.messages} AS m WHERE m.session_key = $1) AS previous
    FROM inserted ORDER BY id`;
}

function insertStatement(withRecord: boolean, timed: boolean): string {
  if (timed) return withRecord ? STATEMENT.insertTimedWithRecord : STATEMENT.insertTimed;
  return withRecord ? STATEMENT.insertWithRecord : STATEMENT.insert;
}

async function store(q: Queryable, ctx: PgContext, request: AppendRequest): Promise<AppendResult> {
  const { key, messages, clientMessageId } = request;
  const { rows } = await q.query<UpsertRow>({
    name: STATEMENT.upsert,
    text: upsertSql(ctx),
    values: [key, messages.length],
  });
  const meta = rows[0]!;
  if (clientMessageId !== undefined || request.expectedLastSeq !== undefined) {
    const check = (
      await q.query<CheckRow>({
        name: STATEMENT.check,
        text: checkSql(ctx),
        values: [key, clientMessageId ?? null],
      })
    ).rows[0]!;
    // A retried request is answered from its record before the guard: its first attempt moved the last seq.
    if (check.request_hash !== null) {
      // Our deletes (every instance's) drop a session's records, so this one names messages of
      // this very session: replay() answers it, or refuses it if they were removed since.
      throw new Replay(check);
    }
    if (request.expectedLastSeq !== undefined && check.last_seq !== request.expectedLastSeq) {
      throw new ConflictError(
        `session ${JSON.stringify(key)} ends at seq ${check.last_seq}, not ${request.expectedLastSeq}`,
        request.expectedLastSeq,
        check.last_seq,
      );
    }
  }
  const at = meta.last_activity;
  const withRecord = clientMessageId !== undefined;
  const timed = messages.some((m) => m.createdAt !== undefined);
  // previous: the statement's snapshot, taken with the session row locked, holds every earlier
  // append of the session and none of this one's rows
  const inserted = await q.query<{ id: number; previous: number | null }>({
    name: insertStatement(withRecord, timed),
    text: insertSql(ctx, withRecord, timed),
    values: [
      key,
      messages.map((m) => m.role),
      messages.map((m) => m.content),
      pgTimestamp(at),
      messages.length,
      messages.map((m) => tsvectorLiteral(m.content)),
      ...(clientMessageId === undefined ? [] : [clientMessageId, request.requestHash]),
      ...(timed ? [messages.map((m) => (m.createdAt === undefined ? null : pgTimestamp(m.createdAt)))] : []),
    ],
  });
  const first = inserted.rows[0]!.id;
  const through = inserted.rows.at(-1)!.id;
  await notifyChanges(q, ctx.changes, [{ o: 'a', k: key, a: first - 1, t: through, c: meta.message_count }]);
  const stored: StoredMessage[] = messages.map((m, i) => ({
    sessionKey: key,
    seq: inserted.rows[i]!.id,
    role: m.role,
    content: m.content,
    createdAt: m.createdAt === undefined ? at : toMicros(m.createdAt),
  }));
  const session = {
    key,
    name: meta.name === '' ? null : meta.name,
    createdAt: meta.created_at,
    lastActivityAt: meta.last_activity,
    messageCount: meta.message_count,
    lastSeq: stored.at(-1)!.seq,
    unreadableCount: null,
  };
  return { messages: stored, session, replayed: false, previousSeq: Number(inserted.rows[0]!.previous ?? 0) };
}

export async function appendMessages(ctx: PgContext, request: AppendRequest): Promise<AppendResult> {
  try {
    return await ctx.db.writeSession(request.key, (q) => store(q, ctx, request), {
      // Ids are never reused, so the first stored id existing means the transaction committed.
      committed: async (q, result) =>
        (await q.query(`SELECT 1 FROM ${ctx.t.messages} WHERE id = $1`, [result.messages[0]!.seq]))
          .rowCount === 1,
    });
  } catch (error) {
    if (!(error instanceof Replay)) throw error;
    return replay(ctx, request, error.check);
  }
}

async function replay(ctx: PgContext, request: AppendRequest, record: CheckRow): Promise<AppendResult> {
  if (record.request_hash !== request.requestHash) {
    throw new ConflictError(
      `clientMessageId ${JSON.stringify(request.clientMessageId)} was already used with other messages`,
    );
  }
  const seqs = record.seqs!;
  const messages = request.messages.map((m, i) => ({
    sessionKey: request.key,
    seq: seqs[i]!,
    role: m.role,
    content: m.content,
    createdAt: m.createdAt === undefined ? record.record_at : toMicros(m.createdAt),
  }));
  const session = await ctx.db.read((q) => readSessionInfo(q, ctx.t, request.key));
  // The record is deleted with its session, so only a delete in between leaves none.
  if (!session) return appendMessages(ctx, request);
  // Ids are never reused (a sequence): a missing one was removed since, so the retry is refused
  // rather than answered with a seq that is gone.
  const kept = await ctx.db.read((q) =>
    q.query<{ n: number }>({
      text: `SELECT count(*)::int AS n FROM ${ctx.t.messages} WHERE session_key = $1 AND id = ANY($2::bigint[])`,
      values: [request.key, seqs],
    }),
  );
  if (kept.rows[0]!.n !== seqs.length) throw removedSince(request.clientMessageId!, seqs[0]!, seqs.length);
  return { messages, session, replayed: true };
}

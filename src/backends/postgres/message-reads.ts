import { DEFAULT_PAGE_SIZE, type MessagePageArgs, type Page, type StoredMessage } from '../backend.js';
import { validateMessagePage } from '../validate.js';
import { isStorableKey, type PgContext, type PgTables } from './pg-context.js';
import type { Queryable } from './pg-runner.js';
import { tsText } from './pg-timestamps.js';

export interface MessageRow {
  id: number;
  session_key: string;
  role: string;
  content: string;
  created_at: string;
}

/** The columns of MessageRow for `messages AS m`. */
export const MESSAGE_COLUMNS = `m.id, m.session_key, m.role, m.content, ${tsText('m.created_at')} AS created_at`;

export function toStoredMessage(row: MessageRow): StoredMessage {
  return {
    sessionKey: row.session_key,
    seq: row.id,
    role: row.role,
    content: row.content,
    createdAt: row.created_at,
  };
}

// Wider than any id, so an absent bound needs no second SQL text.
const LOWEST = -Number.MAX_SAFE_INTEGER;
const HIGHEST = Number.MAX_SAFE_INTEGER;

interface PageRow extends MessageRow {
  beyond: boolean;
}

/**
 * A page walks messages_session_id from one end: O(page) whatever the session's size. The page
 * and its other side's existence come from one statement, so from one snapshot; an empty page
 * still yields the one row that carries `beyond`.
 */
export async function readMessagePage(
  ctx: PgContext,
  key: string,
  args: MessagePageArgs,
): Promise<Page<StoredMessage>> {
  const { forward, size } = validateMessagePage(args, ctx.limits, DEFAULT_PAGE_SIZE);
  if (!isStorableKey(key, ctx.limits)) return { items: [], hasNextPage: false, hasPreviousPage: false };
  const bound = forward ? args.afterSeq : args.beforeSeq;
  const beyond =
    bound === undefined
      ? 'false'
      : `EXISTS (SELECT 1 FROM ${ctx.t.messages} WHERE session_key = $1 AND id ${forward ? '<=' : '>='} $5)`;
  const rows = await ctx.db.read(async (q) => {
    const result = await q.query<PageRow>(
      `SELECT b.beyond, p.* FROM (SELECT ${beyond} AS beyond) AS b
       LEFT JOIN LATERAL (SELECT ${MESSAGE_COLUMNS} FROM ${ctx.t.messages} AS m
         WHERE m.session_key = $1 AND m.id > $2 AND m.id < $3
         ORDER BY m.id ${forward ? 'ASC' : 'DESC'} LIMIT $4) AS p ON true`,
      [
        key,
        args.afterSeq ?? LOWEST,
        args.beforeSeq ?? HIGHEST,
        size + 1,
        ...(bound === undefined ? [] : [bound]),
      ],
    );
    return result.rows;
  });
  const beyondExists = rows[0]?.beyond === true;
  const found = rows.filter((r) => r.id !== null);
  const more = found.length > size;
  if (more) found.pop();
  if (!forward) found.reverse();
  const items = found.map(toStoredMessage);
  return forward
    ? { items, hasNextPage: more, hasPreviousPage: beyondExists }
    : { items, hasNextPage: beyondExists, hasPreviousPage: more };
}

export async function readMessage(ctx: PgContext, key: string, seq: number): Promise<StoredMessage | null> {
  if (!isStorableKey(key, ctx.limits) || !Number.isSafeInteger(seq)) return null;
  const { rows } = await ctx.db.read((q) =>
    q.query<MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM ${ctx.t.messages} AS m WHERE m.id = $1 AND m.session_key = $2`,
      [seq, key],
    ),
  );
  return rows[0] ? toStoredMessage(rows[0]) : null;
}

export async function readLastMessage(q: Queryable, t: PgTables, key: string): Promise<StoredMessage | null> {
  const { rows } = await q.query<MessageRow>(
    `SELECT ${MESSAGE_COLUMNS} FROM ${t.messages} AS m WHERE m.session_key = $1 ORDER BY m.id DESC LIMIT 1`,
    [key],
  );
  return rows[0] ? toStoredMessage(rows[0]) : null;
}

function storableKeys(ctx: PgContext, keys: readonly string[]): string[] {
  return [...new Set(keys)].filter((key) => isStorableKey(key, ctx.limits));
}

/** One query for all keys: each key's last message is one index probe. */
export async function readLastMessages(
  ctx: PgContext,
  keys: readonly string[],
): Promise<Map<string, StoredMessage>> {
  const wanted = storableKeys(ctx, keys);
  const out = new Map<string, StoredMessage>();
  if (wanted.length === 0) return out;
  const { rows } = await ctx.db.read((q) =>
    q.query<MessageRow>(
      `SELECT l.* FROM unnest($1::text[]) AS k(key)
       CROSS JOIN LATERAL (SELECT ${MESSAGE_COLUMNS} FROM ${ctx.t.messages} AS m
         WHERE m.session_key = k.key ORDER BY m.id DESC LIMIT 1) AS l`,
      [wanted],
    ),
  );
  for (const row of rows) out.set(row.session_key, toStoredMessage(row));
  return out;
}

/** char_length counts code points in a UTF-8 database, as the contract asks. */
export async function readCharacterCounts(
  ctx: PgContext,
  keys: readonly string[],
): Promise<Map<string, number>> {
  const wanted = storableKeys(ctx, keys);
  const out = new Map<string, number>();
  if (wanted.length === 0) return out;
  const { rows } = await ctx.db.read((q) =>
    q.query<{ key: string; chars: number }>(
      `SELECT k.key, (SELECT coalesce(sum(char_length(m.content)), 0) FROM ${ctx.t.messages} AS m
         WHERE m.session_key = k.key) AS chars
       FROM unnest($1::text[]) AS k(key)`,
      [wanted],
    ),
  );
  for (const row of rows) out.set(row.key, row.chars);
  return out;
}

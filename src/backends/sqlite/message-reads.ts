import { DEFAULT_PAGE_SIZE, type MessagePageArgs, type Page, type StoredMessage } from '../backend.js';
import { validateMessagePage } from '../validate.js';
import { BY_KEY, isStorableKey, READABLE, type SqliteContext } from './sqlite-context.js';

export interface MessageRow {
  id: number;
  session_key: string;
  role: string;
  content: string;
  created_at: unknown;
}

export const MESSAGE_COLUMNS = 'id, session_key, role, content, created_at';

export function toStoredMessage(row: MessageRow): StoredMessage {
  return {
    sessionKey: row.session_key,
    seq: row.id,
    role: row.role,
    content: row.content,
    createdAt: typeof row.created_at === 'string' ? row.created_at : null,
  };
}

// Wider than any row id, so an absent bound needs no second SQL text.
const LOWEST = -Number.MAX_SAFE_INTEGER;
const HIGHEST = Number.MAX_SAFE_INTEGER;

const FORWARD = `SELECT ${MESSAGE_COLUMNS} FROM sessions ${BY_KEY}
  WHERE session_key = ? AND id > ? AND id < ? AND ${READABLE} ORDER BY id ASC LIMIT ?`;
const BACKWARD = `SELECT ${MESSAGE_COLUMNS} FROM sessions ${BY_KEY}
  WHERE session_key = ? AND id > ? AND id < ? AND ${READABLE} ORDER BY id DESC LIMIT ?`;
const AT_OR_BEFORE = `SELECT EXISTS (SELECT 1 FROM sessions ${BY_KEY}
  WHERE session_key = ? AND id <= ? AND ${READABLE})`;
const AT_OR_AFTER = `SELECT EXISTS (SELECT 1 FROM sessions ${BY_KEY}
  WHERE session_key = ? AND id >= ? AND ${READABLE})`;

/** A page walks idx_sessions_key_id from one end: O(page) whatever the session's size. */
export function readMessagePage(ctx: SqliteContext, key: string, args: MessagePageArgs): Page<StoredMessage> {
  const { forward, size } = validateMessagePage(args, ctx.limits, DEFAULT_PAGE_SIZE);
  if (!isStorableKey(key, ctx.limits)) return { items: [], hasNextPage: false, hasPreviousPage: false };
  const after = args.afterSeq ?? LOWEST;
  const before = args.beforeSeq ?? HIGHEST;
  return ctx.snapshot(() => {
    const rows = ctx.sql(forward ? FORWARD : BACKWARD).all(key, after, before, size + 1) as MessageRow[];
    const more = rows.length > size;
    if (more) rows.pop();
    if (!forward) rows.reverse();
    const items = rows.map(toStoredMessage);
    if (forward) {
      const earlier = args.afterSeq !== undefined && exists(ctx, AT_OR_BEFORE, key, args.afterSeq);
      return { items, hasNextPage: more, hasPreviousPage: earlier };
    }
    const later = args.beforeSeq !== undefined && exists(ctx, AT_OR_AFTER, key, args.beforeSeq);
    return { items, hasNextPage: later, hasPreviousPage: more };
  });
}

function exists(ctx: SqliteContext, source: string, key: string, seq: number): boolean {
  return ctx.sql(source).pluck().get(key, seq) === 1;
}

export function readMessage(ctx: SqliteContext, key: string, seq: number): StoredMessage | null {
  if (!isStorableKey(key, ctx.limits) || !Number.isSafeInteger(seq)) return null;
  const row = ctx
    .sql(`SELECT ${MESSAGE_COLUMNS} FROM sessions WHERE id = ? AND session_key = ? AND ${READABLE}`)
    .get(seq, key) as MessageRow | undefined;
  return row ? toStoredMessage(row) : null;
}

export function readLastMessage(ctx: SqliteContext, key: string): StoredMessage | null {
  const row = ctx
    .sql(`SELECT ${MESSAGE_COLUMNS} FROM sessions ${BY_KEY} WHERE session_key = ? AND ${READABLE}
      ORDER BY id DESC LIMIT 1`)
    .get(key) as MessageRow | undefined;
  return row ? toStoredMessage(row) : null;
}

export function readLastSeq(ctx: SqliteContext, key: string): number | null {
  const id = ctx
    .sql(`SELECT id FROM sessions ${BY_KEY} WHERE session_key = ? AND ${READABLE} ORDER BY id DESC LIMIT 1`)
    .pluck()
    .get(key) as number | undefined;
  return id ?? null;
}

function storableKeys(ctx: SqliteContext, keys: readonly string[]): string[] {
  return [...new Set(keys)].filter((key) => isStorableKey(key, ctx.limits));
}

/** One query for all keys: the keys travel as a JSON array. */
export function readLastMessages(ctx: SqliteContext, keys: readonly string[]): Map<string, StoredMessage> {
  const wanted = storableKeys(ctx, keys);
  const out = new Map<string, StoredMessage>();
  if (wanted.length === 0) return out;
  const rows = ctx
    .sql(`SELECT s.id, s.session_key, s.role, s.content, s.created_at
      FROM json_each(?) AS k
      CROSS JOIN sessions AS s ON s.id = (SELECT id FROM sessions ${BY_KEY}
        WHERE session_key = k.value AND ${READABLE} ORDER BY id DESC LIMIT 1)`)
    .all(JSON.stringify(wanted)) as MessageRow[];
  for (const row of rows) out.set(row.session_key, toStoredMessage(row));
  return out;
}

/** SQLite's length() counts characters (code points) of TEXT, as the contract asks. */
export function readCharacterCounts(ctx: SqliteContext, keys: readonly string[]): Map<string, number> {
  const wanted = storableKeys(ctx, keys);
  const out = new Map<string, number>();
  if (wanted.length === 0) return out;
  const rows = ctx
    .sql(`SELECT k.value AS key, (SELECT total(length(content)) FROM sessions ${BY_KEY}
        WHERE session_key = k.value AND ${READABLE}) AS chars
      FROM json_each(?) AS k`)
    .all(JSON.stringify(wanted)) as Array<{ key: string; chars: number }>;
  for (const row of rows) out.set(row.key, row.chars);
  return out;
}

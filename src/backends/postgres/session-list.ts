import { InvalidInputError } from '../../errors.js';
import {
  DEFAULT_PAGE_SIZE,
  type Page,
  type SessionCursor,
  type SessionFilter,
  type SessionInfo,
  type SessionOrder,
  type SessionPageArgs,
} from '../backend.js';
import { resolvePage } from '../validate.js';
import { keyPrefixCondition } from './key-prefix.js';
import type { PgContext } from './pg-context.js';
import { timestampBound } from './pg-timestamps.js';
import { type SessionRow, sessionColumns, toSessionInfo } from './session-reads.js';
import { SqlParams } from './sql-params.js';

/**
 * The key breaks ties, so every order is total and a keyset cursor is exact. Both columns run in
 * the same direction, so a row comparison walks the primary key or sessions_last_activity.
 */
const ORDERS: Record<SessionOrder, { columns: string[]; descending: boolean }> = {
  LAST_ACTIVITY_DESC: { columns: ['s.last_activity', 's.key'], descending: true },
  LAST_ACTIVITY_ASC: { columns: ['s.last_activity', 's.key'], descending: false },
  KEY_ASC: { columns: ['s.key'], descending: false },
  KEY_DESC: { columns: ['s.key'], descending: true },
};

/** Filter conditions, or null when the filter can match nothing. */
function filterConditions(filter: SessionFilter, ctx: PgContext, params: SqlParams): string[] | null {
  const conditions: string[] = [];
  const prefix = keyPrefixCondition('s.key', filter.keyPrefix, ctx.limits, 'filter.keyPrefix', params);
  if (prefix) conditions.push(prefix);
  if (filter.channel !== undefined && filter.channel !== null) {
    // channelOf() cuts at the first `_`, so a channel containing one names no key.
    if (filter.channel === '' || filter.channel.includes('_')) return null;
    const channel = keyPrefixCondition('s.key', `${filter.channel}_`, ctx.limits, 'filter.channel', params);
    if (channel) conditions.push(channel);
  }
  if (filter.activeSince !== undefined && filter.activeSince !== null) {
    const since = timestampBound(filter.activeSince, 'filter.activeSince');
    conditions.push(`s.last_activity >= ${params.add(since)}::timestamptz`);
  }
  if (filter.activeBefore !== undefined && filter.activeBefore !== null) {
    const before = timestampBound(filter.activeBefore, 'filter.activeBefore');
    conditions.push(`s.last_activity < ${params.add(before)}::timestamptz`);
  }
  return conditions;
}

function cursorValues(cursor: SessionCursor, columns: string[], field: string): string[] {
  if (typeof cursor?.key !== 'string') throw new InvalidInputError(`${field} needs a session key`, field);
  if (columns.length === 1) return [cursor.key];
  if (typeof cursor.lastActivityAt !== 'string') {
    throw new InvalidInputError(`${field} needs lastActivityAt for this order`, field);
  }
  return [timestampBound(cursor.lastActivityAt, field), cursor.key];
}

const where = (conditions: string[]) => (conditions.length === 0 ? 'true' : conditions.join(' AND '));

export async function listSessions(ctx: PgContext, args: SessionPageArgs): Promise<Page<SessionInfo>> {
  const order = args.order ?? 'LAST_ACTIVITY_DESC';
  const spec = ORDERS[order];
  if (!spec) throw new InvalidInputError(`unknown session order ${String(order)}`, 'order');
  const { forward, size } = resolvePage(args, ctx.limits, DEFAULT_PAGE_SIZE);
  const params = new SqlParams();
  const filter = filterConditions(args.filter ?? {}, ctx, params);
  if (!filter) return { items: [], hasNextPage: false, hasPreviousPage: false };
  const after = args.after ? cursorValues(args.after, spec.columns, 'after') : null;
  const before = args.before ? cursorValues(args.before, spec.columns, 'before') : null;

  const tuple = spec.columns.length === 1 ? spec.columns[0]! : `(${spec.columns.join(', ')})`;
  const later = spec.descending ? '<' : '>';
  const earlier = spec.descending ? '>' : '<';
  const compare = (op: string, values: string[]) => {
    const slots = values.map(
      (v, i) => `${params.add(v)}${i === 0 && values.length === 2 ? '::timestamptz' : ''}`,
    );
    return `${tuple} ${op} ${slots.length === 1 ? slots[0] : `(${slots.join(', ')})`}`;
  };

  const window = [...filter];
  if (after) window.push(compare(later, after));
  if (before) window.push(compare(earlier, before));
  // The page's other side: does anything matching the filter lie at or beyond its bound?
  const bound = forward ? after : before;
  const beyond = bound
    ? `EXISTS (SELECT 1 FROM ${ctx.t.sessions} AS s WHERE ${where([...filter, compare(`${forward ? earlier : later}=`, bound)])})`
    : 'false';
  const descending = forward ? spec.descending : !spec.descending;
  const orderBy = spec.columns.map((c) => `${c} ${descending ? 'DESC' : 'ASC'}`).join(', ');
  const limit = params.add(size + 1);

  const rows = await ctx.db.read(async (q) => {
    const result = await q.query<SessionRow & { beyond: boolean }>(
      `SELECT b.beyond, p.* FROM (SELECT ${beyond} AS beyond) AS b
       LEFT JOIN LATERAL (SELECT ${sessionColumns(ctx.t)} FROM ${ctx.t.sessions} AS s
         WHERE ${where(window)} ORDER BY ${orderBy} LIMIT ${limit}) AS p ON true`,
      params.values,
    );
    return result.rows;
  });
  const beyondExists = rows[0]?.beyond === true;
  const found = rows.filter((r) => r.key !== null);
  const more = found.length > size;
  if (more) found.pop();
  if (!forward) found.reverse();
  const items = found.map(toSessionInfo);
  return forward
    ? { items, hasNextPage: more, hasPreviousPage: beyondExists }
    : { items, hasNextPage: beyondExists, hasPreviousPage: more };
}

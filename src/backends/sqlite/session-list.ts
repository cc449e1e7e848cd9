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
import { readLastSeq } from './message-reads.js';
import { METADATA_COLUMNS, type MetadataRow, toSessionInfo } from './session-reads.js';
import { prefixCondition, timestampBound } from './sql-filters.js';
import type { SqliteContext } from './sqlite-context.js';

/**
 * The key breaks ties, so every order is total and a keyset cursor is exact. Both columns run in
 * the same direction, so a row-value comparison walks session_metadata's primary key or our
 * index on (last_activity, session_key).
 */
const ORDERS: Record<SessionOrder, { columns: string[]; descending: boolean }> = {
  LAST_ACTIVITY_DESC: { columns: ['last_activity', 'session_key'], descending: true },
  LAST_ACTIVITY_ASC: { columns: ['last_activity', 'session_key'], descending: false },
  KEY_ASC: { columns: ['session_key'], descending: false },
  KEY_DESC: { columns: ['session_key'], descending: true },
};

interface Where {
  conditions: string[];
  params: unknown[];
}

/** null: the filter can match nothing. */
function filterWhere(filter: SessionFilter, ctx: SqliteContext): Where | null {
  const where: Where = { conditions: [], params: [] };
  const add = (condition: { where: string; params: unknown[] } | null) => {
    if (!condition) return;
    where.conditions.push(condition.where);
    where.params.push(...condition.params);
  };
  add(prefixCondition('session_key', filter.keyPrefix, ctx.limits, 'filter.keyPrefix'));
  if (filter.channel !== undefined && filter.channel !== null) {
    // channelOf() cuts at the first `_`, so a channel containing one names no key.
    if (filter.channel === '' || filter.channel.includes('_')) return null;
    add(prefixCondition('session_key', `${filter.channel}_`, ctx.limits, 'filter.channel'));
  }
  if (filter.activeSince !== undefined && filter.activeSince !== null) {
    add({ where: 'last_activity >= ?', params: [timestampBound(filter.activeSince, 'filter.activeSince')] });
  }
  if (filter.activeBefore !== undefined && filter.activeBefore !== null) {
    add({ where: 'last_activity < ?', params: [timestampBound(filter.activeBefore, 'filter.activeBefore')] });
  }
  return where;
}

function cursorValues(cursor: SessionCursor, columns: string[], field: string): string[] {
  if (typeof cursor?.key !== 'string') throw new InvalidInputError(`${field} needs a session key`, field);
  if (columns.length === 1) return [cursor.key];
  if (typeof cursor.lastActivityAt !== 'string') {
    throw new InvalidInputError(`${field} needs lastActivityAt for this order`, field);
  }
  return [cursor.lastActivityAt, cursor.key];
}

export function listSessions(ctx: SqliteContext, args: SessionPageArgs): Page<SessionInfo> {
  const order = args.order ?? 'LAST_ACTIVITY_DESC';
  const spec = ORDERS[order];
  if (!spec) throw new InvalidInputError(`unknown session order ${String(order)}`, 'order');
  const { forward, size } = resolvePage(args, ctx.limits, DEFAULT_PAGE_SIZE);
  const filter = filterWhere(args.filter ?? {}, ctx);
  if (!filter) return { items: [], hasNextPage: false, hasPreviousPage: false };
  const after = args.after ? cursorValues(args.after, spec.columns, 'after') : null;
  const before = args.before ? cursorValues(args.before, spec.columns, 'before') : null;

  const tuple = spec.columns.length === 1 ? spec.columns[0]! : `(${spec.columns.join(', ')})`;
  const slots = spec.columns.length === 1 ? '?' : '(?, ?)';
  const later = spec.descending ? '<' : '>';
  const earlier = spec.descending ? '>' : '<';
  const compare = (op: string, values: string[]) => ({ where: `${tuple} ${op} ${slots}`, params: values });

  const window: Where = { conditions: [...filter.conditions], params: [...filter.params] };
  for (const c of [after && compare(later, after), before && compare(earlier, before)]) {
    if (!c) continue;
    window.conditions.push(c.where);
    window.params.push(...c.params);
  }
  const descending = forward ? spec.descending : !spec.descending;
  const orderBy = spec.columns.map((c) => `${c} ${descending ? 'DESC' : 'ASC'}`).join(', ');

  return ctx.snapshot(() => {
    const rows = ctx
      .sql(`SELECT ${METADATA_COLUMNS} FROM session_metadata ${whereSql(window)} ORDER BY ${orderBy} LIMIT ?`)
      .all(...window.params, size + 1) as MetadataRow[];
    const more = rows.length > size;
    if (more) rows.pop();
    if (!forward) rows.reverse();
    const items = rows.map((row) => toSessionInfo(row, readLastSeq(ctx, row.session_key)));
    // The page's other side: does anything matching the filter lie at or beyond its bound?
    const beyond = (op: string, values: string[] | null) => {
      if (!values) return false;
      const c = compare(`${op}=`, values);
      const w = { conditions: [...filter.conditions, c.where], params: [...filter.params, ...c.params] };
      return (
        ctx
          .sql(`SELECT EXISTS (SELECT 1 FROM session_metadata ${whereSql(w)})`)
          .pluck()
          .get(...w.params) === 1
      );
    };
    return forward
      ? { items, hasNextPage: more, hasPreviousPage: beyond(earlier, after) }
      : { items, hasNextPage: beyond(later, before), hasPreviousPage: more };
  });
}

function whereSql(where: Where): string {
  return where.conditions.length === 0 ? '' : `WHERE ${where.conditions.join(' AND ')}`;
}

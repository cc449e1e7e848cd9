/**
 * Full-text search over messages.tsv (GIN). The query language becomes a tsquery of quoted
 * lexemes (tsquery-literal.ts); filters apply to the same messages row; matches are found newest
 * first by newest-matches.ts.
 *
 * Cost model: ranking needs ts_rank for every match, and two very common words match a large
 * share of a big store (hundreds of ms to rank them all). So RELEVANCE ranks within windows of
 * the RANK_WINDOW newest matches, as the SQLite backend does: when a query matches fewer (the
 * usual case) the ranking is exact; when it matches more, the newest window is ranked first, then
 * the next older one, and so on. Recent messages win among huge match sets, and paging still
 * reaches every match. NEWEST ranks only the page it returns.
 */

import { InvalidInputError } from '../../errors.js';
import {
  DEFAULT_PAGE_SIZE,
  type SearchArgs,
  type SearchFilter,
  type SearchHit,
  type SearchPage,
} from '../backend.js';
import {
  decodeSearchCursor,
  encodeSearchCursor,
  type SearchPosition,
  searchScope,
} from '../search-cursor.js';
import { type ParsedQuery, parseSearchQuery, requireAnswerable } from '../search-query.js';
import { resolvePage, validateKey } from '../validate.js';
import { keyPrefixCondition } from './key-prefix.js';
import { MESSAGE_COLUMNS, type MessageRow, toStoredMessage } from './message-reads.js';
import { HIGHEST, type MatchQuery, newestMatchIds, selectMatches } from './newest-matches.js';
import type { PgContext } from './pg-context.js';
import type { Queryable } from './pg-runner.js';
import { timestampBound } from './pg-timestamps.js';
import { buildSnippet } from './search-snippet.js';
import { SqlParams } from './sql-params.js';
import { tsqueryLiteral } from './tsquery-literal.js';

/** @default 2_000 // matches ranked together by ts_rank (a few ms of ranking) */
export const RANK_WINDOW = 2_000;

/** Filter conditions on `messages AS m`; their values go into `params`. */
function filterConditions(filter: SearchFilter, ctx: PgContext, params: SqlParams): string[] {
  const conditions: string[] = [];
  const present = (v: unknown) => v !== undefined && v !== null && v !== '';
  if (present(filter.sessionKey)) {
    const key = validateKey(filter.sessionKey, ctx.limits, 'filter.sessionKey');
    conditions.push(`m.session_key = ${params.add(key)}`);
  }
  const prefix = keyPrefixCondition(
    'm.session_key',
    filter.keyPrefix,
    ctx.limits,
    'filter.keyPrefix',
    params,
  );
  if (prefix) conditions.push(prefix);
  if (present(filter.role)) {
    if (typeof filter.role !== 'string')
      throw new InvalidInputError('filter.role must be a string', 'filter.role');
    conditions.push(`m.role = ${params.add(filter.role)}`);
  }
  if (present(filter.since)) {
    conditions.push(
      `m.created_at >= ${params.add(timestampBound(filter.since, 'filter.since'))}::timestamptz`,
    );
  }
  if (present(filter.until)) {
    conditions.push(
      `m.created_at < ${params.add(timestampBound(filter.until, 'filter.until'))}::timestamptz`,
    );
  }
  return conditions;
}

interface Query {
  ctx: PgContext;
  parsed: ParsedQuery;
  match: MatchQuery;
  /** `ts_rank(...)::float8 AS rank` for `messages AS m`. */
  rank: string;
  size: number;
  scope: string;
}

export async function searchMessages(ctx: PgContext, args: SearchArgs): Promise<SearchPage> {
  const parsed = parseSearchQuery(args.query, ctx.limits);
  requireAnswerable(parsed);
  const { size } = resolvePage({ first: args.first }, ctx.limits, DEFAULT_PAGE_SIZE);
  const order = args.order ?? 'RELEVANCE';
  if (order !== 'RELEVANCE' && order !== 'NEWEST') {
    throw new InvalidInputError(`unknown search order ${String(order)}`, 'order');
  }
  const params = new SqlParams();
  const tsquery = tsqueryLiteral(parsed);
  const slot = `${params.add(tsquery)}::tsquery`;
  const conditions = [`m.tsv @@ ${slot}`, ...filterConditions(args.filter ?? {}, ctx, params)];
  const scope = searchScope([params.values, order]);
  const ranked = order === 'RELEVANCE';
  const after =
    args.after === undefined || args.after === null ? null : decodeSearchCursor(args.after, scope, ranked);
  if (tsquery === null) return { hits: [], hasNextPage: false };
  const query: Query = {
    ctx,
    parsed,
    match: { t: ctx.t, conditions, values: params.values },
    rank: `ts_rank(m.tsv, ${slot})::float8 AS rank`,
    size,
    scope,
  };
  return ctx.db.read((client) =>
    ranked ? rankedPage(client, query, after) : newestPage(client, query, after),
  );
}

interface HitRow extends MessageRow {
  rank: number;
}

function toHit(q: Query, row: MessageRow, score: number, cursor: string): SearchHit {
  return { message: toStoredMessage(row), score, snippet: buildSnippet(row.content, q.parsed), cursor };
}

async function newestPage(client: Queryable, q: Query, after: SearchPosition | null): Promise<SearchPage> {
  const ids = await newestMatchIds(client, q.match, after ? after.id - 1 : HIGHEST, q.size + 1);
  const rows = await selectMatches<HitRow>(client, q.match, `${MESSAGE_COLUMNS}, ${q.rank}`, ids);
  const more = rows.length > q.size;
  if (more) rows.pop();
  return {
    hits: rows.map((row) => toHit(q, row, row.rank, encodeSearchCursor(q.scope, { id: row.id }))),
    hasNextPage: more,
  };
}

interface Ranked {
  id: number;
  rank: number;
}

/** Best first: higher rank, then the newer message. */
const better = (a: Ranked, b: Ranked) => b.rank - a.rank || b.id - a.id;

async function rankedPage(client: Queryable, q: Query, after: SearchPosition | null): Promise<SearchPage> {
  const picked: Array<Ranked & { windowTop: number }> = [];
  let top = after?.windowTop ?? HIGHEST;
  let resume = after;
  while (picked.length <= q.size) {
    const ids = await newestMatchIds(client, q.match, top, RANK_WINDOW);
    if (ids.length === 0) break;
    // A window is named by its top bound, so a later page re-reads the same window; the first
    // one's top is its newest match, so messages stored since do not shift it.
    const windowTop = top === HIGHEST ? ids[0]! : top;
    const lowest = ids.at(-1)!;
    const window = await selectMatches<Ranked>(client, q.match, `m.id, ${q.rank}`, ids);
    window.sort(better);
    let start = 0;
    if (resume) {
      const position = { id: resume.id, rank: resume.rank! };
      start = window.findIndex((c) => better(c, position) > 0);
      if (start === -1) start = window.length;
      resume = null;
    }
    for (const c of window.slice(start, start + q.size + 1 - picked.length)) picked.push({ ...c, windowTop });
    if (ids.length < RANK_WINDOW) break;
    top = lowest - 1;
  }
  const more = picked.length > q.size;
  if (more) picked.pop();
  if (picked.length === 0) return { hits: [], hasNextPage: more };
  const { rows } = await client.query<MessageRow>(
    `SELECT ${MESSAGE_COLUMNS} FROM ${q.ctx.t.messages} AS m WHERE m.id = ANY($1::bigint[])`,
    [picked.map((c) => c.id)],
  );
  const byId = new Map(rows.map((row) => [row.id, row]));
  const hits: SearchHit[] = [];
  for (const c of picked) {
    // A message removed between the two statements is left out of this page.
    const row = byId.get(c.id);
    if (!row) continue;
    const cursor = encodeSearchCursor(q.scope, { id: c.id, windowTop: c.windowTop, rank: c.rank });
    hits.push(toHit(q, row, c.rank, cursor));
  }
  return { hits, hasNextPage: more };
}

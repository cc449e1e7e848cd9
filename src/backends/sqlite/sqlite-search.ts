/**
 * Full-text search over zeroclaw's external-content FTS5 table. The MATCH expression comes from
 * toFtsMatch (every user token quoted, restricted to the `content` column: zeroclaw also indexes
 * session_key, which we never match). Filters apply to the joined sessions row.
 *
 * Cost model (measured on 1,000,000 messages): FTS5 walks a doclist newest-first cheaply, but
 * ranking scores every match, and two very common words match most of the store. So RELEVANCE
 * ranks within windows of the RANK_WINDOW newest matches: when a query matches fewer (the usual
 * case) the ranking is exact; when it matches more, the newest window is ranked first, then the
 * next older one, and so on: recent messages win among huge match sets, and paging still reaches
 * every match. NEWEST needs no ranking. Scores are bm25 (bm25-scorer.ts explains why not bm25()).
 * Known cost: FTS5 cannot skip ahead in a descending walk, so a page far down a huge match set
 * (a deep NEWEST cursor, a late RELEVANCE window) costs time in proportion to the matches above it.
 */

import { InvalidInputError } from '../../errors.js';
import {
  DEFAULT_PAGE_SIZE,
  type SearchArgs,
  type SearchFilter,
  type SearchHit,
  type SearchPage,
  SNIPPET_CLOSE,
  SNIPPET_OPEN,
} from '../backend.js';
import {
  decodeSearchCursor,
  encodeSearchCursor,
  type SearchPosition,
  searchScope,
} from '../search-cursor.js';
import { parseSearchQuery, requireAnswerable, toFtsMatch } from '../search-query.js';
import { resolvePage, validateKey } from '../validate.js';
import { type Bm25Scorer, createBm25Scorer } from './bm25-scorer.js';
import { MESSAGE_COLUMNS, type MessageRow, toStoredMessage } from './message-reads.js';
import { prefixCondition, timestampBound } from './sql-filters.js';
import { BY_KEY, type SqliteContext } from './sqlite-context.js';

/** @default 2_000 // matches ranked together (a few ms of scoring) */
export const RANK_WINDOW = 2_000;
/**
 * A session this small is searched by probing the index once per message, newest first, instead
 * of walking the whole match list for rows of that session.
 * @default 200 // messages
 */
export const SESSION_PROBE_LIMIT = 200;
/** @default 16_384 // bytes of content held per ranking candidate; longer ones are read one by one */
export const INLINE_CONTENT_BYTES = 16_384;
/** @default 16 // tokens of context per snippet (FTS5 allows up to 64) */
export const SNIPPET_TOKENS = 16;
const ELLIPSIS = '…';

const READABLE_S = "typeof(s.role) = 'text' AND typeof(s.content) = 'text'";
const SNIPPET = `snippet(sessions_fts, 1, ?, ?, ?, ${SNIPPET_TOKENS})`;
const SNIPPET_PARAMS = [SNIPPET_OPEN, SNIPPET_CLOSE, ELLIPSIS];
const HIGHEST = Number.MAX_SAFE_INTEGER;
const HIT_COLUMNS = MESSAGE_COLUMNS.split(', ')
  .map((c) => `s.${c}`)
  .join(', ');

/**
 * Which side drives the join. CROSS JOIN fixes the order (SQLite may not reorder it). The id
 * bound is a range on purpose: with `rowid = ?` on the FTS side the planner scans `sessions`.
 */
const PLANS = {
  walkMatches: {
    from: 'sessions_fts CROSS JOIN sessions AS s ON s.id = sessions_fts.rowid',
    id: 'sessions_fts.rowid',
  },
  probeSession: {
    from: `sessions AS s ${BY_KEY} CROSS JOIN sessions_fts ON sessions_fts.rowid = s.id`,
    id: 's.id',
  },
} as const;
type Plan = (typeof PLANS)[keyof typeof PLANS];

interface Where {
  sql: string;
  params: unknown[];
}

function filterWhere(filter: SearchFilter, ctx: SqliteContext): Where {
  const conditions = [READABLE_S];
  const params: unknown[] = [];
  const present = (v: unknown) => v !== undefined && v !== null && v !== '';
  if (present(filter.sessionKey)) {
    conditions.push('s.session_key = ?');
    params.push(validateKey(filter.sessionKey, ctx.limits, 'filter.sessionKey'));
  }
  const prefix = prefixCondition('s.session_key', filter.keyPrefix, ctx.limits, 'filter.keyPrefix');
  if (prefix) {
    conditions.push(prefix.where);
    params.push(...prefix.params);
  }
  if (present(filter.role)) {
    if (typeof filter.role !== 'string') {
      throw new InvalidInputError('filter.role must be a string', 'filter.role');
    }
    conditions.push('s.role = ?');
    params.push(filter.role);
  }
  if (present(filter.since)) {
    conditions.push('s.created_at >= ?');
    params.push(timestampBound(filter.since, 'filter.since'));
  }
  if (present(filter.until)) {
    conditions.push('s.created_at < ?');
    params.push(timestampBound(filter.until, 'filter.until'));
  }
  return { sql: conditions.join(' AND '), params };
}

function choosePlan(ctx: SqliteContext, sessionKey: string | undefined): Plan {
  if (!sessionKey) return PLANS.walkMatches;
  const count = ctx
    .sql('SELECT message_count FROM session_metadata WHERE session_key = ?')
    .pluck()
    .get(sessionKey);
  return typeof count === 'number' && count <= SESSION_PROBE_LIMIT ? PLANS.probeSession : PLANS.walkMatches;
}

interface Query {
  ctx: SqliteContext;
  plan: Plan;
  match: string;
  where: Where;
  size: number;
  scope: string;
  scorer: Bm25Scorer;
}

export function searchMessages(ctx: SqliteContext, args: SearchArgs): SearchPage {
  const parsed = parseSearchQuery(args.query, ctx.limits);
  requireAnswerable(parsed);
  const { size } = resolvePage({ first: args.first }, ctx.limits, DEFAULT_PAGE_SIZE);
  const order = args.order ?? 'RELEVANCE';
  if (order !== 'RELEVANCE' && order !== 'NEWEST') {
    throw new InvalidInputError(`unknown search order ${String(order)}`, 'order');
  }
  const filter = args.filter ?? {};
  const where = filterWhere(filter, ctx);
  const match = toFtsMatch(parsed);
  const scope = searchScope([match, where, order]);
  const ranked = order === 'RELEVANCE';
  const after =
    args.after === undefined || args.after === null ? null : decodeSearchCursor(args.after, scope, ranked);
  if (match === null) return { hits: [], hasNextPage: false };
  return ctx.snapshot(() => {
    const plan = choosePlan(ctx, filter.sessionKey || undefined);
    const scorer = createBm25Scorer(ctx, parsed.clauses.flat());
    const query: Query = { ctx, plan, match, where, size, scope, scorer };
    return ranked ? rankedPage(query, after) : newestPage(query, after);
  });
}

interface HitRow extends MessageRow {
  snippet: string;
}

function toHit(row: MessageRow, snippet: string, score: number, cursor: string): SearchHit {
  return { message: toStoredMessage(row), score, snippet, cursor };
}

/** rowid DESC is the order FTS5 walks its doclists in: it stops after size + 1 matches. */
function newestPage(q: Query, after: SearchPosition | null): SearchPage {
  const rows = q.ctx
    .sql(`SELECT ${HIT_COLUMNS}, ${SNIPPET} AS snippet FROM ${q.plan.from}
      WHERE sessions_fts MATCH ? AND ${q.plan.id} <= ? AND ${q.where.sql}
      ORDER BY ${q.plan.id} DESC LIMIT ?`)
    .all(
      ...SNIPPET_PARAMS,
      q.match,
      after ? after.id - 1 : HIGHEST,
      ...q.where.params,
      q.size + 1,
    ) as HitRow[];
  const more = rows.length > q.size;
  if (more) rows.pop();
  const hits = rows.map((row) =>
    toHit(
      row,
      row.snippet,
      q.scorer.score(row.content, row.session_key),
      encodeSearchCursor(q.scope, { id: row.id }),
    ),
  );
  return { hits, hasNextPage: more };
}

interface Candidate {
  id: number;
  score: number;
  windowTop: number;
}

const better = (a: { score: number; id: number }, b: { score: number; id: number }) =>
  b.score - a.score || b.id - a.id;

/**
 * The RANK_WINDOW newest matches at or below `top`, scored, newest first. Long contents are not
 * held for the whole window (a window of megabyte tool outputs would hold gigabytes): they are
 * read one at a time to be scored.
 */
function rankWindow(q: Query, top: number): Array<{ id: number; score: number }> {
  const rows = q.ctx
    .sql(`SELECT s.id, s.session_key,
        CASE WHEN octet_length(s.content) <= ${INLINE_CONTENT_BYTES} THEN s.content END AS content
      FROM ${q.plan.from}
      WHERE sessions_fts MATCH ? AND ${q.plan.id} <= ? AND ${q.where.sql}
      ORDER BY ${q.plan.id} DESC LIMIT ?`)
    .all(q.match, top, ...q.where.params, RANK_WINDOW) as Array<{
    id: number;
    session_key: string;
    content: string | null;
  }>;
  const long = q.ctx.sql('SELECT content FROM sessions WHERE id = ?').pluck();
  return rows.map((row) => ({
    id: row.id,
    score: q.scorer.score(row.content ?? (long.get(row.id) as string), row.session_key),
  }));
}

function rankedPage(q: Query, after: SearchPosition | null): SearchPage {
  const picked: Candidate[] = [];
  let top = after?.windowTop ?? HIGHEST;
  let resume = after ? { score: after.rank!, id: after.id } : null;
  while (picked.length <= q.size) {
    const window = rankWindow(q, top);
    if (window.length === 0) break;
    // A window is named by its top bound, so a later page re-reads the same window.
    const windowTop = top === HIGHEST ? window[0]!.id : top;
    const lowest = window.at(-1)!.id;
    window.sort(better);
    let start = 0;
    if (resume) {
      const position = resume;
      start = window.findIndex((c) => better(c, position) > 0);
      if (start === -1) start = window.length;
      resume = null;
    }
    for (const c of window.slice(start, start + q.size + 1 - picked.length)) picked.push({ ...c, windowTop });
    if (window.length < RANK_WINDOW) break;
    top = lowest - 1;
  }
  const more = picked.length > q.size;
  if (more) picked.pop();
  const ids = picked.map((c) => c.id);
  const rows = rowsById(q, ids);
  const snippets = snippetsOf(q, ids);
  const hits = picked.map((c) =>
    toHit(
      rows.get(c.id)!,
      snippets.get(c.id) ?? '',
      c.score,
      encodeSearchCursor(q.scope, { id: c.id, windowTop: c.windowTop, rank: c.score }),
    ),
  );
  return { hits, hasNextPage: more };
}

function rowsById(q: Query, ids: number[]): Map<number, MessageRow> {
  const rows = q.ctx
    // A join, not `id IN (SELECT ... json_each)`: for that the planner scans the whole table.
    .sql(`SELECT ${HIT_COLUMNS} FROM json_each(?) AS j CROSS JOIN sessions AS s ON s.id = j.value`)
    .all(JSON.stringify(ids)) as MessageRow[];
  return new Map(rows.map((row) => [row.id, row]));
}

/**
 * Snippets for the picked rows in one walk down from the highest of them. One statement per row
 * would re-open every doclist each time (~0.1 ms a row); a lower bound would make FTS5 walk from
 * the wrong end. `+rowid` keeps the IN list a filter, so snippet() runs for picked rows only.
 */
function snippetsOf(q: Query, ids: number[]): Map<number, string> {
  if (ids.length === 0) return new Map();
  const rows = q.ctx
    .sql(`SELECT rowid AS id, ${SNIPPET} AS snippet FROM sessions_fts
      WHERE sessions_fts MATCH ? AND rowid <= ? AND +rowid IN (SELECT value FROM json_each(?))
      ORDER BY rowid DESC LIMIT ?`)
    .all(...SNIPPET_PARAMS, q.match, Math.max(...ids), JSON.stringify(ids), ids.length) as Array<{
    id: number;
    snippet: string;
  }>;
  return new Map(rows.map((r) => [r.id, r.snippet]));
}

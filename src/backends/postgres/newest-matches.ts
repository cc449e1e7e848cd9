/**
 * The newest matches of a search, without the plan PostgreSQL picks for `tsv @@ q ORDER BY id
 * DESC LIMIT n` when it expects matches to be common: a backward walk of the primary key that
 * filters every row, which reads the whole table when the matches are old (a topic nobody
 * mentions any more). Instead:
 *
 * 1. Probe for up to PROBE_LIMIT matches in no particular order (the GIN bitmap for a rare word,
 *    an early-stopping scan for a common one). Fewer means that is all of them.
 * 2. Otherwise walk the RECENT_SPAN newest ids in id order, and on into older ids as far as the
 *    density seen so far says the missing matches lie, within WALK_BUDGET ids in all;
 * 3. then, below the walked ids, order by `id + 0`, which the primary key cannot serve, so the
 *    GIN bitmap does: cost grows with the number of matches, never with the table.
 *
 * Only ids are selected until the end, so ts_rank and wide columns are computed for the rows
 * returned, not for every match a bitmap visits.
 */

import type { PgTables } from './pg-context.js';
import type { Queryable } from './pg-runner.js';
import { SqlParams } from './sql-params.js';

/** @default 2_000 // matches collected whole before switching to the ordered walk */
export const PROBE_LIMIT = 2_000;
/** @default 20_000 // newest message ids walked in id order first (a few ms when nothing matches) */
export const RECENT_SPAN = 20_000;
/** @default 100_000 // message ids walked in all before the GIN bitmap takes over */
export const WALK_BUDGET = 100_000;
export const HIGHEST = Number.MAX_SAFE_INTEGER;

export interface MatchQuery {
  t: PgTables;
  /** Conditions on `messages AS m`, the tsquery match among them. */
  conditions: string[];
  /** The values of the conditions' placeholders. */
  values: readonly unknown[];
}

/** A condition or a tail that takes placeholders after the query's own. */
type Part = (params: SqlParams) => string;

async function select<T>(
  client: Queryable,
  q: MatchQuery,
  what: string,
  conditions: Part[],
  tail: string | Part,
) {
  const params = new SqlParams();
  for (const value of q.values) params.add(value);
  const where = [...q.conditions, ...conditions.map((c) => c(params))].join(' AND ');
  const end = typeof tail === 'string' ? tail : tail(params);
  const sql = `SELECT ${what} FROM ${q.t.messages} AS m WHERE ${where} ${end}`;
  return (await client.query<T & Record<string, unknown>>(sql, params.values)).rows;
}

const idAtMost =
  (id: number): Part =>
  (p) =>
    `m.id <= ${p.add(id)}`;

const idAbove =
  (id: number): Part =>
  (p) =>
    `m.id > ${p.add(id)}`;

const newest =
  (order: string, count: number): Part =>
  (p) =>
    `ORDER BY ${order} DESC LIMIT ${p.add(count)}`;

/** Ids of up to `limit` matches with id <= top, newest first. */
export async function newestMatchIds(
  client: Queryable,
  q: MatchQuery,
  top: number,
  limit: number,
): Promise<number[]> {
  const ids = async (conditions: Part[], tail: Part) =>
    (await select<{ id: number }>(client, q, 'm.id', conditions, tail)).map((r) => r.id);

  const probe = await ids([idAtMost(top)], (p) => `LIMIT ${p.add(PROBE_LIMIT)}`);
  if (probe.length < PROBE_LIMIT) return probe.sort((a, b) => b - a).slice(0, limit);

  const last = await client.query<{ id: number | null }>(
    `SELECT max(id) AS id FROM ${q.t.messages} WHERE id <= $1`,
    [top],
  );
  let high = last.rows[0]?.id ?? 0;
  let span = RECENT_SPAN;
  let walked = 0;
  const found: number[] = [];
  while (high > 0) {
    const low = Math.max(0, high - span);
    found.push(...(await ids([idAtMost(high), idAbove(low)], newest('m.id', limit - found.length))));
    walked += high - low;
    high = low;
    // Nothing in the newest ids: the matches are old, which the bitmap finds at their own cost.
    if (found.length >= limit || found.length === 0) break;
    // As dense as the ids walked so far (deleted sessions leave empty stretches), the missing
    // matches lie within `span` more ids; with a margin.
    span = Math.ceil((((limit - found.length) * walked) / found.length) * 1.5);
    if (walked + span > WALK_BUDGET) break;
  }
  if (found.length >= limit || high <= 0) return found;
  return found.concat(await ids([idAtMost(high)], newest('m.id + 0', limit - found.length)));
}

/** `columns` of the given matches, newest first; the conditions apply again (a row may have changed). */
export function selectMatches<R>(
  client: Queryable,
  q: MatchQuery,
  columns: string,
  ids: number[],
): Promise<R[]> {
  if (ids.length === 0) return Promise.resolve([]);
  return select<R>(client, q, columns, [(p) => `m.id = ANY(${p.add(ids)}::bigint[])`], 'ORDER BY m.id DESC');
}

/**
 * Opaque search cursors of the indexed backends (SQLite, PostgreSQL): base64url JSON of the last
 * hit's position, bound to the query, filter and order that produced it (a cursor from another
 * search is an InvalidInputError, not a page of someone else's results).
 */

import { createHash } from 'node:crypto';
import { InvalidInputError } from '../errors.js';

export interface SearchPosition {
  /** The hit's message id (its seq). */
  id: number;
  /** RELEVANCE only: the highest message id of the ranking window the hit came from. */
  windowTop?: number;
  /** RELEVANCE only: the hit's score, exactly as computed (the order's key: bm25, ts_rank). */
  rank?: number;
}

interface Encoded {
  s: string;
  i: number;
  w?: number;
  r?: number;
}

export function searchScope(parts: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url').slice(0, 12);
}

export function encodeSearchCursor(scope: string, position: SearchPosition): string {
  const body: Encoded = { s: scope, i: position.id };
  if (position.windowTop !== undefined) body.w = position.windowTop;
  if (position.rank !== undefined) body.r = position.rank;
  return Buffer.from(JSON.stringify(body)).toString('base64url');
}

export function decodeSearchCursor(cursor: unknown, scope: string, ranked: boolean): SearchPosition {
  const bad = () => new InvalidInputError('after is not a cursor of this search', 'after');
  if (typeof cursor !== 'string' || cursor.length > 512) throw bad();
  let body: Partial<Encoded>;
  try {
    body = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Partial<Encoded>;
  } catch {
    throw bad();
  }
  if (typeof body !== 'object' || body === null || body.s !== scope || !Number.isSafeInteger(body.i)) {
    throw bad();
  }
  if (!ranked) return { id: body.i! };
  if (!Number.isSafeInteger(body.w) || typeof body.r !== 'number' || !Number.isFinite(body.r)) throw bad();
  return { id: body.i!, windowTop: body.w!, rank: body.r };
}

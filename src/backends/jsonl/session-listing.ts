/**
 * The session listing over what a directory scan found: filter, order, and keyset paging in both
 * directions. Pure; the caller stats the files and fills in the page's details afterwards.
 */

import { InvalidInputError } from '../../errors.js';
import type { SessionCursor, SessionOrder, SessionPageArgs, StoreLimits } from '../backend.js';
import { DEFAULT_PAGE_SIZE } from '../backend.js';
import { channelOf } from '../keys.js';
import { resolvePage, validateTimestamp } from '../validate.js';

export interface ListedSession {
  key: string;
  /** Canonical timestamp text (the file's mtime). */
  lastActivityAt: string;
}

/** Keys ordered by code point, which is UTF-8 byte order (SQLite's BINARY), not UTF-16 order. */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x - y;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}

function compareActivity(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  return a < b ? -1 : 1;
}

/** Position of `a` relative to `b` in `order` (negative: `a` comes first). */
function compareIn(order: SessionOrder, a: SessionCursor, b: SessionCursor): number {
  switch (order) {
    case 'KEY_ASC':
      return compareKeys(a.key, b.key);
    case 'KEY_DESC':
      return compareKeys(b.key, a.key);
    case 'LAST_ACTIVITY_ASC':
      return compareActivity(a.lastActivityAt, b.lastActivityAt) || compareKeys(a.key, b.key);
    case 'LAST_ACTIVITY_DESC':
      return compareActivity(b.lastActivityAt, a.lastActivityAt) || compareKeys(b.key, a.key);
  }
}

function timestampArg(value: string | null | undefined, field: string): string | null | undefined {
  if (value === undefined || value === null) return value;
  return validateTimestamp(value, field);
}

function cursorArg(cursor: SessionCursor | undefined, field: string): SessionCursor | undefined {
  if (cursor === undefined) return undefined;
  if (typeof cursor !== 'object' || cursor === null || typeof cursor.key !== 'string') {
    throw new InvalidInputError(`${field} is not a session cursor`, field);
  }
  return { key: cursor.key, lastActivityAt: timestampArg(cursor.lastActivityAt, field) ?? null };
}

const ORDERS: readonly SessionOrder[] = ['LAST_ACTIVITY_DESC', 'LAST_ACTIVITY_ASC', 'KEY_ASC', 'KEY_DESC'];

export function pageSessions<T extends ListedSession>(
  all: readonly T[],
  args: SessionPageArgs,
  limits: StoreLimits,
): { items: T[]; hasNextPage: boolean; hasPreviousPage: boolean } {
  const order = args.order ?? 'LAST_ACTIVITY_DESC';
  if (!ORDERS.includes(order)) throw new InvalidInputError(`unknown session order ${String(order)}`, 'order');
  const { forward, size } = resolvePage(args, limits, DEFAULT_PAGE_SIZE);
  const filter = args.filter ?? {};
  const since = timestampArg(filter.activeSince, 'filter.activeSince');
  const before = timestampArg(filter.activeBefore, 'filter.activeBefore');
  const after = cursorArg(args.after, 'after');
  const beforeCursor = cursorArg(args.before, 'before');

  const matching = all.filter(
    (s) =>
      (filter.keyPrefix === undefined || s.key.startsWith(filter.keyPrefix)) &&
      (filter.channel === undefined || channelOf(s.key) === filter.channel) &&
      (since === undefined || since === null || s.lastActivityAt >= since) &&
      (before === undefined || before === null || s.lastActivityAt < before),
  );
  matching.sort((a, b) => compareIn(order, a, b));

  let lo = 0;
  let hi = matching.length;
  if (after) {
    while (lo < hi && compareIn(order, matching[lo]!, after) <= 0) lo++;
  }
  if (beforeCursor) {
    while (hi > lo && compareIn(order, matching[hi - 1]!, beforeCursor) >= 0) hi--;
  }
  if (forward) {
    const end = Math.min(hi, lo + size);
    return {
      items: matching.slice(lo, end),
      hasNextPage: end < hi,
      hasPreviousPage: after !== undefined && lo > 0,
    };
  }
  const start = Math.max(lo, hi - size);
  return {
    items: matching.slice(start, hi),
    hasNextPage: beforeCursor !== undefined && hi < matching.length,
    hasPreviousPage: start > lo,
  };
}

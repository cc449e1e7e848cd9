/**
 * WHERE fragments shared by the session listing and search. A key prefix is an index range
 * (prefix-range.ts).
 */

import type { StoreLimits } from '../backend.js';
import { prefixSuccessor } from '../prefix-range.js';
import { validateKey, validateTimestamp } from '../validate.js';

export interface SqlCondition {
  /** SQL with `?` placeholders. */
  where: string;
  params: string[];
}

export function keyPrefixRange(column: string, prefix: string): SqlCondition {
  const upper = prefixSuccessor(prefix);
  return upper === null
    ? { where: `${column} >= ?`, params: [prefix] }
    : { where: `${column} >= ? AND ${column} < ?`, params: [prefix, upper] };
}

/** A key-prefix filter value: the key rules apply, except that empty means no filter. */
export function prefixCondition(
  column: string,
  prefix: unknown,
  limits: StoreLimits,
  field: string,
): SqlCondition | null {
  if (prefix === undefined || prefix === null || prefix === '') return null;
  return keyPrefixRange(column, validateKey(prefix, limits, field));
}

/**
 * Timestamps are compared as text, as zeroclaw does, so a bound must be in the canonical form;
 * any RFC 3339 input is converted to it.
 */
export function timestampBound(value: unknown, field: string): string {
  return validateTimestamp(value, field);
}

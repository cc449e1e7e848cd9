/** `key starts with prefix` as a PostgreSQL index range (see prefix-range.ts). */

import type { StoreLimits } from '../backend.js';
import { prefixSuccessor } from '../prefix-range.js';
import { validateKey } from '../validate.js';
import type { SqlParams } from './sql-params.js';

export function keyPrefixRange(column: string, prefix: string, params: SqlParams): string {
  const upper = prefixSuccessor(prefix);
  const lower = `${column} >= ${params.add(prefix)}`;
  return upper === null ? lower : `${lower} AND ${column} < ${params.add(upper)}`;
}

/** A key-prefix filter: the key rules apply, except that empty means no filter (null). */
export function keyPrefixCondition(
  column: string,
  prefix: unknown,
  limits: StoreLimits,
  field: string,
  params: SqlParams,
): string | null {
  if (prefix === undefined || prefix === null || prefix === '') return null;
  return keyPrefixRange(column, validateKey(prefix, limits, field), params);
}

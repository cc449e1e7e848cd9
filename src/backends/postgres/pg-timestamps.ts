/**
 * Timestamps are stored as `timestamptz` and stamped by the database clock, not by each
 * instance's clock: several instances share one store, and lastActivityAt must order their writes
 * by one clock. They are returned as the canonical text of timestamps.ts (microseconds padded to
 * 9 digits), so API output looks the same as SQLite's.
 */

import { InvalidInputError } from '../../errors.js';
import { canonicalTimestamp } from '../timestamps.js';

/** SQL that renders a timestamptz column as canonical text. */
export function tsText(column: string): string {
  return `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"000+00:00"')`;
}

/**
 * A client-supplied bound as timestamptz text. Stored values have microsecond precision, so a
 * bound with more digits is rounded up: `>= bound` and `< bound` then select exactly the stored
 * values they would select against the nanosecond bound.
 */
export function timestampBound(value: unknown, field: string): string {
  const canonical = typeof value === 'string' ? canonicalTimestamp(value) : null;
  if (canonical === null) throw new InvalidInputError(`${field} must be an RFC 3339 timestamp`, field);
  const seconds = BigInt(Date.parse(`${canonical.slice(0, 19)}Z`) / 1_000);
  const nanos = BigInt(canonical.slice(20, 29));
  const micros = nanos / 1_000n + (nanos % 1_000n === 0n ? 0n : 1n);
  const carry = micros / 1_000_000n;
  const whole = new Date(Number((seconds + carry) * 1_000n)).toISOString().slice(0, 19);
  return `${whole}.${(micros % 1_000_000n).toString().padStart(6, '0')}+00:00`;
}

/**
 * Canonical text cut to the microseconds PostgreSQL stores, digits below padded with zeros:
 * exactly what a read returns after the value is written. Truncated rather than rounded, so the
 * order of two values never flips.
 */
export function toMicros(canonical: string): string {
  return `${canonical.slice(0, 26)}000+00:00`;
}

/**
 * Timestamps are stored as `timestamptz` and stamped by the database clock, not by each
 * instance's clock: several instances share one store, and lastActivityAt must order their writes
 * by one clock. They are returned as the canonical text of timestamps.ts (microseconds padded to
 * 9 digits), so API output looks the same as SQLite's.
 *
 * PostgreSQL has no year 0 in its text: ISO year 0000 (the earliest we accept) is its `0001 BC`.
 * Every timestamp sent goes through pgTimestamp or timestampBound and every one read through
 * tsText, which translate it both ways.
 */

import { validateTimestamp } from '../validate.js';

/** The first instant PostgreSQL writes without `BC`. */
const YEAR_ONE = `'0001-01-01T00:00:00+00:00'::timestamptz`;

/**
 * SQL that renders a timestamptz column as canonical text. Only 1 BC lies before year one among
 * the values we write; an earlier one written by another program would read as year 0000 too.
 */
export function tsText(column: string): string {
  const rest = `to_char(${column} AT TIME ZONE 'UTC', '-MM-DD"T"HH24:MI:SS.US"000+00:00"')`;
  return `(CASE WHEN ${column} < ${YEAR_ONE} THEN '0000' ELSE to_char(${column} AT TIME ZONE 'UTC', 'YYYY') END || ${rest})`;
}

/** Canonical text (or a bound with 6 fraction digits) as timestamptz input text. */
function pgText(text: string): string {
  return text.startsWith('0000-') ? `0001${text.slice(4)} BC` : text;
}

/**
 * A canonical timestamp as the timestamptz text to store: cut to microseconds (toMicros), the
 * value a read returns afterwards.
 */
export function pgTimestamp(canonical: string): string {
  return pgText(toMicros(canonical));
}

/**
 * A client-supplied bound as timestamptz text. Stored values have microsecond precision, so a
 * bound with more digits is rounded up: `>= bound` and `< bound` then select exactly the stored
 * values they would select against the nanosecond bound (truncating would let `>=` take a value
 * just below the bound). Rounding 9999-12-31T23:59:59.9999999 up gives year 10000, which
 * timestamptz holds (past every storable value), so the carry needs no special case.
 */
export function timestampBound(value: unknown, field: string): string {
  const canonical = validateTimestamp(value, field);
  const nanos = BigInt(canonical.slice(20, 29));
  const micros = nanos / 1_000n + (nanos % 1_000n === 0n ? 0n : 1n);
  if (micros < 1_000_000n)
    return pgText(`${canonical.slice(0, 20)}${micros.toString().padStart(6, '0')}+00:00`);
  const next = new Date(Date.parse(`${canonical.slice(0, 19)}Z`) + 1_000);
  const year = next.getUTCFullYear().toString().padStart(4, '0');
  return pgText(`${year}${next.toISOString().slice(-20, -5)}.000000+00:00`);
}

/**
 * Canonical text cut to the microseconds PostgreSQL stores, digits below padded with zeros:
 * exactly what a read returns after the value is written. Truncated rather than rounded, so the
 * order of two values never flips, and 9999-12-31T23:59:59.9999999 stays in year 9999.
 */
export function toMicros(canonical: string): string {
  return `${canonical.slice(0, 26)}000+00:00`;
}

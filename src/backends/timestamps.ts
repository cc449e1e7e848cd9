/**
 * chrono-style RFC 3339 timestamps: `YYYY-MM-DDTHH:MM:SS.fffffffff+00:00`, always UTC with a
 * `+00:00` offset (never `Z`). zeroclaw compares them as TEXT, so every writer must use exactly
 * this shape; 9 fraction digits keep text order equal to time order.
 *
 * The accepted range is the one this shape can write with four year digits, UTC years 0000 to
 * 9999 (MIN_TIMESTAMP..MAX_TIMESTAMP): every backend stores and compares all of it (SQLite and
 * JSONL as this text, PostgreSQL as timestamptz, year 0000 being its 1 BC). An input whose offset
 * moves it outside (`0000-01-01T00:00:00+01:00`) is refused, never wrapped into another year.
 */

/** The earliest instant accepted: 1 BC in PostgreSQL's terms. */
export const MIN_TIMESTAMP = '0000-01-01T00:00:00.000000000+00:00';
/** The latest instant accepted. */
export const MAX_TIMESTAMP = '9999-12-31T23:59:59.999999999+00:00';

/** Epoch milliseconds of MIN_TIMESTAMP, and of the instant just past MAX_TIMESTAMP. */
const MIN_MS = -62_167_219_200_000;
const END_MS = 253_402_300_800_000;

let lastNanos = 0n;

/** Now, strictly increasing within this process (sub-millisecond digits come from a counter). */
export function nowTimestamp(): string {
  let nanos = BigInt(Date.now()) * 1_000_000n;
  if (nanos <= lastNanos) nanos = lastNanos + 1n;
  lastNanos = nanos;
  return formatNanos(nanos);
}

/** A Date (or epoch milliseconds) as canonical timestamp text; RangeError outside the accepted range. */
export function toTimestamp(value: Date | number): string {
  const ms = typeof value === 'number' ? value : value.getTime();
  if (!Number.isFinite(ms)) throw new RangeError('invalid date');
  return formatNanos(BigInt(Math.trunc(ms)) * 1_000_000n);
}

/** Why `text` is not an accepted timestamp: its shape, or its range. */
export type TimestampProblem = 'format' | 'range';

/**
 * Canonical text for an RFC 3339 input (other offsets, `Z`, 0-9 fraction digits), or what is wrong
 * with it. Years 0-99 are those years: no two-digit-year rule applies. A leap second (`:60`) is
 * read as the first second of the next minute, as PostgreSQL reads it.
 */
export function parseTimestamp(text: string): { canonical: string } | { problem: TimestampProblem } {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})$/.exec(
    text,
  );
  if (!m) return { problem: 'format' };
  const [, y, mo, d, h, mi, s, frac = '', off] = m as unknown as string[];
  const [year, month, day, hour, minute, second] = [y, mo, d, h, mi, s].map(Number) as number[] as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 60) return { problem: 'format' };
  // setUTCFullYear, unlike Date.UTC, takes years 0-99 as they are.
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  // A day past the month's end rolls over into the next month: refuse it (February 30).
  if (date.getUTCMonth() !== month - 1) return { problem: 'format' };
  date.setUTCHours(hour, minute, second, 0);
  let offsetMs = 0;
  if (off && off.toUpperCase() !== 'Z') {
    const offHours = Number(off.slice(1, 3));
    const offMinutes = Number(off.slice(4, 6));
    if (offHours > 23 || offMinutes > 59) return { problem: 'format' };
    offsetMs = (off.startsWith('-') ? -1 : 1) * (offHours * 60 + offMinutes) * 60_000;
  }
  const ms = date.getTime() - offsetMs;
  if (ms < MIN_MS || ms >= END_MS) return { problem: 'range' };
  return { canonical: formatNanos(BigInt(ms) * 1_000_000n + BigInt(frac.padEnd(9, '0'))) };
}

/** Canonical text for any accepted RFC 3339 input (see parseTimestamp); null if it is not one. */
export function canonicalTimestamp(text: string): string | null {
  const parsed = parseTimestamp(text);
  return 'canonical' in parsed ? parsed.canonical : null;
}

/** What a refused timestamp is told: the shape and the range we accept. */
export function timestampProblemText(field: string, problem: TimestampProblem): string {
  return problem === 'range'
    ? `${field} is outside the supported range: UTC years 0000 to 9999 (${MIN_TIMESTAMP} to ${MAX_TIMESTAMP})`
    : `${field} must be an RFC 3339 timestamp with a time zone, e.g. 2026-03-24T21:51:41.123+00:00`;
}

/** Epoch milliseconds of a stored timestamp, or null when it does not parse. */
export function timestampMillis(text: string): number | null {
  const canonical = canonicalTimestamp(text);
  return canonical === null ? null : Date.parse(canonical.replace(/\.(\d{3})\d{6}/, '.$1'));
}

function formatNanos(nanos: bigint): string {
  // Floor division: instants before 1970 are negative, and their fraction still counts upwards.
  const second = nanos >= 0n ? nanos / 1_000_000_000n : -((-nanos + 999_999_999n) / 1_000_000_000n);
  const ms = Number(second) * 1_000;
  if (ms < MIN_MS || ms >= END_MS) throw new RangeError('invalid date: outside years 0000 to 9999');
  const iso = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z within the range
  const frac = (nanos - second * 1_000_000_000n).toString().padStart(9, '0');
  return `${iso.slice(0, 19)}.${frac}+00:00`;
}

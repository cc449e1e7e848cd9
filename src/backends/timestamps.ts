/**
 * chrono-style RFC 3339 timestamps: `YYYY-MM-DDTHH:MM:SS.fffffffff+00:00`, always UTC with a
 * `+00:00` offset (never `Z`). zeroclaw compares them as TEXT, so every writer must use exactly
 * this shape; 9 fraction digits keep text order equal to time order.
 */

let lastNanos = 0n;

/** Now, strictly increasing within this process (sub-millisecond digits come from a counter). */
export function nowTimestamp(): string {
  let nanos = BigInt(Date.now()) * 1_000_000n;
  if (nanos <= lastNanos) nanos = lastNanos + 1n;
  lastNanos = nanos;
  return formatNanos(nanos);
}

/** A Date (or epoch milliseconds) as canonical timestamp text. */
export function toTimestamp(value: Date | number): string {
  const ms = typeof value === 'number' ? value : value.getTime();
  if (!Number.isFinite(ms)) throw new RangeError('invalid date');
  return formatNanos(BigInt(Math.trunc(ms)) * 1_000_000n);
}

/** Canonical text for any RFC 3339 input (other offsets, `Z`, 0-9 fraction digits); null if unparsable. */
export function canonicalTimestamp(text: string): string | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})$/.exec(
    text,
  );
  if (!m) return null;
  const [, y, mo, d, h, mi, s, frac = '', off] = m as unknown as string[];
  const base = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  if (Number.isNaN(base)) return null;
  const check = new Date(base);
  // Date.UTC rolls over out-of-range fields (month 13, February 30, hour 24): refuse them.
  if (
    check.getUTCMonth() !== Number(mo) - 1 ||
    check.getUTCDate() !== Number(d) ||
    check.getUTCHours() !== Number(h)
  ) {
    return null;
  }
  let offsetMs = 0;
  if (off && off.toUpperCase() !== 'Z') {
    const sign = off.startsWith('-') ? -1 : 1;
    offsetMs = sign * (Number(off.slice(1, 3)) * 60 + Number(off.slice(4, 6))) * 60_000;
  }
  const nanos = BigInt(base - offsetMs) * 1_000_000n + BigInt(frac.padEnd(9, '0'));
  return formatNanos(nanos);
}

/** Epoch milliseconds of a stored timestamp, or null when it does not parse. */
export function timestampMillis(text: string): number | null {
  const canonical = canonicalTimestamp(text);
  return canonical === null ? null : Date.parse(canonical.replace(/\.(\d{3})\d{6}/, '.$1'));
}

function formatNanos(nanos: bigint): string {
  const ms = Number(nanos / 1_000_000n);
  const iso = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  const frac = (nanos % 1_000_000_000n).toString().padStart(9, '0');
  return `${iso.slice(0, 19)}.${frac}+00:00`;
}

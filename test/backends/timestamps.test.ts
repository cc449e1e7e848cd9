/**
 * canonicalTimestamp against an independent oracle: the proleptic Gregorian calendar in BigInt
 * day arithmetic (Howard Hinnant's days_from_civil), no JavaScript Date anywhere, so its
 * two-digit-year rule and its formatting cannot hide in both sides. Seeded random inputs over
 * the whole accepted range and its edges, with offsets that push some outside it.
 */

import { describe, expect, it } from 'vitest';
import {
  canonicalTimestamp,
  MAX_TIMESTAMP,
  MIN_TIMESTAMP,
  parseTimestamp,
  toTimestamp,
} from '../../src/backends/timestamps.js';
import { prng } from '../helpers/prng.js';

const DAY_NS = 86_400_000_000_000n;

function floorDiv(a: bigint, b: bigint): bigint {
  return a >= 0n ? a / b : -((-a + b - 1n) / b);
}

/** Days since 1970-01-01 of a proleptic Gregorian date (any year, 0 included). */
function daysFromCivil(y: bigint, m: bigint, d: bigint): bigint {
  const year = m <= 2n ? y - 1n : y;
  const era = floorDiv(year, 400n);
  const yoe = year - era * 400n;
  const doy = (153n * (m + (m > 2n ? -3n : 9n)) + 2n) / 5n + d - 1n;
  const doe = yoe * 365n + yoe / 4n - yoe / 100n + doy;
  return era * 146_097n + doe - 719_468n;
}

function civilFromDays(z: bigint): [bigint, bigint, bigint] {
  const shifted = z + 719_468n;
  const era = floorDiv(shifted, 146_097n);
  const doe = shifted - era * 146_097n;
  const yoe = (doe - doe / 1_460n + doe / 36_524n - doe / 146_096n) / 365n;
  const doy = doe - (365n * yoe + yoe / 4n - yoe / 100n);
  const mp = (5n * doy + 2n) / 153n;
  const d = doy - (153n * mp + 2n) / 5n + 1n;
  const m = mp < 10n ? mp + 3n : mp - 9n;
  return [yoe + era * 400n + (m <= 2n ? 1n : 0n), m, d];
}

const pad = (n: bigint, width: number) => n.toString().padStart(width, '0');

/** The oracle's canonical text for epoch nanoseconds, or null outside years 0000-9999. */
function oracleText(nanos: bigint): string | null {
  const days = floorDiv(nanos, DAY_NS);
  const [y, m, d] = civilFromDays(days);
  if (y < 0n || y > 9_999n) return null;
  let rest = nanos - days * DAY_NS;
  const h = rest / 3_600_000_000_000n;
  rest -= h * 3_600_000_000_000n;
  const mi = rest / 60_000_000_000n;
  rest -= mi * 60_000_000_000n;
  const s = rest / 1_000_000_000n;
  const frac = rest - s * 1_000_000_000n;
  return `${pad(y, 4)}-${pad(m, 2)}-${pad(d, 2)}T${pad(h, 2)}:${pad(mi, 2)}:${pad(s, 2)}.${pad(frac, 9)}+00:00`;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const isLeap = (y: number) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;

describe('canonicalTimestamp', () => {
  const seed = Number(process.env.SESSIONGRAPH_TEST_SEED ?? Date.now() % 2_147_483_647);

  it('agrees with calendar arithmetic over years 0000-9999, offsets and fractions', () => {
    console.log(`timestamps property seed: ${seed} (SESSIONGRAPH_TEST_SEED replays it)`);
    const random = prng(seed);
    const int = (n: number) => Math.floor(random() * n);
    // Years near both ends and in 0-99 far more often than a uniform pick would give them.
    const year = () => [int(100), 9_900 + int(100), int(10_000), int(2) === 0 ? 0 : 9_999][int(4)]!;
    let outside = 0;
    for (let i = 0; i < 5_000; i++) {
      const y = year();
      // At the ends of the range, often the very first or last day, where an offset crosses it.
      const edge = (y === 0 || y === 9_999) && int(2) === 0;
      const m = edge ? (y === 0 ? 1 : 12) : 1 + int(12);
      const d = edge ? (y === 0 ? 1 : 31) : 1 + int(m === 2 && isLeap(y) ? 29 : DAYS_IN_MONTH[m - 1]!);
      const h = int(24);
      const mi = int(60);
      const s = int(60);
      const digits = int(10);
      const frac = digits === 0 ? '' : String(int(10 ** digits)).padStart(digits, '0');
      const offMinutes = int(3) === 0 ? 0 : int(2 * 24 * 60 - 1) - (24 * 60 - 1);
      const offset =
        offMinutes === 0 && int(2) === 0
          ? 'Z'
          : `${offMinutes < 0 ? '-' : '+'}${pad(BigInt(Math.floor(Math.abs(offMinutes) / 60)), 2)}:${pad(
              BigInt(Math.abs(offMinutes) % 60),
              2,
            )}`;
      const text = `${pad(BigInt(y), 4)}-${pad(BigInt(m), 2)}-${pad(BigInt(d), 2)}T${pad(BigInt(h), 2)}:${pad(
        BigInt(mi),
        2,
      )}:${pad(BigInt(s), 2)}${frac ? `.${frac}` : ''}${offset}`;
      const local =
        daysFromCivil(BigInt(y), BigInt(m), BigInt(d)) * DAY_NS +
        BigInt(h * 3_600 + mi * 60 + s) * 1_000_000_000n +
        BigInt(frac.padEnd(9, '0') || '0');
      const expected = oracleText(local - BigInt(offMinutes) * 60_000_000_000n);
      const parsed = parseTimestamp(text);
      if (expected === null) {
        outside++;
        expect(parsed, text).toEqual({ problem: 'range' });
      } else {
        expect(parsed, text).toEqual({ canonical: expected });
        // Canonical text is a fixed point.
        expect(canonicalTimestamp(expected), text).toBe(expected);
      }
    }
    // The offsets did reach past both ends.
    expect(outside).toBeGreaterThan(0);
  });

  it('keeps the ends of the range and refuses a step beyond either', () => {
    expect(canonicalTimestamp('0000-01-01T00:00:00Z')).toBe(MIN_TIMESTAMP);
    expect(canonicalTimestamp('9999-12-31T23:59:59.999999999Z')).toBe(MAX_TIMESTAMP);
    expect(canonicalTimestamp('0001-01-01T00:59:59.999999999+01:00')).toBe(
      '0000-12-31T23:59:59.999999999+00:00',
    );
    expect(parseTimestamp('0000-01-01T00:00:00+00:01')).toEqual({ problem: 'range' });
    expect(parseTimestamp('9999-12-31T23:59:59.999999999-00:01')).toEqual({ problem: 'range' });
    expect(parseTimestamp('9999-12-31T23:59:60Z')).toEqual({ problem: 'range' });
    expect(parseTimestamp('2024-02-30T00:00:00Z')).toEqual({ problem: 'format' });
    expect(parseTimestamp('2023-02-29T00:00:00Z')).toEqual({ problem: 'format' });
    expect(parseTimestamp('0000-02-29T00:00:00Z')).toEqual({
      canonical: '0000-02-29T00:00:00.000000000+00:00',
    });
    expect(parseTimestamp('2024-01-01T00:00:00+24:00')).toEqual({ problem: 'format' });
    expect(parseTimestamp('2024-01-01T00:60:00Z')).toEqual({ problem: 'format' });
    expect(toTimestamp(-1)).toBe('1969-12-31T23:59:59.999000000+00:00');
    expect(() => toTimestamp(Date.UTC(10_000, 0, 1))).toThrow(RangeError);
  });
});

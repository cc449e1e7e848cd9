/**
 * `key starts with prefix` as an index range, without LIKE (whose `%`, `_`, `\\` and case folding
 * would need escaping). SQLite compares TEXT as UTF-8 bytes and the PostgreSQL key columns use the
 * "C" collation, both of which order like code points, so every key that starts with `prefix`
 * lies in [prefix, prefixSuccessor(prefix)).
 */

/** The smallest string above every string that starts with `prefix`; null if none exists. */
export function prefixSuccessor(prefix: string): string | null {
  const points = [...prefix].map((ch) => ch.codePointAt(0)!);
  while (points.length > 0) {
    let next = points.pop()! + 1;
    if (next >= 0xd800 && next <= 0xdfff) next = 0xe000;
    if (next <= 0x10ffff) return String.fromCodePoint(...points, next);
  }
  return null;
}

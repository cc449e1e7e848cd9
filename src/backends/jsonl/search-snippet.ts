/**
 * Snippets for scanned search hits, shaped like FTS5's `snippet()`: a window of tokens around the
 * first match, every match inside it wrapped in SNIPPET_OPEN/SNIPPET_CLOSE, and `…` where the
 * content was cut.
 */

import { SNIPPET_CLOSE, SNIPPET_OPEN } from '../backend.js';
import type { TextToken } from '../search-query.js';

/** @default 14 // tokens per snippet */
export const SNIPPET_TOKENS = 14;
/** Tokens shown before the first match. */
const LEAD_TOKENS = 4;
const ELLIPSIS = '…';

/**
 * @param tokens the content's tokens (search-query.ts `tokenize`)
 * @param ranges token index ranges [start, end) of the matches, sorted by start
 */
export function buildSnippet(
  text: string,
  tokens: readonly TextToken[],
  ranges: ReadonlyArray<readonly [number, number]>,
): string {
  if (tokens.length === 0) return text;
  const first = ranges[0]?.[0] ?? 0;
  const to = Math.min(tokens.length, Math.max(0, first - LEAD_TOKENS) + SNIPPET_TOKENS);
  const from = Math.max(0, to - SNIPPET_TOKENS);
  const startChar = from === 0 ? 0 : tokens[from]!.start;
  const endChar = to === tokens.length ? text.length : tokens[to - 1]!.end;

  let out = from === 0 ? '' : ELLIPSIS;
  let cursor = startChar;
  for (const [a, b] of mergeRanges(ranges, from, to)) {
    const open = tokens[a]!.start;
    const close = tokens[b - 1]!.end;
    out += `${text.slice(cursor, open)}${SNIPPET_OPEN}${text.slice(open, close)}${SNIPPET_CLOSE}`;
    cursor = close;
  }
  out += text.slice(cursor, endChar);
  return to === tokens.length ? out : out + ELLIPSIS;
}

/** The ranges clipped to [from, to), overlapping ones joined. */
function mergeRanges(
  ranges: ReadonlyArray<readonly [number, number]>,
  from: number,
  to: number,
): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const [a0, b0] of ranges) {
    const a = Math.max(a0, from);
    const b = Math.min(b0, to);
    if (a >= b) continue;
    const last = out[out.length - 1];
    if (last && a < last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

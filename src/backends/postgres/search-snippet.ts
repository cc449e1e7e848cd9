/**
 * Snippets cut here, not by `ts_headline`: ts_headline re-parses the content with PostgreSQL's
 * parser and `simple` config, so it misses matches our tokens find (`Café` for `cafe`, `example`
 * inside `example.com`). The query is matched over the same tokens the tsvector was built from
 * (search-query.ts), so every match is marked, phrases and prefixes included.
 *
 * The shape follows FTS5's `snippet()`: a window of tokens from just before the first match,
 * matches wrapped in SNIPPET_OPEN/SNIPPET_CLOSE, `…` where the content was cut.
 */

import { SNIPPET_CLOSE, SNIPPET_OPEN } from '../backend.js';
import { matchTokens, type ParsedQuery, tokenize } from '../search-query.js';

/** @default 16 // tokens per snippet, as the SQLite backend's */
export const SNIPPET_TOKENS = 16;
/** Tokens shown before the first match. */
const LEAD_TOKENS = 4;
const ELLIPSIS = '…';
/** Marker characters in the content itself would read as matches: they become U+FFFD. */
const MARKERS = new RegExp(`[${SNIPPET_OPEN}${SNIPPET_CLOSE}]`, 'gu');

export function buildSnippet(content: string, query: ParsedQuery): string {
  const text = content.replace(MARKERS, '\uFFFD');
  const tokens = tokenize(text);
  if (tokens.length === 0) return text;
  // Past PostgreSQL's position caps the index may match where the tokens do not: no marks then.
  const ranges = matchTokens(query, tokens)?.ranges ?? [];
  const first = ranges[0]?.[0] ?? 0;
  const to = Math.min(tokens.length, Math.max(0, first - LEAD_TOKENS) + SNIPPET_TOKENS);
  const from = Math.max(0, to - SNIPPET_TOKENS);
  const startChar = from === 0 ? 0 : tokens[from]!.start;
  const endChar = to === tokens.length ? text.length : tokens[to - 1]!.end;

  let out = from === 0 ? '' : ELLIPSIS;
  let cursor = startChar;
  let openUntil = -1;
  for (const [a0, b0] of ranges) {
    const a = Math.max(a0, from, openUntil);
    const b = Math.min(b0, to);
    if (a >= b) continue;
    const open = tokens[a]!.start;
    const close = tokens[b - 1]!.end;
    out += `${text.slice(cursor, open)}${SNIPPET_OPEN}${text.slice(open, close)}${SNIPPET_CLOSE}`;
    cursor = close;
    openUntil = b;
  }
  out += text.slice(cursor, endChar);
  return to === tokens.length ? out : out + ELLIPSIS;
}

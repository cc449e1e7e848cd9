/**
 * The `tsvector` of a message, built here from search-query.ts's tokenizer rather than by
 * `to_tsvector`: PostgreSQL's parser keeps `example.com`, `a@b.com`, `/usr/bin` and `v1.2` as
 * single tokens and its `simple` config does not fold diacritics, so a generated
 * `to_tsvector('simple', content)` column would not find what the query language (unicode61-like
 * tokens) asks for. Lexemes and positions are written as tsvector input syntax, so no parser runs.
 *
 * PostgreSQL's own caps apply, as `to_tsvector` applies them: lexemes over 2,047 bytes are
 * skipped, positions stop at 16,383, a lexeme keeps at most 256 positions, and the lexemes of one
 * message total at most 1 MiB (later new words are not indexed).
 */

import { tokenize } from '../search-query.js';

export const MAX_LEXEME_BYTES = 2_047;
const MAX_POSITION = 16_383;
const MAX_POSITIONS = 256;
const MAX_LEXEME_TOTAL_BYTES = 1_048_575;

/** A lexeme in tsquery/tsvector input syntax: quoted, with `'` and `\` escaped. */
export function quoteLexeme(lexeme: string): string {
  return `'${lexeme.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;
}

export function tsvectorLiteral(content: string): string {
  const positions = new Map<string, number[]>();
  let position = 0;
  let total = 0;
  for (const { token } of tokenize(content)) {
    // Skipped words still take a position, so a phrase never matches across them.
    position = Math.min(position + 1, MAX_POSITION);
    let list = positions.get(token);
    if (!list) {
      const bytes = Buffer.byteLength(token, 'utf8');
      if (bytes > MAX_LEXEME_BYTES || total + bytes > MAX_LEXEME_TOTAL_BYTES) continue;
      total += bytes;
      list = [];
      positions.set(token, list);
    }
    if (list.length < MAX_POSITIONS && list.at(-1) !== position) list.push(position);
  }
  const out: string[] = [];
  for (const [lexeme, list] of positions) out.push(`${quoteLexeme(lexeme)}:${list.join(',')}`);
  return out.join(' ');
}

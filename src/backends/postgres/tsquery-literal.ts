/**
 * The query language (search-query.ts) as a `tsquery`, written in tsquery input syntax and cast
 * with `::tsquery`: every lexeme is quoted (`'word'`, `'pre':*`), phrases are `<->` chains, `|`
 * joins a clause, `&` joins clauses, `!` excludes. User text only ever appears inside quotes, so no
 * input can raise a tsquery syntax error. `to_tsquery` is not used because it would run
 * PostgreSQL's parser over the lexemes again, and the tsvector side (tsvector-literal.ts) has none.
 */

import { TooLargeError } from '../../errors.js';
import type { ParsedQuery, QueryTerm } from '../search-query.js';
import { MAX_LEXEME_BYTES, quoteLexeme } from './tsvector-literal.js';

/**
 * @default 1_000 // words per quoted phrase: a `<->` chain nests one level per word, and past
 * about 10,000 PostgreSQL's parser runs out of stack
 */
export const MAX_PHRASE_TOKENS = 1_000;

/** null: the term names a lexeme no tsvector can hold, so it matches nothing. */
function termQuery(term: QueryTerm): string | null {
  if (term.tokens.length > MAX_PHRASE_TOKENS) {
    throw new TooLargeError(
      `a phrase holds at most ${MAX_PHRASE_TOKENS} words; got ${term.tokens.length}`,
      'query',
      MAX_PHRASE_TOKENS,
      term.tokens.length,
      'items',
    );
  }
  if (term.tokens.some((t) => Buffer.byteLength(t, 'utf8') > MAX_LEXEME_BYTES)) return null;
  const lexemes = term.tokens.map(quoteLexeme);
  if (term.prefix) lexemes[lexemes.length - 1] += ':*';
  return lexemes.length === 1 ? lexemes[0]! : `(${lexemes.join(' <-> ')})`;
}

/** The tsquery text, or null when the query can match nothing. */
export function tsqueryLiteral(query: ParsedQuery): string | null {
  if (query.clauses.length === 0) return null;
  const clauses: string[] = [];
  for (const clause of query.clauses) {
    const terms = clause.map(termQuery).filter((t): t is string => t !== null);
    if (terms.length === 0) return null;
    clauses.push(terms.length === 1 ? terms[0]! : `(${terms.join(' | ')})`);
  }
  for (const term of query.excluded) {
    const excluded = termQuery(term);
    if (excluded !== null) clauses.push(`!${excluded}`);
  }
  return clauses.join(' & ');
}

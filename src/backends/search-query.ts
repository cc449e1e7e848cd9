/**
 * The search query language, shared by every backend:
 *
 * - words are ANDed: `deploy failed`
 * - `"quoted phrase"`: the words in this order, adjacent
 * - `prefix*`: any word that starts with `prefix`
 * - `-word`, `-"a phrase"`: exclude messages that contain it
 * - `a OR b`: either (binds tighter than the implicit AND: `x a OR b` is x AND (a OR b))
 *
 * Words are split and folded the way SQLite's unicode61 tokenizer does (letters and digits form
 * tokens; case and diacritics are folded), so `foo-bar` is the phrase "foo bar" and punctuation
 * alone (`:`, `^`, `(`) matches nothing. User text is never spliced into FTS syntax: every token
 * is emitted inside double quotes, so no input can raise an FTS syntax error.
 */

import { InvalidInputError, TooLargeError } from '../errors.js';
import { DEFAULT_LIMITS, type StoreLimits } from './backend.js';

export interface QueryTerm {
  /** Folded tokens, in order (more than one: a phrase). */
  tokens: string[];
  /** The last token matches as a prefix. */
  prefix: boolean;
}

export interface ParsedQuery {
  /** A conjunction of disjunctions: every clause must match; a clause matches if any term does. */
  clauses: QueryTerm[][];
  /** A message that contains any of these does not match. */
  excluded: QueryTerm[];
}

/** @default 32 // terms (words, phrases, exclusions) per query */
export const MAX_QUERY_TERMS = 32;

const TOKEN_CHAR = /[\p{L}\p{N}\p{Co}]/u;
const TOKEN_RUN = /[\p{L}\p{N}\p{Co}\p{Mn}]+/gu;

/** Folds case and diacritics like unicode61 with remove_diacritics. */
export function foldToken(token: string): string {
  return token
    .normalize('NFD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase();
}

export interface TextToken {
  token: string;
  /** UTF-16 offsets into the original text. */
  start: number;
  end: number;
}

/** Splits text into folded tokens with their offsets. */
export function tokenize(text: string): TextToken[] {
  const out: TextToken[] = [];
  for (const m of text.matchAll(TOKEN_RUN)) {
    if (!TOKEN_CHAR.test(m[0])) continue;
    const token = foldToken(m[0]);
    if (token.length > 0) out.push({ token, start: m.index, end: m.index + m[0].length });
  }
  return out;
}

interface RawTerm {
  text: string;
  prefix: boolean;
  negated: boolean;
  isOr: boolean;
}

function lex(input: string): RawTerm[] {
  const terms: RawTerm[] = [];
  let i = 0;
  while (i < input.length) {
    const ch = input[i]!;
    if (/\s/u.test(ch)) {
      i++;
      continue;
    }
    let negated = false;
    if (ch === '-' && i + 1 < input.length && !/\s/u.test(input[i + 1]!)) {
      negated = true;
      i++;
    }
    if (input[i] === '"') {
      const close = input.indexOf('"', i + 1);
      const end = close === -1 ? input.length : close;
      const text = input.slice(i + 1, end);
      i = end + 1;
      let prefix = false;
      if (input[i] === '*') {
        prefix = true;
        while (input[i] === '*') i++;
      }
      terms.push({ text, prefix, negated, isOr: false });
      continue;
    }
    let end = i;
    while (end < input.length && !/\s/u.test(input[end]!) && input[end] !== '"') end++;
    let text = input.slice(i, end);
    i = end;
    const prefix = text.endsWith('*');
    text = text.replace(/\*+$/u, '');
    terms.push({ text, prefix, negated, isOr: !negated && !prefix && text === 'OR' });
  }
  return terms;
}

function toTerm(raw: RawTerm): QueryTerm | null {
  const tokens = tokenize(raw.text).map((t) => t.token);
  if (tokens.length === 0) return null;
  return { tokens, prefix: raw.prefix };
}

/**
 * Parses user text. Never throws on odd characters; TooLargeError past `maxSearchQueryBytes` of
 * UTF-8 (checked before any lexing) or past MAX_QUERY_TERMS.
 */
export function parseSearchQuery(
  input: string,
  limits: Pick<StoreLimits, 'maxSearchQueryBytes'> = DEFAULT_LIMITS,
): ParsedQuery {
  if (typeof input !== 'string') throw new InvalidInputError('query must be a string', 'query');
  const limit = limits.maxSearchQueryBytes;
  // a UTF-8 string is at most 3 bytes per UTF-16 unit: most queries need no count
  const bytes = input.length * 3 <= limit ? 0 : Buffer.byteLength(input, 'utf8');
  if (bytes > limit) {
    throw new TooLargeError(
      `the search query is ${bytes} bytes; the limit is ${limit}`,
      'query',
      limit,
      bytes,
      'bytes',
    );
  }
  const raw = lex(input);
  if (raw.length > MAX_QUERY_TERMS) {
    throw new TooLargeError(
      `a query holds at most ${MAX_QUERY_TERMS} terms; got ${raw.length}`,
      'query',
      MAX_QUERY_TERMS,
      raw.length,
      'items',
    );
  }
  const clauses: QueryTerm[][] = [];
  const excluded: QueryTerm[] = [];
  let joinNext = false;
  raw.forEach((r, idx) => {
    const prev = raw[idx - 1];
    const next = raw[idx + 1];
    // OR is an operator only between two positive operands; elsewhere it is the word "or".
    if (r.isOr && prev && next && !prev.negated && !next.negated && !prev.isOr && !next.isOr) {
      joinNext = clauses.length > 0;
      return;
    }
    const term = toTerm(r);
    if (!term) return;
    if (r.negated) {
      excluded.push(term);
      return;
    }
    if (joinNext) clauses[clauses.length - 1]!.push(term);
    else clauses.push([term]);
    joinNext = false;
  });
  return { clauses, excluded };
}

/** True when the query can match nothing (no positive term). */
export function isEmptyQuery(query: ParsedQuery): boolean {
  return query.clauses.length === 0;
}

/** Throws InvalidInputError for a query of exclusions only (it cannot be answered by an index). */
export function requireAnswerable(query: ParsedQuery): void {
  if (query.clauses.length === 0 && query.excluded.length > 0) {
    throw new InvalidInputError('a search needs at least one word that is not excluded', 'query');
  }
}

function ftsTerm(term: QueryTerm): string {
  return `"${term.tokens.join(' ').replaceAll('"', '""')}"${term.prefix ? '*' : ''}`;
}

function ftsClause(clause: QueryTerm[]): string {
  return clause.length === 1 ? ftsTerm(clause[0]!) : `(${clause.map(ftsTerm).join(' OR ')})`;
}

/**
 * An FTS5 MATCH expression for the content column, or null when the query matches nothing.
 * @param column the FTS5 column to restrict to (zeroclaw's table also indexes session_key)
 */
export function toFtsMatch(query: ParsedQuery, column = 'content'): string | null {
  if (query.clauses.length === 0) return null;
  const positive = query.clauses.map(ftsClause).join(' AND ');
  const body =
    query.excluded.length === 0
      ? positive
      : `(${positive}) NOT (${query.excluded.map(ftsTerm).join(' OR ')})`;
  return `${column} : (${body})`;
}

/** Token index ranges [start, end) where `term` occurs in `tokens`. */
function occurrences(term: QueryTerm, tokens: readonly TextToken[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const n = term.tokens.length;
  for (let i = 0; i + n <= tokens.length; i++) {
    let ok = true;
    for (let j = 0; j < n; j++) {
      const have = tokens[i + j]!.token;
      const want = term.tokens[j]!;
      const last = j === n - 1;
      if (!(have === want || (last && term.prefix && have.startsWith(want)))) {
        ok = false;
        break;
      }
    }
    if (ok) out.push([i, i + n]);
  }
  return out;
}

export interface TextMatch {
  /** Token index ranges of every positive match, for snippets. */
  ranges: Array<[number, number]>;
  /** Occurrences of positive terms: a simple term-frequency score. */
  hits: number;
}

/** Evaluates the query over tokenized text (scanning backends); null when it does not match. */
export function matchTokens(query: ParsedQuery, tokens: readonly TextToken[]): TextMatch | null {
  if (query.clauses.length === 0) return null;
  for (const term of query.excluded) if (occurrences(term, tokens).length > 0) return null;
  const ranges: Array<[number, number]> = [];
  for (const clause of query.clauses) {
    let any = false;
    for (const term of clause) {
      const found = occurrences(term, tokens);
      if (found.length > 0) {
        any = true;
        ranges.push(...found);
      }
    }
    if (!any) return null;
  }
  ranges.sort((a, b) => a[0] - b[0]);
  return { ranges, hits: ranges.length };
}

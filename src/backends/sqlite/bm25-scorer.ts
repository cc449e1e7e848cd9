/**
 * FTS5's bm25 (k1 = 1.2, b = 0.75, every column weighted 1), computed here instead of by
 * SQLite's bm25(): before scoring a single row, bm25() counts every row that holds each query
 * phrase, a scan of the phrase's whole doclist (~80 ms for the commonest words of 1,000,000
 * messages). Here a phrase's document frequency is counted exactly up to DF_EXACT_LIMIT matches
 * and extrapolated beyond that; such a phrase's idf is near zero, so the estimate barely moves a
 * score. Below the limit the score equals -bm25() (a test checks it). Term frequencies and row
 * lengths come from reading the candidate's text the way unicode61 tokenizes it.
 */

import type { QueryTerm } from '../search-query.js';
import { toFtsMatch, tokenize } from '../search-query.js';
import type { SqliteContext } from './sqlite-context.js';

/** @default 5_000 // matches counted per phrase before the count is extrapolated */
export const DF_EXACT_LIMIT = 5_000;
const K1 = 1.2;
const B = 0.75;
// FTS5 keeps the row count and per-column token totals at this %_data id (FTS5_AVERAGES_ROWID).
const AVERAGES_ID = 1;

export interface Bm25Scorer {
  /** Higher is better; 0 when no phrase occurs. */
  score(content: string, sessionKey: string): number;
}

interface CorpusStats {
  rows: number;
  averageTokens: number;
  minId: number;
  maxId: number;
}

/** SQLite's varint: big-endian 7-bit groups, the 9th byte contributes all 8 bits. */
function readVarint(bytes: Uint8Array, at: number): [value: number, next: number] {
  let value = 0;
  for (let i = 0; i < 8; i++) {
    const byte = bytes[at + i] ?? 0;
    value = value * 128 + (byte & 0x7f);
    if ((byte & 0x80) === 0) return [value, at + i + 1];
  }
  return [value * 256 + (bytes[at + 8] ?? 0), at + 9];
}

function corpusStats(ctx: SqliteContext): CorpusStats {
  const block = ctx.sql('SELECT block FROM sessions_fts_data WHERE id = ?').pluck().get(AVERAGES_ID) as
    | Uint8Array
    | undefined;
  let rows = 0;
  let tokens = 0;
  if (block && block.length > 0) {
    let at: number;
    [rows, at] = readVarint(block, 0);
    while (at < block.length) {
      const [columnTokens, next] = readVarint(block, at);
      tokens += columnTokens;
      at = next;
    }
  }
  // Two subqueries: min() and max() in one SELECT would scan the table instead of seeking.
  const ids = ctx
    .sql('SELECT (SELECT min(id) FROM sessions) AS minId, (SELECT max(id) FROM sessions) AS maxId')
    .get() as {
    minId: number | null;
    maxId: number | null;
  };
  return {
    rows: Math.max(rows, 1),
    averageTokens: rows > 0 && tokens > 0 ? tokens / rows : 1,
    minId: ids.minId ?? 0,
    maxId: ids.maxId ?? 0,
  };
}

function documentFrequency(ctx: SqliteContext, term: QueryTerm, stats: CorpusStats): number {
  const match = toFtsMatch({ clauses: [[term]], excluded: [] })!;
  const seen = ctx
    .sql(`SELECT count(*) AS count, min(id) AS lowest FROM (SELECT rowid AS id FROM sessions_fts
        WHERE sessions_fts MATCH ? ORDER BY rowid DESC LIMIT ?)`)
    .get(match, DF_EXACT_LIMIT) as { count: number; lowest: number | null };
  if (seen.count < DF_EXACT_LIMIT || seen.lowest === null) return seen.count;
  // Rows are spread evenly over ids: the share of the id range walked scales up the count.
  const share = (stats.maxId - seen.lowest + 1) / Math.max(1, stats.maxId - stats.minId + 1);
  return Math.min(stats.rows, Math.round(seen.count / share));
}

const ASCII = /^\p{ASCII}*$/u;

function isAlnum(code: number): boolean {
  return (code >= 48 && code <= 57) || (code >= 97 && code <= 122) || (code >= 65 && code <= 90);
}

/** unicode61's token count; for ASCII, tokens are simply the runs of letters and digits. */
function tokenCount(text: string): number {
  if (!ASCII.test(text)) return tokenize(text).length;
  let count = 0;
  let inside = false;
  for (let i = 0; i < text.length; i++) {
    const alnum = isAlnum(text.charCodeAt(i));
    if (alnum && !inside) count++;
    inside = alnum;
  }
  return count;
}

/**
 * Counts a term's occurrences. ASCII text (the common case) is matched by one regular expression
 * over the lower-cased text, which is several times faster than tokenizing; a zero-width match
 * counts overlapping phrase occurrences the way FTS5 reports instances.
 */
function termCounter(term: QueryTerm): (text: string, lower: string | null) => number {
  const asciiTerm = term.tokens.every((t) => /^[a-z0-9]+$/.test(t));
  const body = term.tokens.join('[^a-z0-9]+');
  const end = term.prefix ? '' : '(?![a-z0-9])';
  // One token cannot overlap itself, and a consuming match lets the engine skip ahead.
  const source = term.tokens.length === 1 ? `(?<![a-z0-9])${body}${end}` : `(?<![a-z0-9])(?=${body}${end})`;
  const pattern = asciiTerm ? new RegExp(source, 'g') : null;
  return (text, lower) => {
    if (lower !== null) return pattern ? (lower.match(pattern)?.length ?? 0) : 0;
    return occurrences(
      term,
      tokenize(text).map((t) => t.token),
    );
  };
}

function occurrences(term: QueryTerm, words: readonly string[]): number {
  const n = term.tokens.length;
  let count = 0;
  for (let i = 0; i + n <= words.length; i++) {
    let j = 0;
    while (j < n) {
      const have = words[i + j]!;
      const want = term.tokens[j]!;
      if (!(have === want || (j === n - 1 && term.prefix && have.startsWith(want)))) break;
      j++;
    }
    if (j === n) count++;
  }
  return count;
}

/** Scores rows for the positive `terms` of one query; corpus statistics are read on first use. */
export function createBm25Scorer(ctx: SqliteContext, terms: readonly QueryTerm[]): Bm25Scorer {
  let idfs: number[] | null = null;
  let averageTokens = 1;
  const counters = terms.map(termCounter);
  return {
    score(content, sessionKey) {
      if (!idfs) {
        const stats = corpusStats(ctx);
        averageTokens = stats.averageTokens;
        idfs = terms.map((term) => {
          const df = documentFrequency(ctx, term, stats);
          const idf = Math.log((stats.rows - df + 0.5) / (df + 0.5));
          return idf <= 0 ? 1e-6 : idf;
        });
      }
      const lower = ASCII.test(content) ? content.toLowerCase() : null;
      const length = tokenCount(content) + tokenCount(sessionKey);
      const norm = K1 * (1 - B + (B * length) / averageTokens);
      let score = 0;
      counters.forEach((count, i) => {
        const tf = count(content, lower);
        if (tf > 0) score += (idfs![i]! * tf * (K1 + 1)) / (tf + norm);
      });
      return score;
    },
  };
}

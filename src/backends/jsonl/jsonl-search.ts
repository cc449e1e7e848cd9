/**
 * Search over JSONL sessions by scanning: every readable message of every session that passes
 * the filters is evaluated with the shared query language (search-query.ts `matchTokens` per
 * term). The cost is LINEAR in the size of the data searched, on every query: no inverted index
 * is kept. Narrow it with `sessionKey` or `keyPrefix`. Lines are streamed from the files; the line
 * index says which are readable, and a line whose raw bytes cannot hold any term (ASCII, no
 * escapes, no term as a substring) is not even decoded.
 *
 * Ranking is bm25-like over the scanned set: idf from how many scanned messages hold each
 * positive term, term frequency saturated and normalised by message length (the average length
 * is taken over the messages that could contain a term, the only ones tokenised). Hits are
 * ordered RELEVANCE (score desc, then newest) or NEWEST (session last activity desc, then seq
 * desc); cursors carry the sort key of a hit and a digest of the query, filter and order that
 * produced it, so a cursor of another search is refused, as on the indexed backends.
 */

import { InvalidInputError } from '../../errors.js';
import type {
  SearchArgs,
  SearchFilter,
  SearchHit,
  SearchOrder,
  SearchPage,
  StoredMessage,
  StoreLimits,
} from '../backend.js';
import { DEFAULT_PAGE_SIZE } from '../backend.js';
import { searchScope } from '../search-cursor.js';
import {
  isEmptyQuery,
  matchTokens,
  type ParsedQuery,
  parseSearchQuery,
  type QueryTerm,
  requireAnswerable,
  tokenize,
} from '../search-query.js';
import { resolvePage } from '../validate.js';
import { decodeLine } from './jsonl-line.js';
import { buildSnippet } from './search-snippet.js';
import { compareKeys } from './session-listing.js';
import type { ListedSession, SessionRegistry } from './session-registry.js';

const K1 = 1.2;
const B = 0.75;
const NON_ASCII = /\P{ASCII}/u;
const UNSAFE_RAW = /\P{ASCII}|\\/u;

/** One page of hits for `args`, scanning the sessions of `registry`. */
export async function searchSessions(
  registry: SessionRegistry,
  args: SearchArgs,
  limits: StoreLimits,
): Promise<SearchPage> {
  const order: SearchOrder = args.order ?? 'RELEVANCE';
  if (order !== 'RELEVANCE' && order !== 'NEWEST') {
    throw new InvalidInputError(`unknown search order ${String(order)}`, 'order');
  }
  const filter = args.filter ?? {};
  for (const field of ['since', 'until'] as const) {
    if (filter[field] !== undefined) {
      throw new InvalidInputError(
        `JSONL sessions record no message times, so a search cannot filter by ${field}`,
        `filter.${field}`,
      );
    }
  }
  const { size } = resolvePage({ first: args.first }, limits, DEFAULT_PAGE_SIZE);
  const query = parseSearchQuery(args.query, limits);
  requireAnswerable(query);
  // A cursor is bound to the search that issued it, as on the indexed backends (search-cursor.ts):
  // another query's scores and hits are no position in this one.
  const scope = searchScope([
    query,
    filter.sessionKey ?? null,
    filter.keyPrefix ?? null,
    filter.role ?? null,
    order,
  ]);
  const after = args.after === undefined ? undefined : decodeSearchCursor(args.after, scope);
  if (isEmptyQuery(query)) return { hits: [], hasNextPage: false };

  const hits = await scanForHits(await sourcesFor(registry, filter), query, filter.role);
  const { page, hasNextPage } = pageHits(hits, order, after, size);
  const out: SearchHit[] = [];
  for (const hit of page) {
    // Read back through the index: O(page), and the snippet needs the content.
    const target = await registry.readable(hit.key);
    const found = (await target?.file.read(() => ({ from: hit.seq - 1, to: hit.seq })))?.messages[0];
    if (!found) continue;
    const message: StoredMessage = { sessionKey: hit.key, seq: hit.seq, ...found, createdAt: null };
    out.push(toSearchHit(hit, message, query, scope));
  }
  return { hits: out, hasNextPage };
}

async function sourcesFor(registry: SessionRegistry, filter: SearchFilter): Promise<ScanSource[]> {
  let listed: ListedSession[];
  if (filter.sessionKey !== undefined) {
    const target = await registry.readable(filter.sessionKey);
    const state = await target?.file.state();
    listed = target && state ? [{ stem: target.stem, key: filter.sessionKey, mtimeMs: state.mtimeMs }] : [];
  } else {
    listed = await registry.list();
  }
  const prefix = filter.keyPrefix;
  return listed
    .filter((s) => prefix === undefined || s.key.startsWith(prefix))
    .map((s) => {
      const file = registry.file(s.stem);
      return { key: s.key, mtimeMs: s.mtimeMs, scan: (visit) => file.scanReadable(visit) };
    });
}

interface ScanSource {
  key: string;
  /** The session's last activity, for NEWEST order. */
  mtimeMs: number;
  /** Visits the raw bytes of every readable line, in order, with its seq. */
  scan(visit: (seq: number, line: Buffer) => void): Promise<unknown>;
}

interface ScoredHit {
  key: string;
  mtimeMs: number;
  seq: number;
  score: number;
}

interface Candidate {
  key: string;
  mtimeMs: number;
  seq: number;
  termHits: number[];
  length: number;
}

const probe = (term: QueryTerm): ParsedQuery => ({ clauses: [[term]], excluded: [] });

/** Scans the sources and scores every matching message. */
async function scanForHits(
  sources: readonly ScanSource[],
  query: ParsedQuery,
  role: string | undefined,
): Promise<ScoredHit[]> {
  const terms = query.clauses.flat();
  const positive = terms.map(probe);
  const excluded = query.excluded.map(probe);
  // Which entries of `terms` each clause owns, to decide a match from the per-term counts.
  const clauses: number[][] = [];
  let at = 0;
  for (const clause of query.clauses) clauses.push(clause.map(() => at++));
  const holders = terms.map(() => 0);
  const candidates: Candidate[] = [];
  let scanned = 0;
  let tokenized = 0;
  let tokenTotal = 0;
  for (const source of sources) {
    await source.scan((seq, line) => {
      // Without a role filter every readable line counts, and most need no decoding at all.
      if (role === undefined) {
        scanned++;
        if (rawCannotContain(line, terms)) return;
      }
      const decoded = decodeLine(line);
      if (decoded.kind !== 'message') return;
      const { message } = decoded;
      if (role !== undefined) {
        if (message.role !== role) return;
        scanned++;
      }
      if (!mayContain(message.content, terms)) return;
      const tokens = tokenize(message.content);
      tokenized++;
      tokenTotal += tokens.length;
      const termHits = positive.map((p) => matchTokens(p, tokens)?.hits ?? 0);
      termHits.forEach((n, i) => {
        if (n > 0) holders[i]!++;
      });
      const matches =
        clauses.every((clause) => clause.some((i) => termHits[i]! > 0)) &&
        excluded.every((p) => matchTokens(p, tokens) === null);
      if (matches) {
        candidates.push({ key: source.key, mtimeMs: source.mtimeMs, seq, termHits, length: tokens.length });
      }
    });
  }
  const average = tokenized > 0 ? Math.max(1, tokenTotal / tokenized) : 1;
  const idf = holders.map((n) => Math.log(1 + (scanned - n + 0.5) / (n + 0.5)));
  return candidates.map((c) => {
    const norm = K1 * (1 - B + (B * c.length) / average);
    let score = 0;
    c.termHits.forEach((tf, i) => {
      if (tf > 0) score += (idf[i]! * tf * (K1 + 1)) / (tf + norm);
    });
    return { key: c.key, mtimeMs: c.mtimeMs, seq: c.seq, score };
  });
}

/**
 * True when a raw line certainly holds no term: an ASCII line without escapes decodes to its own
 * text, so its lower-cased bytes contain every folded token of its content. Anything else
 * (non-ASCII, a backslash escape) is left to decoding.
 */
function rawCannotContain(line: Buffer, terms: readonly QueryTerm[]): boolean {
  const text = line.toString('latin1');
  if (UNSAFE_RAW.test(text)) return false;
  const lower = text.toLowerCase();
  return !terms.some((term) => term.tokens.every((token) => lower.includes(token)));
}

/**
 * False only when no term can occur: for ASCII text, folding is lower-casing and every token is a
 * substring of the lower-cased text. Other text is always tokenised.
 */
function mayContain(content: string, terms: readonly QueryTerm[]): boolean {
  if (NON_ASCII.test(content)) return true;
  const lower = content.toLowerCase();
  return terms.some((term) => term.tokens.every((token) => lower.includes(token)));
}

function compareNewest(a: ScoredHit, b: ScoredHit): number {
  return b.mtimeMs - a.mtimeMs || compareKeys(a.key, b.key) || b.seq - a.seq;
}

function comparatorFor(order: SearchOrder): (a: ScoredHit, b: ScoredHit) => number {
  return order === 'NEWEST' ? compareNewest : (a, b) => b.score - a.score || compareNewest(a, b);
}

function encodeSearchCursor(scope: string, hit: ScoredHit): string {
  return Buffer.from(JSON.stringify([scope, hit.score, hit.mtimeMs, hit.key, hit.seq])).toString('base64url');
}

function decodeSearchCursor(text: string, scope: string): ScoredHit {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    value = null;
  }
  if (
    Array.isArray(value) &&
    value.length === 5 &&
    value[0] === scope &&
    typeof value[1] === 'number' &&
    Number.isFinite(value[2]) &&
    typeof value[3] === 'string' &&
    Number.isSafeInteger(value[4])
  ) {
    return { score: value[1], mtimeMs: value[2], key: value[3], seq: value[4] };
  }
  throw new InvalidInputError('after is not a cursor of this search', 'after');
}

/** The hits after `after` in `order`, at most `size` of them. */
function pageHits(
  hits: ScoredHit[],
  order: SearchOrder,
  after: ScoredHit | undefined,
  size: number,
): { page: ScoredHit[]; hasNextPage: boolean } {
  const compare = comparatorFor(order);
  const rest = after ? hits.filter((h) => compare(h, after) > 0) : hits;
  rest.sort(compare);
  return { page: rest.slice(0, size), hasNextPage: rest.length > size };
}

/** The public hit for a scored one, its snippet built from the message's own matches. */
function toSearchHit(hit: ScoredHit, message: StoredMessage, query: ParsedQuery, scope: string): SearchHit {
  const tokens = tokenize(message.content);
  const ranges = matchTokens(query, tokens)?.ranges ?? [];
  return {
    message,
    score: hit.score,
    snippet: buildSnippet(message.content, tokens, ranges),
    cursor: encodeSearchCursor(scope, hit),
  };
}

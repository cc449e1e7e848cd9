import type { SearchHit as BackendSearchHit, SearchOrder } from '../backends/backend.js';
import { builder } from './builder.js';
import { Message } from './message.js';
import { DateTime } from './scalars.js';
import { stripNullish } from './session.js';
import { renderSnippet, type Snippet } from './snippet.js';

type Hit = BackendSearchHit & { rendered?: Snippet };

function rendered(hit: Hit): Snippet {
  hit.rendered ??= renderSnippet(hit.snippet);
  return hit.rendered;
}

const TextRange = builder.simpleObject('TextRange', {
  description:
    'A span of text as UTF-16 code unit offsets (JavaScript string indices): `text.slice(start, end)`.',
  fields: (t) => ({
    start: t.int({ description: 'Offset of the first character of the span.' }),
    end: t.int({ description: 'Offset just past the span.' }),
  }),
});

const SearchHit = builder.objectRef<Hit>('SearchHit').implement({
  description: 'A message that matches a search, with its score and a marked excerpt.',
  fields: (t) => ({
    message: t.field({ type: Message, description: 'The matching message.', resolve: (hit) => hit.message }),
    score: t.exposeFloat('score', {
      description:
        'Relevance, higher is better (SQLite: negated bm25). Comparable only within one result list.',
    }),
    snippet: t.string({
      description:
        'A short excerpt around the matches, HTML-escaped, with every match wrapped in `<mark>`…`</mark>`: ' +
        'safe to insert as HTML. `snippetText` and `snippetMatches` give the same excerpt unmarked.',
      resolve: (hit) => rendered(hit).html,
    }),
    snippetText: t.string({
      description: 'The same excerpt as plain text (not escaped), without marks.',
      resolve: (hit) => rendered(hit).text,
    }),
    snippetMatches: t.field({
      type: [TextRange],
      description: 'Where the matches sit in `snippetText`, in order.',
      resolve: (hit) => rendered(hit).matches,
    }),
  }),
});

const SearchHitConnection = builder.connectionObject(
  { type: SearchHit, name: 'SearchHitConnection', description: 'A page of search hits.' },
  { name: 'SearchHitEdge', description: 'A search hit in a page, with its cursor.' },
);

const SearchFilter = builder.inputType('SearchFilter', {
  description: 'Narrows a search; every given condition must hold.',
  fields: (t) => ({
    sessionKey: t.string({ description: 'Only this session.' }),
    keyPrefix: t.string({ description: 'Only sessions whose key starts with this text (taken literally).' }),
    role: t.string({ description: 'Only messages with exactly this role.' }),
    since: t.field({
      type: DateTime,
      description:
        'Messages stored at or after this instant. INVALID on a backend without message times (JSONL).',
    }),
    until: t.field({
      type: DateTime,
      description:
        'Messages stored strictly before this instant. INVALID on a backend without message times.',
    }),
  }),
});

const SearchOrderEnum = builder.enumType('SearchOrder', {
  description: 'The order of search hits.',
  values: {
    RELEVANCE: { value: 'RELEVANCE', description: 'Best match first (default).' },
    NEWEST: { value: 'NEWEST', description: 'Newest message first.' },
  } as const satisfies Record<SearchOrder, unknown>,
});

builder.queryField('search', (t) =>
  t.field({
    type: SearchHitConnection,
    description:
      'Full-text search over message content (never keys). The query language: words are ANDed, ' +
      '`"a phrase"`, `prefix*`, `-excluded` (a word or a phrase), `a OR b`. Case and diacritics are ' +
      'ignored; punctuation separates words. Any text is accepted: nothing a user types is a syntax ' +
      'error. A query of exclusions only is INVALID; an empty query matches nothing. Pages forward only.',
    args: {
      query: t.arg.string({ required: true, description: 'What to look for, in the query language above.' }),
      first: t.arg.int({ description: 'At most this many hits (default 50).' }),
      after: t.arg.string({
        description: 'The cursor of the last hit seen, from the same query, filter and order.',
      }),
      filter: t.arg({ type: SearchFilter, description: 'Conditions every hit meets.' }),
      orderBy: t.arg({ type: SearchOrderEnum, defaultValue: 'RELEVANCE', description: 'The hit order.' }),
    },
    resolve: async (_root, args, ctx) => {
      const page = await ctx.backend.search({
        query: args.query,
        filter: stripNullish(args.filter ?? {}),
        order: args.orderBy ?? 'RELEVANCE',
        ...(args.first != null && { first: args.first }),
        ...(args.after != null && { after: args.after }),
      });
      const edges = page.hits.map((node) => ({ node, cursor: node.cursor }));
      return {
        edges,
        pageInfo: {
          hasNextPage: page.hasNextPage,
          // forward-only: whether hits precede the page is known only as "a cursor was given"
          hasPreviousPage: args.after != null,
          startCursor: edges[0]?.cursor ?? null,
          endCursor: edges.at(-1)?.cursor ?? null,
        },
      };
    },
  }),
);

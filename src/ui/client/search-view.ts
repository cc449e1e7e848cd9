/**
 * Search results: each hit with its session, role and a snippet whose matches are highlighted
 * (snippet.ts), linking to the message in its session.
 */

import { SEARCH, type SearchData, type SearchHit } from './documents.js';
import { h, replaceChildren } from './dom.js';
import { formatInstant } from './format-time.js';
import type { GraphQLClient } from './graphql-client.js';
import { roleClass } from './message-content.js';
import { sessionHref } from './routes.js';
import { renderSnippet } from './snippet.js';

/** @default 50 // hits shown */
const HITS = 50;

export interface SearchView {
  show(query: string): void;
  close(): void;
}

export function createSearchView(
  client: GraphQLClient,
  elements: { root: HTMLElement; summary: HTMLElement; results: HTMLElement },
): SearchView {
  const { root, summary, results } = elements;
  let generation = 0;

  return {
    async show(query) {
      const mine = ++generation;
      root.hidden = false;
      results.replaceChildren();
      summary.textContent = `Searching for “${query}”…`;
      try {
        const data = await client.query<SearchData>(SEARCH, { query, first: HITS });
        if (mine !== generation) return;
        const hits = data.search.edges.map((edge) => edge.node);
        summary.textContent =
          hits.length === 0
            ? `No messages match “${query}”.`
            : `${hits.length}${hits.length === HITS ? '+' : ''} messages match “${query}”.`;
        replaceChildren(results, ...hits.map(renderHit));
      } catch (err) {
        if (mine === generation) summary.textContent = `Search failed: ${(err as Error).message}`;
      }
    },
    close() {
      generation += 1;
      root.hidden = true;
    },
  };
}

function renderHit(hit: SearchHit): HTMLElement {
  const { message } = hit;
  return h(
    'li',
    { class: 'hit', 'data-role': roleClass(message.role) },
    h(
      'a',
      { class: 'hit-link', href: sessionHref(message.sessionKey, message.seq) },
      h(
        'div',
        { class: 'hit-meta' },
        h('span', { class: 'session-key' }, message.sessionKey),
        h('span', { class: 'role' }, message.role),
        h('span', { class: 'seq' }, `#${message.seq}`),
        h('time', { datetime: message.createdAt ?? undefined }, formatInstant(message.createdAt)),
      ),
      renderSnippet(hit.snippetText, hit.snippetMatches),
    ),
  );
}

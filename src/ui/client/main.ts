/**
 * The dashboard: a live session list, search, and a live-tailed session view, over the public
 * GraphQL API only. The page shell (src/ui/dashboard-page.ts) holds the elements looked up here.
 */

import './styles.css';
import { byId } from './dom.js';
import { createGraphQLClient } from './graphql-client.js';
import { parseRoute, searchHref } from './routes.js';
import { createSearchView } from './search-view.js';
import { createSessionList } from './session-list.js';
import { createSessionView } from './session-view.js';
import { createTokenGate } from './token-gate.js';

/** @default 300 // ms of no typing before the search runs */
const SEARCH_DEBOUNCE_MS = 300;

const client = createGraphQLClient({
  // relative to the page (/ui/), so that a reverse proxy may mount the server under a path
  endpoint: new URL('../graphql', window.location.href),
  tokens: createTokenGate(),
});

const statusBadge = byId('connection');
client.onStatus((status) => {
  statusBadge.dataset.status = status;
  statusBadge.textContent = status === 'live' ? 'live' : status === 'connecting' ? 'connecting…' : 'offline';
});

const list = createSessionList(client, {
  list: byId('session-list'),
  status: byId('session-list-status'),
  more: byId<HTMLButtonElement>('session-list-more'),
});
const view = createSessionView(client, {
  root: byId('session-view'),
  header: byId('session-header'),
  messages: byId('messages'),
  earlier: byId<HTMLButtonElement>('messages-earlier'),
});
const search = createSearchView(client, {
  root: byId('search-view'),
  summary: byId('search-summary'),
  results: byId('search-results'),
});
const home = byId('home');
list.onChange((key, session) => view.sessionChanged(key, session));

const searchForm = byId<HTMLFormElement>('search-form');
const searchInput = byId<HTMLInputElement>('search-input');
let typing: ReturnType<typeof setTimeout> | undefined;
const runSearch = (replace: boolean) => {
  clearTimeout(typing);
  const query = searchInput.value.trim();
  if (query === '') return;
  if (replace && parseRoute(window.location.hash).view === 'search')
    window.location.replace(searchHref(query));
  else window.location.hash = searchHref(query);
};
searchForm.addEventListener('submit', (event) => {
  event.preventDefault();
  runSearch(false);
});
searchInput.addEventListener('input', () => {
  clearTimeout(typing);
  typing = setTimeout(() => runSearch(true), SEARCH_DEBOUNCE_MS);
});

const route = () => {
  const current = parseRoute(window.location.hash);
  home.hidden = current.view !== 'home';
  if (current.view === 'session') {
    search.close();
    view.open(current.key, current.seq);
    list.select(current.key);
  } else if (current.view === 'search') {
    view.close();
    list.select(null);
    if (searchInput.value.trim() !== current.query) searchInput.value = current.query;
    search.show(current.query);
  } else {
    view.close();
    search.close();
    list.select(null);
  }
};
window.addEventListener('hashchange', route);
list.start();
route();

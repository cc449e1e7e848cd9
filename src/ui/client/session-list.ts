/**
 * The session list, most recently active first, kept live by `sessionActivity`. The activity feed
 * has no cursor: it is subscribed before the first page is fetched, events that arrive meanwhile
 * are applied on top of the page (the newer snapshot wins), and after a reconnect the list is
 * fetched again.
 */

import {
  SESSION_ACTIVITY,
  SESSIONS,
  type SessionActivityData,
  type SessionSummary,
  type SessionsData,
} from './documents.js';
import { h, replaceChildren } from './dom.js';
import { formatInstant } from './format-time.js';
import type { GraphQLClient } from './graphql-client.js';
import { roleClass } from './message-content.js';
import { sessionHref } from './routes.js';

/** @default 100 // sessions per page */
const PAGE_SIZE = 100;
/** @default 140 // characters of the last message shown under a session */
const PREVIEW_CHARS = 140;
/**
 * Sessions kept in the list: past it the least recently active leave, so a page left open while
 * sessions keep being created does not grow without end.
 * @default 1_000
 */
const MAX_LISTED = 1_000;

export interface SessionList {
  /** Fetches the first page and follows the feed until the page goes. */
  start(): void;
  /** Marks the open session's row. */
  select(key: string | null): void;
  /** Called with every live change to a session (null: deleted). */
  onChange(listener: (key: string, session: SessionSummary | null) => void): void;
}

type ActivityEvent = SessionActivityData['sessionActivity'];

export function createSessionList(
  client: GraphQLClient,
  elements: {
    list: HTMLElement;
    status: HTMLElement;
    more: HTMLButtonElement;
  },
): SessionList {
  const { list, status, more } = elements;
  const sessions = new Map<string, SessionSummary>();
  const rows = new Map<string, { row: HTMLElement; shown: SessionSummary | null }>();
  const listeners: Array<(key: string, session: SessionSummary | null) => void> = [];
  let selected: string | null = null;
  let loading: ActivityEvent[] | null = null;
  let endCursor: string | null = null;
  let frame = 0;
  /** Shown instead of the count while the list may be out of date. */
  let problem: string | null = null;

  const render = () => {
    frame = 0;
    const ordered = [...sessions.values()].sort(byActivity);
    for (const dropped of ordered.splice(MAX_LISTED)) sessions.delete(dropped.key);
    for (const [key, entry] of rows) {
      if (!sessions.has(key)) {
        entry.row.remove();
        rows.delete(key);
      }
    }
    ordered.forEach((session, i) => {
      let entry = rows.get(session.key);
      if (!entry) {
        entry = { row: h('li'), shown: null };
        rows.set(session.key, entry);
      }
      if (entry.shown === null || !sameSummary(entry.shown, session)) {
        const active = entry.shown !== null && entry.shown.lastActivityAt !== session.lastActivityAt;
        replaceChildren(entry.row, renderRow(session, session.key === selected));
        if (active) flash(entry.row);
      }
      entry.shown = session;
      // moved only when out of place: moving a node restarts its animation
      const at = list.children[i];
      if (at !== entry.row) list.insertBefore(entry.row, at ?? null);
    });
    status.textContent = problem ?? (sessions.size === 0 ? 'No sessions yet.' : `${sessions.size} sessions`);
  };
  const schedule = () => {
    if (frame === 0) frame = requestAnimationFrame(render);
  };

  const apply = (event: ActivityEvent) => {
    if (event.kind === 'DELETED' || event.session === null) {
      sessions.delete(event.sessionKey);
    } else {
      const known = sessions.get(event.sessionKey);
      if (known && (known.lastActivityAt ?? '') > (event.session.lastActivityAt ?? '')) return;
      sessions.set(event.sessionKey, event.session);
    }
    schedule();
  };

  /** Applies the events that arrived while a page was being fetched. */
  const flushPending = () => {
    const pending = loading ?? [];
    loading = null;
    for (const event of pending) apply(event);
    schedule();
  };

  // bumped by every fetch: only the newest one's answer is applied (the "more" button is hidden
  // while one runs, so a newer fetch is always a refetch of the first page)
  let fetches = 0;
  const load = async (after: string | null) => {
    const mine = ++fetches;
    loading ??= [];
    more.hidden = true;
    try {
      const data = await client.query<SessionsData>(SESSIONS, { first: PAGE_SIZE, after });
      if (mine !== fetches) return;
      problem = null;
      if (after === null) sessions.clear();
      for (const { node } of data.sessions.edges) sessions.set(node.key, node);
      endCursor = data.sessions.pageInfo.endCursor;
      more.hidden = !data.sessions.pageInfo.hasNextPage;
      flushPending();
    } catch (err) {
      if (mine !== fetches) return;
      problem = `Could not load sessions: ${(err as Error).message}`;
      flushPending();
    }
  };

  more.addEventListener('click', () => void load(endCursor));

  return {
    start() {
      client.live<SessionActivityData>(SESSION_ACTIVITY, () => ({}), {
        next: ({ sessionActivity: event }) => {
          for (const listener of listeners) listener(event.sessionKey, event.session);
          if (loading) loading.push(event);
          else apply(event);
        },
        resubscribed: () => void load(null),
        failed: (message) => {
          problem = `Not following the session list: ${message}`;
          schedule();
        },
      });
      void load(null);
    },
    select(key) {
      selected = key;
      for (const [rowKey, entry] of rows) {
        entry.row.firstElementChild?.toggleAttribute('aria-current', rowKey === key);
      }
    },
    onChange(listener) {
      listeners.push(listener);
    },
  };
}

function renderRow(session: SessionSummary, current: boolean): HTMLElement {
  const last = session.lastMessage;
  return h(
    'a',
    { class: 'session', href: sessionHref(session.key), 'data-key': session.key, 'aria-current': current },
    h(
      'div',
      { class: 'session-top' },
      h('span', { class: 'session-title' }, session.name ?? session.key),
      h('span', { class: 'session-count', title: 'messages' }, String(session.messageCount)),
    ),
    h(
      'div',
      { class: 'session-meta' },
      session.channel && h('span', { class: 'channel' }, session.channel),
      session.name !== null && h('span', { class: 'session-key' }, session.key),
      h('time', { datetime: session.lastActivityAt ?? undefined }, formatInstant(session.lastActivityAt)),
    ),
    last &&
      h(
        'div',
        { class: 'session-preview', 'data-role': roleClass(last.role) },
        h('span', { class: 'role' }, last.role),
        ' ',
        preview(last.content),
      ),
  );
}

function preview(content: string): string {
  const line = content.replace(/\s+/g, ' ').trim();
  return line.length > PREVIEW_CHARS ? `${line.slice(0, PREVIEW_CHARS)}…` : line;
}

/** Most recent first; never-active sessions last; ties by key. */
function byActivity(a: SessionSummary, b: SessionSummary): number {
  const x = a.lastActivityAt ?? '';
  const y = b.lastActivityAt ?? '';
  if (x !== y) return x < y ? 1 : -1;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** Restarts the row's highlight animation. */
function flash(row: HTMLElement): void {
  row.classList.remove('fresh');
  void row.offsetWidth;
  row.classList.add('fresh');
  row.addEventListener('animationend', () => row.classList.remove('fresh'), { once: true });
}

/** Whether a row showing `a` would show `b` the same. */
function sameSummary(a: SessionSummary, b: SessionSummary): boolean {
  return (
    a.name === b.name &&
    a.lastActivityAt === b.lastActivityAt &&
    a.messageCount === b.messageCount &&
    a.lastMessage?.role === b.lastMessage?.role &&
    a.lastMessage?.content === b.lastMessage?.content
  );
}

/**
 * One session, live-tailed: its newest page of messages, then `sessionEvents` from the page's end
 * cursor. Every event moves the cursor, and a resubscription (reconnect, ended feed) reads it, so
 * the feed resumes exactly there: no gap, no duplicate.
 *
 * A session without messages has no cursor: its feed starts `fromStart`, so a message stored
 * between the fetch and the subscription still arrives.
 */

import {
  type MessageFields,
  SESSION_EVENTS,
  SESSION_MESSAGES,
  type SessionEvent,
  type SessionEventsData,
  type SessionMessagesData,
  type SessionSummary,
} from './documents.js';
import { h, replaceChildren } from './dom.js';
import { formatInstant } from './format-time.js';
import type { GraphQLClient } from './graphql-client.js';
import { renderContent, roleClass } from './message-content.js';

/** @default 100 // messages per page */
const PAGE_SIZE = 100;
/** How close to the bottom (px) still counts as "reading the tail": new messages scroll into view. */
const STICK_PX = 48;
/**
 * Messages kept on the page while tailing: past it the oldest leave (and come back with "Earlier
 * messages"), so a page left open on a busy session does not grow without end.
 * @default 1_000
 */
const MAX_TAILED = 1_000;

export interface SessionView {
  /** Shows a session and follows it; `focusSeq` scrolls to that message when it is on the page. */
  open(key: string, focusSeq: number | null): void;
  /** Stops following. */
  close(): void;
  /** A change the session list's feed reported (null: deleted). */
  sessionChanged(key: string, session: SessionSummary | null): void;
}

interface Shown {
  key: string;
  cursor: string | null;
  startCursor: string | null;
  summary: SessionSummary | null;
  /** The messages on the page, with the cursor of each (to page back from the first). */
  bySeq: Map<number, { element: HTMLElement; cursor: string }>;
  stopLive: () => void;
}

export function createSessionView(
  client: GraphQLClient,
  elements: { root: HTMLElement; header: HTMLElement; messages: HTMLElement; earlier: HTMLButtonElement },
): SessionView {
  const { root, header, messages, earlier } = elements;
  let shown: Shown | null = null;
  // bumped by every open and close: an answer for an earlier one is dropped
  let generation = 0;

  const renderHeader = (s: Shown, note?: string) => {
    const summary = s.summary;
    replaceChildren(
      header,
      h('h2', { class: 'session-heading' }, summary?.name ?? s.key),
      h(
        'p',
        { class: 'session-meta' },
        summary?.name != null && h('span', { class: 'session-key' }, s.key),
        summary?.channel && h('span', { class: 'channel' }, summary.channel),
        summary && h('span', { class: 'message-count' }, `${summary.messageCount} messages`),
        summary && s.bySeq.size < summary.messageCount && h('span', {}, `the last ${s.bySeq.size} shown`),
        note && h('span', { class: 'note' }, note),
      ),
    );
  };

  const atBottom = () => messages.scrollHeight - messages.scrollTop - messages.clientHeight < STICK_PX;

  const append = (s: Shown, message: MessageFields, cursor: string) => {
    if (s.bySeq.has(message.seq)) return;
    const element = renderMessage(message);
    s.bySeq.set(message.seq, { element, cursor });
    messages.append(element);
  };

  /** Drops the oldest messages past MAX_TAILED, when the reader is at the tail. */
  const trim = (s: Shown) => {
    while (s.bySeq.size > MAX_TAILED && messages.firstElementChild) {
      const oldest = messages.firstElementChild;
      oldest.remove();
      s.bySeq.delete(Number(oldest.getAttribute('data-seq')));
      const first = messages.firstElementChild;
      s.startCursor = first ? (s.bySeq.get(Number(first.getAttribute('data-seq')))?.cursor ?? null) : null;
      earlier.hidden = s.startCursor === null;
    }
  };

  const onEvent = (s: Shown, event: SessionEvent, open: (key: string) => void) => {
    s.cursor = event.cursor;
    const stick = atBottom();
    switch (event.__typename) {
      case 'MessageAppended':
        append(s, event.message, event.cursor);
        if (stick) trim(s);
        break;
      case 'MessageRemoved':
        s.bySeq.get(event.seq)?.element.remove();
        s.bySeq.delete(event.seq);
        s.summary = event.session ?? s.summary;
        break;
      case 'SessionRenamed':
        if (s.summary) s.summary = { ...s.summary, name: event.name };
        break;
      case 'SessionReset':
        // what this view holds no longer matches the store: load it again
        open(s.key);
        return;
      case 'SessionDeleted':
        s.bySeq.clear();
        messages.replaceChildren();
        s.summary = null;
        renderHeader(s, 'deleted');
        return;
      case 'SessionCompacted':
        break;
    }
    renderHeader(s);
    if (stick) messages.scrollTop = messages.scrollHeight;
  };

  const open = async (key: string, focusSeq: number | null) => {
    close();
    const mine = ++generation;
    root.hidden = false;
    const s: Shown = {
      key,
      cursor: null,
      startCursor: null,
      summary: null,
      bySeq: new Map(),
      stopLive: () => {},
    };
    shown = s;
    messages.replaceChildren();
    earlier.hidden = true;
    renderHeader(s, 'loading…');
    let data: SessionMessagesData;
    try {
      data = await client.query<SessionMessagesData>(SESSION_MESSAGES, { key, last: PAGE_SIZE });
    } catch (err) {
      if (mine === generation) renderHeader(s, `could not load: ${(err as Error).message}`);
      return;
    }
    if (mine !== generation) return;
    const session = data.session;
    if (session) {
      const { messages: page, ...summary } = session;
      s.summary = summary;
      for (const edge of page.edges) append(s, edge.node, edge.cursor);
      s.cursor = page.pageInfo.endCursor;
      s.startCursor = page.pageInfo.startCursor;
      earlier.hidden = !page.pageInfo.hasPreviousPage;
    }
    renderHeader(s, session ? undefined : 'no messages yet');
    const focus = focusSeq === null ? undefined : s.bySeq.get(focusSeq)?.element;
    if (focus) {
      focus.classList.add('focus');
      focus.scrollIntoView({ block: 'center' });
    } else {
      messages.scrollTop = messages.scrollHeight;
    }
    s.stopLive = client.live<SessionEventsData>(
      SESSION_EVENTS,
      () => ({ sessionKey: key, after: s.cursor, fromStart: s.cursor === null }),
      {
        next: (d) => {
          if (shown === s) onEvent(s, d.sessionEvents, (k) => void open(k, null));
        },
        failed: (message) => {
          if (shown === s) renderHeader(s, `not following: ${message}`);
        },
      },
    );
  };

  const close = () => {
    generation += 1;
    shown?.stopLive();
    shown = null;
    root.hidden = true;
  };

  earlier.addEventListener('click', async () => {
    const s = shown;
    if (!s?.startCursor) return;
    earlier.disabled = true;
    try {
      const data = await client.query<SessionMessagesData>(SESSION_MESSAGES, {
        key: s.key,
        last: PAGE_SIZE,
        before: s.startCursor,
      });
      if (shown !== s || !data.session) return;
      const page = data.session.messages;
      const height = messages.scrollHeight;
      const first = messages.firstElementChild;
      for (const { node, cursor } of page.edges) {
        if (s.bySeq.has(node.seq)) continue;
        const element = renderMessage(node);
        s.bySeq.set(node.seq, { element, cursor });
        messages.insertBefore(element, first);
      }
      messages.scrollTop += messages.scrollHeight - height;
      s.startCursor = page.pageInfo.startCursor;
      earlier.hidden = !page.pageInfo.hasPreviousPage;
      renderHeader(s);
    } finally {
      earlier.disabled = false;
    }
  });

  return {
    open: (key, focusSeq) => void open(key, focusSeq),
    close,
    sessionChanged(key, session) {
      const s = shown;
      if (s === null || s.key !== key) return;
      if (session) s.summary = session;
      renderHeader(s, session ? undefined : 'deleted');
    },
  };
}

function renderMessage(message: MessageFields): HTMLElement {
  return h(
    'li',
    { class: 'message', 'data-role': roleClass(message.role), 'data-seq': String(message.seq) },
    h(
      'header',
      {},
      h('span', { class: 'role' }, message.role),
      h('span', { class: 'seq' }, `#${message.seq}`),
      h('time', { datetime: message.createdAt ?? undefined }, formatInstant(message.createdAt)),
    ),
    renderContent(message.role, message.content),
  );
}

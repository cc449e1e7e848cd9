/**
 * The dashboard's GraphQL documents, one file each under src/ui/graphql/, completed with the
 * fragments they spread. They are the reference for dashboard authors: copy them as they are.
 */

import messageFields from '../graphql/message-fields.graphql';
import search from '../graphql/search.graphql';
import sessionActivity from '../graphql/session-activity.graphql';
import sessionEvents from '../graphql/session-events.graphql';
import sessionMessages from '../graphql/session-messages.graphql';
import sessionSummary from '../graphql/session-summary.graphql';
import sessions from '../graphql/sessions.graphql';

export const SESSIONS = `${sessions}\n${sessionSummary}`;
export const SESSION_ACTIVITY = `${sessionActivity}\n${sessionSummary}`;
export const SESSION_MESSAGES = `${sessionMessages}\n${sessionSummary}\n${messageFields}`;
export const SESSION_EVENTS = `${sessionEvents}\n${sessionSummary}\n${messageFields}`;
export const SEARCH = search;

/** What the SessionSummary fragment selects. */
export interface SessionSummary {
  key: string;
  name: string | null;
  channel: string | null;
  lastActivityAt: string | null;
  messageCount: number;
  lastSeq: number;
  lastMessage: { role: string; content: string } | null;
}

/** What the MessageFields fragment selects. */
export interface MessageFields {
  seq: number;
  role: string;
  content: string;
  createdAt: string | null;
}

export interface SessionsData {
  sessions: {
    edges: Array<{ cursor: string; node: SessionSummary }>;
    pageInfo: { hasNextPage: boolean; endCursor: string | null };
  };
}

export interface SessionActivityData {
  sessionActivity: {
    kind: 'CREATED' | 'UPDATED' | 'RENAMED' | 'DELETED';
    sessionKey: string;
    session: SessionSummary | null;
  };
}

export interface SessionMessagesData {
  session:
    | (SessionSummary & {
        messages: {
          edges: Array<{ cursor: string; node: MessageFields }>;
          pageInfo: { hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
        };
      })
    | null;
}

interface LiveEventBase {
  cursor: string;
  sessionKey: string;
}

export type SessionEvent = LiveEventBase &
  (
    | { __typename: 'MessageAppended'; message: MessageFields }
    | { __typename: 'MessageRemoved'; seq: number; session: SessionSummary | null }
    | { __typename: 'SessionRenamed'; name: string | null }
    | { __typename: 'SessionCompacted'; droppedCount: number }
    | { __typename: 'SessionReset'; session: SessionSummary | null }
    | { __typename: 'SessionDeleted' }
  );

export interface SessionEventsData {
  sessionEvents: SessionEvent;
}

export interface SearchHit {
  score: number;
  snippetText: string;
  snippetMatches: Array<{ start: number; end: number }>;
  message: { seq: number; role: string; sessionKey: string; createdAt: string | null };
}

export interface SearchData {
  search: { edges: Array<{ cursor: string; node: SearchHit }> };
}

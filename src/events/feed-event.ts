/**
 * What a live feed hands a subscriber: a session event plus the cursor of the feed's position
 * right after it, which `sessionEvents(after:)` takes back to resume exactly there.
 */

import type { SessionInfo, StoredMessage } from '../backends/backend.js';
import type { SessionEvent } from './event-bus.js';

export type FeedEvent = { readonly cursor: string } & (
  | { type: 'MessageAppended'; sessionKey: string; message: StoredMessage }
  | { type: 'MessageRemoved'; sessionKey: string; seq: number; session: SessionInfo }
  | { type: 'SessionCompacted'; sessionKey: string; dropped: number; session: SessionInfo }
  | { type: 'SessionRenamed'; sessionKey: string; name: string | null; session: SessionInfo }
  | { type: 'SessionDeleted'; sessionKey: string }
  | { type: 'SessionReset'; sessionKey: string; session: SessionInfo | null }
);

export function toFeedEvent(event: SessionEvent, cursor: string): FeedEvent {
  // a replayed message has no session snapshot either: MessageAppended carries the message only
  if (event.type === 'MessageAppended') {
    return { type: event.type, sessionKey: event.sessionKey, message: event.message, cursor };
  }
  return { ...event, cursor };
}

/**
 * `sessionEvents`: one session, live. Every event carries the cursor of the feed's position right
 * after it; subscribing again with that cursor as `after` resumes exactly there (src/events/feed.ts).
 */

import { InvalidInputError } from '../errors.js';
import type { FeedEvent } from '../events/feed-event.js';
import { encodePosition, START_POSITION } from '../events/message-cursor.js';
import { builder } from './builder.js';
import { Message } from './message.js';
import { Session } from './session.js';

type EventOf<T extends FeedEvent['type']> = Extract<FeedEvent, { type: T }>;

export const LiveEvent = builder.interfaceRef<FeedEvent>('LiveEvent').implement({
  description: 'What every live session event carries.',
  fields: (t) => ({
    sessionKey: t.exposeString('sessionKey', { description: 'The session the event is about.' }),
    cursor: t.exposeString('cursor', {
      description:
        'The position right after this event, a message cursor like a `messages` edge cursor: pass it as ' +
        '`sessionEvents(after:)` to resume here, missing nothing and receiving nothing twice.',
    }),
  }),
});

const MessageAppended = builder.objectRef<EventOf<'MessageAppended'>>('MessageAppended').implement({
  description: 'A message was stored (or, when resuming, is one stored after the given cursor).',
  interfaces: [LiveEvent],
  fields: (t) => ({
    message: t.field({ type: Message, description: 'The stored message.', resolve: (e) => e.message }),
  }),
});

const MessageRemoved = builder.objectRef<EventOf<'MessageRemoved'>>('MessageRemoved').implement({
  description: 'The last message was removed (removeLastMessage). JSONL reuses its seq for the next one.',
  interfaces: [LiveEvent],
  fields: (t) => ({
    seq: t.exposeInt('seq', { description: 'The seq of the removed message.' }),
    session: t.field({
      type: Session,
      // nullable like SessionReset.session: same-named fields of union members must agree
      nullable: true,
      description: 'The session after the removal; never null here.',
      resolve: (e) => e.session,
    }),
  }),
});

const SessionCompacted = builder.objectRef<EventOf<'SessionCompacted'>>('SessionCompacted').implement({
  description: 'Unreadable entries were dropped (compactSession); readable messages are unchanged.',
  interfaces: [LiveEvent],
  fields: (t) => ({
    droppedCount: t.int({ description: 'Unreadable entries removed.', resolve: (e) => e.dropped }),
    session: t.field({
      type: Session,
      // nullable like SessionReset.session: same-named fields of union members must agree
      nullable: true,
      description: 'The session after compaction; never null here.',
      resolve: (e) => e.session,
    }),
  }),
});

const SessionRenamed = builder.objectRef<EventOf<'SessionRenamed'>>('SessionRenamed').implement({
  description: 'The session got a new label (renameSession).',
  interfaces: [LiveEvent],
  fields: (t) => ({
    name: t.string({
      nullable: true,
      description: 'The new label; null when cleared.',
      resolve: (e) => e.name,
    }),
    session: t.field({
      type: Session,
      // nullable like SessionReset.session: same-named fields of union members must agree
      nullable: true,
      description: 'The session after the rename; never null here.',
      resolve: (e) => e.session,
    }),
  }),
});

const SessionDeleted = builder.objectRef<EventOf<'SessionDeleted'>>('SessionDeleted').implement({
  description:
    'The session was deleted, with all its messages (deleteSession or the TTL cleanup). The feed goes on: ' +
    'a session created again under the key continues it.',
  interfaces: [LiveEvent],
});

const SessionReset = builder.objectRef<EventOf<'SessionReset'>>('SessionReset').implement({
  description:
    'The session no longer matches what this client holds: the message of the `after` cursor was removed or ' +
    'rewritten, or another process rewrote the session. Refetch `messages`; the feed goes on from its cursor.',
  interfaces: [LiveEvent],
  fields: (t) => ({
    session: t.field({
      type: Session,
      nullable: true,
      description: 'The session as it is now; null when it does not exist.',
      resolve: (e) => e.session,
    }),
  }),
});

const SessionEvent = builder.unionType('SessionEvent', {
  description: 'Something that happened to one session. Select `... on LiveEvent { cursor }` on every event.',
  types: [MessageAppended, MessageRemoved, SessionCompacted, SessionRenamed, SessionDeleted, SessionReset],
  resolveType: (event) => event.type,
});

/** "Before the first message": a client that holds nothing of a session resumes from here. */
const FROM_START = encodePosition(START_POSITION);

builder.subscriptionField('sessionEvents', (t) =>
  t.field({
    type: SessionEvent,
    description:
      "A session's events, live, over graphql-ws or SSE. With `after`, first every message stored after that " +
      'cursor, in order, then what happens next: no gap, no duplicate. If the cursor no longer matches the ' +
      'session, the first event is SessionReset. With `fromStart`, first every message of the session from its ' +
      'first one (none yet is fine: the session may not exist). With neither, from now on. A client that stops ' +
      'reading is ended with a FEED_OVERFLOW error and resumes from its last cursor.',
    args: {
      sessionKey: t.arg.string({ required: true, description: 'The raw session key.' }),
      after: t.arg.string({
        description:
          'A cursor from a `messages` edge or from an earlier event. Omit it and `fromStart` to start from now.',
      }),
      fromStart: t.arg.boolean({
        description:
          'Replay the session from its first message, then go live: for a client that holds none of its ' +
          'messages yet, so that one stored before the subscription starts is not missed. Not with `after`.',
      }),
    },
    subscribe: (_root, args, ctx) => {
      if (args.fromStart && args.after != null) {
        throw new InvalidInputError('give either `after` or `fromStart`, not both', 'fromStart');
      }
      const after = args.fromStart ? FROM_START : args.after;
      return ctx.feed.sessionEvents(args.sessionKey, after, ctx.connection);
    },
    resolve: (event: FeedEvent) => event,
  }),
);

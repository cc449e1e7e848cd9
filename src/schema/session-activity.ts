/**
 * `sessionActivity`: the session list, live, for dashboards. Each event is a snapshot of one
 * session, so a client keeps a list current by upserting on CREATED/UPDATED/RENAMED and removing
 * on DELETED; to (re)start, it reads `sessions` and then subscribes.
 */

import type { ActivityEvent, ActivityKind } from '../events/activity-topic.js';
import { builder } from './builder.js';
import { Session, stripNullish } from './session.js';

const SessionActivityKind = builder.enumType('SessionActivityKind', {
  description: 'What changed in the session list.',
  values: {
    CREATED: { value: 'CREATED', description: 'The session got its first message.' },
    UPDATED: { value: 'UPDATED', description: 'Messages were appended, removed or compacted.' },
    RENAMED: { value: 'RENAMED', description: 'The session got a new label (or was created empty by it).' },
    DELETED: { value: 'DELETED', description: 'The session is gone.' },
  } as const satisfies Record<ActivityKind, unknown>,
});

const SessionActivityEvent = builder.objectRef<ActivityEvent>('SessionActivityEvent').implement({
  description: 'One change to the session list.',
  fields: (t) => ({
    kind: t.field({ type: SessionActivityKind, description: 'What changed.', resolve: (e) => e.kind }),
    sessionKey: t.exposeString('sessionKey', { description: 'The session that changed.' }),
    session: t.field({
      type: Session,
      nullable: true,
      description: 'The session after the change (lastActivityAt, messageCount, name); null when DELETED.',
      resolve: (e) => e.session,
    }),
  }),
});

const SessionActivityFilter = builder.inputType('SessionActivityFilter', {
  description: 'Which sessions to follow; every given condition must hold.',
  fields: (t) => ({
    keyPrefix: t.string({ description: 'Keys starting with this text (taken literally, no wildcards).' }),
    channel: t.string({ description: 'Keys whose channel (text before the first `_`) is exactly this.' }),
  }),
});

builder.subscriptionField('sessionActivity', (t) =>
  t.field({
    type: SessionActivityEvent,
    description:
      'Changes to the session list from now on: created, updated, renamed, deleted. A slow client gets the ' +
      'newest snapshot of a session instead of every step, and is ended with FEED_OVERFLOW past its cap.',
    args: {
      filter: t.arg({
        type: SessionActivityFilter,
        description: 'Which sessions to follow; all when omitted.',
      }),
    },
    subscribe: (_root, args, ctx) =>
      ctx.feed.sessionActivity(stripNullish(args.filter ?? {}), ctx.connection),
    resolve: (event: ActivityEvent) => event,
  }),
);

import type { Page, SessionInfo, SessionOrder } from '../backends/backend.js';
import { channelOf } from '../backends/keys.js';
import { builder } from './builder.js';
import type { Context } from './context.js';
import { decodeSessionCursor, encodeSessionCursor, sessionListScope } from './cursors.js';
import { DateTime } from './scalars.js';

export const Session = builder.loadableNode('Session', {
  description:
    'One conversation, identified by its session key (zeroclaw: `<channel>_<target>_<sender>`, e.g. ' +
    '`telegram_123_alice`). Lists and counts cover readable messages only.',
  id: { resolve: (session) => session.key },
  isTypeOf: (value) => typeof value === 'object' && value !== null && 'messageCount' in value,
  // the dataloader batches keys per request; the contract reads one session per call
  load: (keys: string[], ctx: Context) =>
    Promise.all(keys.map((key) => ctx.backend.session(key))) as Promise<SessionInfo[]>,
  cacheResolved: (session) => session.key,
  fields: (t) => ({
    key: t.exposeString('key', { description: 'The raw session key, exactly as written.' }),
    name: t.string({
      nullable: true,
      description: 'A human label set with `renameSession`; null when unnamed.',
      resolve: (s) => s.name,
    }),
    createdAt: t.field({
      type: DateTime,
      nullable: true,
      description: 'When the session began; null where the backend cannot know it.',
      resolve: (s) => s.createdAt,
    }),
    lastActivityAt: t.field({
      type: DateTime,
      nullable: true,
      description: 'When a message was last appended (zeroclaw `last_activity`); drives ordering and TTL.',
      resolve: (s) => s.lastActivityAt,
    }),
    messageCount: t.exposeInt('messageCount', { description: 'Readable messages in the session.' }),
    lastSeq: t.int({
      description:
        'The seq of the last message, 0 when the session holds none. Pass it as `expectedLastSeq` to ' +
        'write only if nobody else wrote meanwhile.',
      resolve: (s) => s.lastSeq ?? 0,
    }),
    channel: t.string({
      nullable: true,
      description:
        'The key text before its first `_` (telegram, discord, slack, gw, rpc ...); null without one.',
      resolve: (s) => channelOf(s.key),
    }),
    unreadableCount: t.int({
      nullable: true,
      description:
        'Stored entries that cannot be read (JSONL: corrupt lines, skipped on read and dropped only by ' +
        '`compactSession`); null where the backend does not count them.',
      resolve: (s) => s.unreadableCount,
    }),
    estimatedTokens: t.loadable({
      type: 'Int',
      description: "ceil(characters / 4) over all readable content: zeroclaw's own token estimate.",
      load: async (keys: string[], ctx: Context) => {
        const counts = await ctx.backend.characterCounts(keys);
        return keys.map((key) => Math.ceil((counts.get(key) ?? 0) / 4));
      },
      resolve: (s) => s.key,
    }),
  }),
});

export const SessionOrderEnum = builder.enumType('SessionOrder', {
  description: 'Orders of the session list; ties are broken by key.',
  values: {
    LAST_ACTIVITY_DESC: { value: 'LAST_ACTIVITY_DESC', description: 'Most recently active first (default).' },
    LAST_ACTIVITY_ASC: { value: 'LAST_ACTIVITY_ASC', description: 'Least recently active first.' },
    KEY_ASC: { value: 'KEY_ASC', description: 'By key, A to Z (code point order).' },
    KEY_DESC: { value: 'KEY_DESC', description: 'By key, Z to A.' },
  } as const satisfies Record<SessionOrder, unknown>,
});

export const SessionFilter = builder.inputType('SessionFilter', {
  description: 'Narrows the session list; every given condition must hold.',
  fields: (t) => ({
    keyPrefix: t.string({ description: 'Keys starting with this text (taken literally, no wildcards).' }),
    channel: t.string({ description: 'Keys whose channel (text before the first `_`) is exactly this.' }),
    activeSince: t.field({ type: DateTime, description: 'Last activity at or after this instant.' }),
    activeBefore: t.field({ type: DateTime, description: 'Last activity strictly before this instant.' }),
  }),
});

/** @param scope the list's order and filter (sessionListScope), which its cursors carry */
export function sessionConnection(page: Page<SessionInfo>, scope: string) {
  const edges = page.items.map((node) => ({ node, cursor: encodeSessionCursor(node, scope) }));
  return {
    edges,
    pageInfo: {
      hasNextPage: page.hasNextPage,
      hasPreviousPage: page.hasPreviousPage,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
  };
}

builder.queryFields((t) => ({
  session: t.field({
    type: Session,
    nullable: true,
    description: 'One session by its raw key; null when it does not exist.',
    args: { key: t.arg.string({ required: true, description: 'The raw session key.' }) },
    resolve: (_root, { key }) => key,
  }),
  sessions: t.connection(
    {
      type: Session,
      description: 'Sessions, paged with cursors in either direction, filtered and ordered.',
      args: {
        filter: t.arg({ type: SessionFilter, description: 'Conditions every listed session meets.' }),
        orderBy: t.arg({
          type: SessionOrderEnum,
          defaultValue: 'LAST_ACTIVITY_DESC',
          description:
            'The list order. Cursors are bound to the order and filter that issued them: under another, INVALID.',
        }),
      },
      resolve: async (_root, args, ctx) => {
        const filter = stripNullish(args.filter ?? {});
        const order = args.orderBy ?? 'LAST_ACTIVITY_DESC';
        const scope = sessionListScope(order, filter);
        return sessionConnection(
          await ctx.backend.sessions({
            filter,
            order,
            ...(args.first != null && { first: args.first }),
            ...(args.last != null && { last: args.last }),
            ...(args.after != null && { after: decodeSessionCursor(args.after, 'after', scope) }),
            ...(args.before != null && { before: decodeSessionCursor(args.before, 'before', scope) }),
          }),
          scope,
        );
      },
    },
    { name: 'SessionConnection', description: 'A page of sessions.' },
    { name: 'SessionEdge', description: 'A session in a page, with its cursor.' },
  ),
}));

/** GraphQL hands absent and null input fields alike to the contract as absent. */
export function stripNullish<T extends object>(value: T): { [K in keyof T]?: NonNullable<T[K]> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v != null)) as never;
}

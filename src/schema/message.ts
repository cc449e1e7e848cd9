import type { Page, StoredMessage } from '../backends/backend.js';
import { encodeMessageCursor } from '../events/message-cursor.js';
import { builder } from './builder.js';
import type { Context } from './context.js';
import { readMessagePage } from './message-page.js';
import { DateTime } from './scalars.js';
import { Session } from './session.js';

/** A Message's local id: `<seq>:<session key>` (the key may hold any character, so it goes last). */
function messageLocalId(message: Pick<StoredMessage, 'seq' | 'sessionKey'>): string {
  return `${message.seq}:${message.sessionKey}`;
}

/** null for an id we never issued: `node(id:)` then answers null, as for a message that is gone. */
function parseMessageLocalId(id: string): { seq: number; sessionKey: string } | null {
  const at = id.indexOf(':');
  const seq = Number(id.slice(0, at));
  if (at < 1 || !/^\d+$/.test(id.slice(0, at)) || !Number.isSafeInteger(seq)) return null;
  return { seq, sessionKey: id.slice(at + 1) };
}

export const Message = builder.loadableNode('Message', {
  description: 'One stored chat message: a role and its content, as zeroclaw stores them.',
  id: { resolve: (message: StoredMessage) => messageLocalId(message) },
  isTypeOf: (value) => typeof value === 'object' && value !== null && 'seq' in value && 'content' in value,
  load: (ids: string[], ctx: Context) =>
    Promise.all(
      ids.map((id) => {
        const local = parseMessageLocalId(id);
        return local && ctx.backend.message(local.sessionKey, local.seq);
      }),
    ) as Promise<StoredMessage[]>,
  fields: (t) => ({
    seq: t.exposeInt('seq', {
      description:
        'Position in the session, increasing. SQLite: the row id, never reused. JSONL: the 1-based line ' +
        'position among readable lines, reused after removeLastMessage (cursors detect that).',
    }),
    sessionKey: t.exposeString('sessionKey', { description: 'The key of the session holding this message.' }),
    session: t.field({
      type: Session,
      description: 'The session holding this message.',
      resolve: (m) => m.sessionKey,
    }),
    role: t.exposeString('role', {
      description: '`user`, `assistant`, `system`, `tool`, or any other role text.',
    }),
    content: t.exposeString('content', {
      description: 'The message text, exactly as stored (tool turns hold JSON text).',
    }),
    createdAt: t.field({
      type: DateTime,
      nullable: true,
      description: 'When the message was stored; null where the backend does not record it (JSONL).',
      resolve: (m) => m.createdAt,
    }),
  }),
});

export const MessageEdge = builder.edgeObject({
  type: Message,
  name: 'MessageEdge',
  description: 'A message in a page, with its cursor.',
});

/** An edge computes its cursor (a SHA-256 digest) only when a client selects it. */
class LazyMessageEdge {
  constructor(readonly node: StoredMessage) {}

  get cursor(): string {
    return encodeMessageCursor(this.node);
  }
}

export function messageEdge(node: StoredMessage): { node: StoredMessage; cursor: string } {
  return new LazyMessageEdge(node);
}

export function messageConnection(page: Page<StoredMessage>) {
  const edges = page.items.map(messageEdge);
  return {
    edges,
    pageInfo: {
      hasNextPage: page.hasNextPage,
      hasPreviousPage: page.hasPreviousPage,
      get startCursor() {
        return edges[0]?.cursor ?? null;
      },
      get endCursor() {
        return edges.at(-1)?.cursor ?? null;
      },
    },
  };
}

builder.objectFields(Session, (t) => ({
  messages: t.connection(
    {
      type: Message,
      description:
        'The messages, oldest first, paged by seq: `first`/`after` forward, `last`/`before` backward (items ' +
        'stay oldest first). Without `first` and `last`: the first 50. The cost is the page, not the session. ' +
        "A cursor counts only while this session still holds its message, unchanged: another session's cursor, " +
        'or one whose message was removed or rewritten since, is INVALID (page again from the start or the end).',
      resolve: async (session, args, ctx) =>
        messageConnection(
          await readMessagePage(ctx.backend, ctx.limits, session.key, {
            first: args.first ?? undefined,
            last: args.last ?? undefined,
            after: args.after ?? undefined,
            before: args.before ?? undefined,
          }),
        ),
    },
    { name: 'MessageConnection', description: 'A page of messages, oldest first.' },
    MessageEdge,
  ),
  lastMessage: t.loadable({
    type: Message,
    nullable: true,
    description: 'The newest message; null when the session holds none. Batched across sessions.',
    load: async (keys: string[], ctx: Context) => {
      const last = await ctx.backend.lastMessages(keys);
      return keys.map((key) => last.get(key) ?? null) as StoredMessage[];
    },
    resolve: (session) => (session.lastSeq === null ? null : session.key),
  }),
}));

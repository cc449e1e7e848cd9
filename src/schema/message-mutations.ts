/**
 * Writes that add or remove messages. Each takes one `input` and returns its payload or one of
 * the typed errors in its result union; a payload carries the affected session and messages (as
 * edges too, for Relay's @appendEdge) so a client updates its cache without a second request.
 */

import { z } from 'zod';
import type { AppendResult, RemoveLastResult, SessionInfo, StoredMessage } from '../backends/backend.js';
import { ConflictError, NotFoundError } from '../errors.js';
import { builder } from './builder.js';
import { afterWrite } from './context.js';
import { KEY_ERRORS } from './errors.js';
import { Message, MessageEdge, messageEdge } from './message.js';
import { Session } from './session.js';

const seqGuard = z.number().int().min(0);

/** The API's "0 means empty" guard, as the contract's `null`; absent or null means no guard. */
function expectedLastSeqOption(seq: number | null | undefined): { expectedLastSeq?: number | null } {
  if (seq == null) return {};
  return { expectedLastSeq: seq === 0 ? null : seq };
}

const GUARD_DESCRIPTION =
  'Write only if the last message of the session still has this seq (read it from `Session.lastSeq`); ' +
  '0 requires an empty or new session. Otherwise a ConflictError says what the seq is now. Omit for no guard.';

const CLIENT_MESSAGE_ID_DESCRIPTION =
  'Idempotency key, unique within the session (up to 256 bytes): a retry with the same id and the same ' +
  'messages returns the first result with `replayed: true` and stores nothing; the same id with other ' +
  'messages is a ConflictError, and so is a retry whose messages were removed since (removeLastMessage): ' +
  'nothing is stored again. A deleted session takes its ids with it: a retry after the delete is stored anew.';

const NewMessageInput = builder.inputType('NewMessageInput', {
  description: 'A message to store: exactly what zeroclaw stores, a role and content.',
  fields: (t) => ({
    role: t.string({ required: true, description: '`user`, `assistant`, `system`, `tool` or another role.' }),
    content: t.string({ required: true, description: 'The text; up to `backend.limits.maxContentBytes`.' }),
  }),
});

const AppendMessageInput = builder.inputType('AppendMessageInput', {
  description: 'One message to append to a session (created when new).',
  fields: (t) => ({
    sessionKey: t.string({ required: true, description: 'The raw session key.' }),
    role: t.string({ required: true, description: '`user`, `assistant`, `system`, `tool` or another role.' }),
    content: t.string({ required: true, description: 'The text; up to `backend.limits.maxContentBytes`.' }),
    clientMessageId: t.string({ description: CLIENT_MESSAGE_ID_DESCRIPTION }),
    expectedLastSeq: t.int({ description: GUARD_DESCRIPTION, validate: seqGuard }),
  }),
});

const AppendMessagesInput = builder.inputType('AppendMessagesInput', {
  description: 'Several messages to append to a session at once: all are stored or none.',
  fields: (t) => ({
    sessionKey: t.string({ required: true, description: 'The raw session key.' }),
    messages: t.field({
      type: [NewMessageInput],
      required: true,
      description: 'The messages, in order; 1 to `backend.limits.maxBatchMessages`.',
    }),
    clientMessageId: t.string({ description: CLIENT_MESSAGE_ID_DESCRIPTION }),
    expectedLastSeq: t.int({ description: GUARD_DESCRIPTION, validate: seqGuard }),
  }),
});

const RemoveLastMessageInput = builder.inputType('RemoveLastMessageInput', {
  description: 'Which session to remove the last message from, and optionally which message you mean.',
  fields: (t) => ({
    sessionKey: t.string({ required: true, description: 'The raw session key.' }),
    expectedLastSeq: t.int({
      description:
        'Remove only if the last message still has this seq, so a message someone else appended meanwhile ' +
        'is never removed by mistake; otherwise a ConflictError. Omit for no guard.',
      validate: z.number().int().min(1),
    }),
  }),
});

const REPLAYED_DESCRIPTION =
  'True when this was a retry of an earlier append with the same clientMessageId: nothing new was stored.';

const AppendMessagePayload = builder
  .objectRef<{ message: StoredMessage; session: SessionInfo; replayed: boolean }>('AppendMessagePayload')
  .implement({
    description: 'The stored message and the session after the append.',
    fields: (t) => ({
      // not `message`: that name is Error.message in the same result union
      appendedMessage: t.field({
        type: Message,
        description: 'The stored message, with its seq.',
        resolve: (p) => p.message,
      }),
      messageEdge: t.field({
        type: MessageEdge,
        description: "The stored message as an edge of `Session.messages`, for a client's connection cache.",
        resolve: (p) => messageEdge(p.message),
      }),
      session: t.field({
        type: Session,
        description: 'The session after the append.',
        resolve: (p) => p.session,
      }),
      replayed: t.exposeBoolean('replayed', { description: REPLAYED_DESCRIPTION }),
    }),
  });

const AppendMessagesPayload = builder.objectRef<AppendResult>('AppendMessagesPayload').implement({
  description: 'The stored messages and the session after the append.',
  fields: (t) => ({
    appendedMessages: t.field({
      type: [Message],
      description: 'The stored messages, in order, with their seqs.',
      resolve: (p) => p.messages,
    }),
    messageEdges: t.field({
      type: [MessageEdge],
      description: 'The stored messages as edges of `Session.messages`.',
      resolve: (p) => p.messages.map(messageEdge),
    }),
    session: t.field({
      type: Session,
      description: 'The session after the append.',
      resolve: (p) => p.session,
    }),
    replayed: t.exposeBoolean('replayed', { description: REPLAYED_DESCRIPTION }),
  }),
});

const RemoveLastMessagePayload = builder.objectRef<RemoveLastResult>('RemoveLastMessagePayload').implement({
  description: 'What was removed and the session after it.',
  fields: (t) => ({
    removedMessage: t.field({
      type: Message,
      nullable: true,
      description: 'The message that was removed; null when the session held none.',
      resolve: (p) => p.removed,
    }),
    session: t.field({
      type: Session,
      description: 'The session after the removal.',
      resolve: (p) => p.session,
    }),
  }),
});

const APPEND_ERRORS = [ConflictError, ...KEY_ERRORS];

builder.mutationFields((t) => ({
  appendMessage: t.field({
    type: AppendMessagePayload,
    description: 'Appends one message to a session, creating the session when new.',
    authScopes: { write: true },
    errors: { types: APPEND_ERRORS },
    args: {
      input: t.arg({
        type: AppendMessageInput,
        required: true,
        description: 'All arguments of this mutation, in one object.',
      }),
    },
    resolve: async (_root, { input }, ctx) => {
      const result = await afterWrite(
        ctx,
        ctx.backend.append(input.sessionKey, [{ role: input.role, content: input.content }], {
          ...(input.clientMessageId != null && { clientMessageId: input.clientMessageId }),
          ...expectedLastSeqOption(input.expectedLastSeq),
        }),
      );
      return { message: result.messages[0]!, session: result.session, replayed: result.replayed };
    },
  }),
  appendMessages: t.field({
    type: AppendMessagesPayload,
    description: 'Appends several messages to a session atomically: all are stored, in order, or none.',
    authScopes: { write: true },
    errors: { types: APPEND_ERRORS },
    args: {
      input: t.arg({
        type: AppendMessagesInput,
        required: true,
        description: 'All arguments of this mutation, in one object.',
      }),
    },
    resolve: async (_root, { input }, ctx) => {
      return afterWrite(
        ctx,
        ctx.backend.append(
          input.sessionKey,
          input.messages.map((m) => ({ role: m.role, content: m.content })),
          {
            ...(input.clientMessageId != null && { clientMessageId: input.clientMessageId }),
            ...expectedLastSeqOption(input.expectedLastSeq),
          },
        ),
      );
    },
  }),
  removeLastMessage: t.field({
    type: RemoveLastMessagePayload,
    description:
      'Removes the newest message of a session (e.g. to retract or regenerate a reply). NotFoundError when ' +
      'the session does not exist.',
    authScopes: { write: true },
    errors: { types: [NotFoundError, ConflictError, ...KEY_ERRORS] },
    args: {
      input: t.arg({
        type: RemoveLastMessageInput,
        required: true,
        description: 'All arguments of this mutation, in one object.',
      }),
    },
    resolve: async (_root, { input }, ctx) => {
      return afterWrite(
        ctx,
        ctx.backend.removeLast(
          input.sessionKey,
          input.expectedLastSeq == null ? {} : { expectedLastSeq: input.expectedLastSeq },
        ),
      );
    },
  }),
}));

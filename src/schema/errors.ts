/**
 * Expected failures as schema types. Every AppError subclass (src/errors.ts) is one object type
 * carrying its extra fields; all implement the `Error` interface so a client can always select
 * `... on Error { code message }`. Mutations list the ones they can return in their result union
 * (errors plugin); queries raise the same errors as GraphQL errors with `extensions.code`.
 */

import {
  AppError,
  ConflictError,
  ErrorCode,
  ForbiddenError,
  InvalidInputError,
  KeyCollisionError,
  NotFoundError,
  TooLargeError,
  UnavailableError,
} from '../errors.js';
import { builder } from './builder.js';

export const ErrorCodeEnum = builder.enumType('ErrorCode', {
  description: 'Stable machine-readable error codes; `message` is for humans.',
  values: {
    NOT_FOUND: {
      value: ErrorCode.NotFound,
      description: 'The session, message or cursor target does not exist.',
    },
    CONFLICT: {
      value: ErrorCode.Conflict,
      description: 'A guard failed: expectedLastSeq, or a clientMessageId reused with other messages.',
    },
    INVALID: {
      value: ErrorCode.Invalid,
      description: 'Malformed input: empty key, NUL characters, lone surrogates, a bad cursor or option.',
    },
    KEY_COLLISION: {
      value: ErrorCode.KeyCollision,
      description: 'Two distinct session keys would share one JSONL file (zeroclaw sanitises keys lossily).',
    },
    TOO_LARGE: { value: ErrorCode.TooLarge, description: 'Content, key, batch, page or query over its cap.' },
    UNAVAILABLE: {
      value: ErrorCode.Unavailable,
      description: 'The store could not be reached or stayed locked past its timeout; retrying may succeed.',
    },
    FEED_OVERFLOW: {
      value: ErrorCode.FeedOverflow,
      description:
        'A live subscription fell too far behind and was ended; subscribe again with `after` set to the ' +
        'last cursor received, and nothing is missed.',
    },
    FORBIDDEN: {
      value: ErrorCode.Forbidden,
      description: "The caller's token lacks the scope, or the session key is outside its key prefix.",
    },
    UNAUTHENTICATED: {
      value: ErrorCode.Unauthenticated,
      description: 'No token, an unknown one, or one removed while a live feed ran (tokens configured).',
    },
  } as const,
});

export const ErrorInterface = builder.interfaceRef<AppError>('Error').implement({
  description: 'An expected failure. Select `code` to branch, `message` to show.',
  fields: (t) => ({
    code: t.field({
      type: ErrorCodeEnum,
      description: 'What went wrong, as a stable code.',
      resolve: (e) => e.code,
    }),
    message: t.exposeString('message', { description: 'What went wrong, for humans.' }),
  }),
});

// AppError is abstract; Pothos only needs it as the `instanceof` target of the catch-all type.
builder.objectType(AppError as unknown as new () => AppError, {
  name: 'BaseError',
  description: 'An expected failure without a more specific type on this field.',
  interfaces: [ErrorInterface],
});

builder.objectType(NotFoundError, {
  name: 'NotFoundError',
  description: 'The session (or message) does not exist.',
  interfaces: [ErrorInterface],
  fields: (t) => ({
    sessionKey: t.string({
      nullable: true,
      description: 'The session key that was not found, when the failure is about a session.',
      resolve: (e) => e.sessionKey ?? null,
    }),
  }),
});

builder.objectType(ConflictError, {
  name: 'ConflictError',
  description:
    'A guard refused the write and nothing was stored: `expectedLastSeq` did not match the session, ' +
    'or a clientMessageId was reused with other messages.',
  interfaces: [ErrorInterface],
  fields: (t) => ({
    expectedLastSeq: t.int({
      nullable: true,
      description: 'The seq the caller expected (0: an empty session); null when no seq guard failed.',
      resolve: (e) => seqForClient(e.expectedLastSeq),
    }),
    actualLastSeq: t.int({
      nullable: true,
      description:
        'The seq of the last message the store holds (0: the session is empty); null when no seq guard failed. ' +
        'Refetch from here, then retry with it as expectedLastSeq.',
      resolve: (e) => seqForClient(e.actualLastSeq),
    }),
  }),
});

builder.objectType(InvalidInputError, {
  name: 'InvalidInputError',
  description: 'The input is malformed; nothing was stored.',
  interfaces: [ErrorInterface],
  fields: (t) => ({
    field: t.string({
      nullable: true,
      description: 'The input field at fault, e.g. `sessionKey`, `messages[2].content`, `after`.',
      resolve: (e) => e.field ?? null,
    }),
  }),
});

builder.objectType(KeyCollisionError, {
  name: 'KeyCollisionError',
  description:
    'The JSONL backend stores a session as `<sanitised key>.jsonl`, and another session key already owns ' +
    'that file name (`slack/thread:1` and `slack_thread_1` both become `slack_thread_1`). Nothing was stored.',
  interfaces: [ErrorInterface],
  fields: (t) => ({
    // nullable like NotFoundError.sessionKey: same-named fields must agree for clients to select both
    sessionKey: t.string({
      nullable: true,
      description: 'The key that was refused.',
      resolve: (e) => e.sessionKey,
    }),
    existingKey: t.string({
      nullable: true,
      description:
        "The distinct key that owns the file name; null when it is outside the caller token's key prefix.",
      resolve: (e) => e.existingKey,
    }),
  }),
});

export const SizeUnitEnum = builder.enumType('SizeUnit', {
  description: 'What a TooLargeError counts.',
  values: {
    BYTES: { value: 'bytes', description: 'Bytes of UTF-8.' },
    MESSAGES: { value: 'messages', description: 'Messages in one batch.' },
    ITEMS: { value: 'items', description: 'Items in a page or terms in a search query.' },
  } as const,
});

builder.objectType(TooLargeError, {
  name: 'TooLargeError',
  description: 'An input is over its configured cap; nothing was stored.',
  interfaces: [ErrorInterface],
  fields: (t) => ({
    field: t.string({
      nullable: true,
      description:
        'The input at fault, e.g. `content`, `messages`, `first` (nullable like InvalidInputError.field).',
      resolve: (e) => e.field,
    }),
    limit: t.exposeInt('limit', { description: 'The cap, in `unit`.' }),
    actual: t.exposeInt('actual', { description: 'The refused size, in `unit`.' }),
    unit: t.field({
      type: SizeUnitEnum,
      description: 'What `limit` and `actual` count.',
      resolve: (e) => e.unit,
    }),
  }),
});

builder.objectType(UnavailableError, {
  name: 'UnavailableError',
  description: 'The store could not be reached or stayed locked past its timeout. Retrying may succeed.',
  interfaces: [ErrorInterface],
});

builder.objectType(ForbiddenError, {
  name: 'ForbiddenError',
  description:
    "The caller's token may not make this write: it lacks the scope, or the key is outside its prefix. " +
    'Decided from the token and the key alone; nothing was stored.',
  interfaces: [ErrorInterface],
});

/** The backend says `null` for "the session is empty"; the API says 0 (seqs start at 1). */
function seqForClient(seq: number | null | undefined): number | null {
  if (seq === undefined) return null;
  return seq ?? 0;
}

/** Errors any operation on a session key can raise. */
export const KEY_ERRORS = [
  ForbiddenError,
  InvalidInputError,
  TooLargeError,
  KeyCollisionError,
  UnavailableError,
];
